import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

import interp.cache as cache
from interp.cache import writer

HOOKS = ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"]


def _expected(model, rows, hook):
    _, acts = model.run_with_cache(rows, names_filter=[hook])
    return acts[hook].reshape(rows.numel(), -1)  # (n_tokens, d)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_round_trip_values(model, rows, tmp_path, dtype):
    store = cache.write(model, HOOKS, rows, tmp_path / "s", dtype=dtype, batch_size=4, shard_sequences=8,
                        progress=False)
    assert store.n_tokens == rows.numel() and len(store.manifest.shards) == 3
    assert store.d_model(HOOKS[1]) == 32 and store.manifest.dtype == str(dtype).removeprefix("torch.")
    for hook in HOOKS:
        batch = next(iter(store.batches(store.n_tokens, hook=hook, shuffle=False, dtype=dtype, with_tokens=True)))
        want = _expected(model, rows, hook).to(dtype)
        assert batch.acts.dtype == dtype
        assert torch.equal(batch.acts, want)
        assert torch.equal(batch.tokens, rows.reshape(-1))
        assert torch.equal(batch.index, torch.arange(rows.numel()))


def test_gradients_equal_direct_autograd(model, rows, tmp_path):
    store = cache.write(model, HOOKS, rows, tmp_path / "s", grads=True, batch_size=8, progress=False)
    assert all(p.grad is None for p in model.parameters())
    seq = rows[3:4]  # one sequence alone: its own loss, summed over positions
    kept = {}

    def keep(act, hook):
        kept[hook.name] = act
        act.retain_grad()

    logits = model.run_with_hooks(seq, fwd_hooks=[(h, keep) for h in HOOKS])
    F.cross_entropy(logits[0, :-1], seq[0, 1:], reduction="sum").backward()
    model.zero_grad(set_to_none=True)
    ctx = rows.shape[1]
    for hook in HOOKS:
        batch = next(iter(store.batches(store.n_tokens, hook=hook, shuffle=False, with_grads=True)))
        want = kept[hook].grad.reshape(ctx, -1)
        torch.testing.assert_close(batch.grads[3 * ctx:4 * ctx], want, rtol=1e-4, atol=1e-6)
        assert batch.grads[3 * ctx:4 * ctx].abs().sum() > 0


def test_gradients_of_a_frozen_model(model, rows, tmp_path):
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        frozen = cache.write(model, HOOKS[0], rows, tmp_path / "f", grads=True, batch_size=8, progress=False)
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    live = cache.write(model, HOOKS[0], rows, tmp_path / "l", grads=True, batch_size=8, progress=False)
    a, b = (next(iter(s.batches(s.n_tokens, shuffle=False, with_grads=True))) for s in (frozen, live))
    assert torch.equal(a.grads, b.grads)


def _files(directory):
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


KILLER = textwrap.dedent("""
    import os, pathlib, signal, sys, torch, interp.cache as cache
    from interp.cache import writer
    sys.path.insert(0, sys.argv[4])
    from conftest import load_tiny
    model = load_tiny(pathlib.Path(sys.argv[1]))
    rows = torch.randint(1, 1000, (24, 16), generator=torch.Generator().manual_seed(0))
    real, calls = writer._cache_batch, [0]
    def dying(*args):
        calls[0] += 1
        if calls[0] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args)
    writer._cache_batch = dying
    cache.write(model, ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"], rows, sys.argv[2], grads=True,
                batch_size=4, shard_sequences=8, progress=False)
""")


@pytest.mark.parametrize("kill_at_batch", [5, 3])
def test_resume_after_kill_is_byte_identical(model, model_dir, rows, tmp_path, kill_at_batch):
    whole = cache.write(model, HOOKS, rows, tmp_path / "whole", grads=True, batch_size=4, shard_sequences=8,
                        progress=False)
    killed = tmp_path / "killed"
    run = subprocess.run([sys.executable, "-c", KILLER, str(model_dir), str(killed), str(kill_at_batch),
                          os.path.dirname(__file__)])
    assert run.returncode == -signal.SIGKILL
    manifest = cache.format.read_manifest(killed)
    assert not manifest.complete and len(manifest.shards) == (kill_at_batch - 1) // 2
    with pytest.raises(cache.StoreError, match="incomplete.*--resume"):
        cache.open_store(killed)
    with pytest.raises(cache.StoreError, match="resume=True"):
        cache.write(model, HOOKS, rows, killed, grads=True, batch_size=4, shard_sequences=8, progress=False)
    cache.write(model, HOOKS, rows, killed, grads=True, batch_size=4, shard_sequences=8, progress=False,
                resume=True)
    assert _files(killed) == _files(whole.path)


def test_resume_recomputes_a_damaged_shard(model, rows, tmp_path):
    store = cache.write(model, HOOKS[0], rows, tmp_path / "s", batch_size=4, shard_sequences=8, progress=False)
    before = _files(store.path)
    shard = store.path / "shard_00001.bin"
    data = bytearray(shard.read_bytes())
    data[100] ^= 0xFF
    shard.write_bytes(bytes(data))
    cache.write(model, HOOKS[0], rows, store.path, batch_size=4, shard_sequences=8, progress=False, resume=True)
    assert _files(store.path) == before


def test_appending_with_other_settings_fails(model, rows, tmp_path):
    cache.write(model, HOOKS[0], rows, tmp_path / "s", batch_size=4, progress=False)
    with pytest.raises(cache.StoreError, match="its dtype is 'float32' but this run has 'bfloat16'"):
        cache.write(model, HOOKS[0], rows, tmp_path / "s", batch_size=4, dtype=torch.bfloat16, progress=False,
                    resume=True)
    with pytest.raises(cache.StoreError, match="its d_model"):
        cache.write(model, "blocks.0.mlp.hook_post", rows, tmp_path / "s", batch_size=4, progress=False,
                    resume=True)


def test_unknown_hook_lists_nearest_names(model, rows, tmp_path):
    with pytest.raises(ValueError, match=r"unknown hook 'blocks\.0\.hook_resid_pots'.*blocks\.0\.hook_resid_post"):
        cache.write(model, "blocks.0.hook_resid_pots", rows, tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="per-token"):
        cache.write(model, "blocks.0.attn.hook_pattern", rows, tmp_path / "s", progress=False)


def test_empty_token_source_fails_before_compute(model, tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "_cache_batch", lambda *a: pytest.fail("computed"))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n\n  \n")
    with pytest.raises(ValueError, match="empty"):
        cache.write(model, HOOKS[0], empty, tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="non-empty"):
        cache.write(model, HOOKS[0], torch.zeros(0, 16, dtype=torch.long), tmp_path / "s", progress=False)
    with pytest.raises(ValueError, match="must be positive"):
        cache.write(model, HOOKS[0], 0, tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_nan_activation_names_batch_and_hook(model, rows, tmp_path):
    full_batches = [0]

    def poison_second_batch(act, hook):
        full_batches[0] += act.shape[1] == rows.shape[1]
        if full_batches[0] == 2:
            act = act.clone()
            act[1, 5, 0] = float("inf")
        return act

    with model.hooks(fwd_hooks=[("blocks.0.hook_resid_post", poison_second_batch)]):
        with pytest.raises(FloatingPointError, match=r"hook 'blocks\.0\.hook_resid_post'.*sequences \[4, 8\)"):
            cache.write(model, HOOKS, rows, tmp_path / "s", batch_size=4, progress=False)
    assert not any(p.name.startswith(".shard") for p in (tmp_path / "s").iterdir())


def test_disk_full_is_clean_and_resumable(model, rows, tmp_path, monkeypatch):
    real, calls = os.posix_fallocate, [0]

    def full_on_second(fd, offset, length):
        calls[0] += 1
        if calls[0] == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, offset, length)

    monkeypatch.setattr(os, "posix_fallocate", full_on_second)
    with pytest.raises(cache.StoreError, match="disk full.*shard_00001.*--resume"):
        cache.write(model, HOOKS[0], rows, tmp_path / "s", batch_size=4, shard_sequences=8, progress=False)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == ["manifest.json", "shard_00000.bin"]
    monkeypatch.setattr(os, "posix_fallocate", real)
    store = cache.write(model, HOOKS[0], rows, tmp_path / "s", batch_size=4, shard_sequences=8, progress=False,
                        resume=True)
    whole = cache.write(model, HOOKS[0], rows, tmp_path / "w", batch_size=4, shard_sequences=8, progress=False)
    assert _files(store.path) == _files(whole.path)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="shard_sequences=10 must be a multiple of batch_size=4"):
        writer.CacheConfig(("h",), batch_size=4, shard_sequences=10)
    with pytest.raises(ValueError, match="dtype='int8'"):
        writer.CacheConfig(("h",), dtype="int8")


def test_a_directory_holding_only_the_writers_temporary_files_starts_over(model, rows, tmp_path):
    whole = cache.write(model, HOOKS[0], rows, tmp_path / "whole", batch_size=4, shard_sequences=8, progress=False)
    for resume in (False, True):  # a kill before the first manifest landed: nothing of value is there
        out = tmp_path / f"killed-{resume}"
        out.mkdir()
        (out / ".manifest.json.tmp").write_text('{"half a manif')
        (out / ".shard_00000.bin.tmp").write_bytes(b"\0" * 10)
        cache.write(model, HOOKS[0], rows, out, batch_size=4, shard_sequences=8, progress=False, resume=resume)
        assert _files(out) == _files(whole.path)


def test_a_foreign_directory_or_a_file_is_refused_untouched(model, rows, tmp_path):
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("mine")
    (foreign / ".manifest.json.tmp").write_text("not the writer's, but beside a foreign file")
    with pytest.raises(cache.StoreError, match=r"notes exists, is not empty \(todo\.txt\) and holds no manifest\.json"):
        cache.write(model, HOOKS[0], rows, foreign, progress=False, resume=True)
    assert sorted(p.name for p in foreign.iterdir()) == [".manifest.json.tmp", "todo.txt"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(cache.StoreError, match="is a file, not a directory"):
        cache.write(model, HOOKS[0], rows, tmp_path / "file", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "notes"]  # no lock file left


def test_a_second_writer_is_refused_while_the_lock_is_held(model, rows, tmp_path):
    from interp.locks import LockError, hold_lock

    with hold_lock(tmp_path / "s", what="activation store"):
        with pytest.raises(LockError, match=rf"activation store .*s is being written by process {os.getpid()}"):
            cache.write(model, HOOKS[0], rows, tmp_path / "s", progress=False, resume=True)
        assert not (tmp_path / "s").exists()
    cache.write(model, HOOKS[0], rows, tmp_path / "s", progress=False, resume=True)  # released: it writes

"""Fault injection on the activation store: a kill at every write boundary of the writer, a
second concurrent writer, and a matrix of damaged stores. Each case asserts its outcome
class (resume gives the uninterrupted store byte for byte / a clear error naming the shard
or field and the remedy / a refusal) and that a refused operation changed no file."""

import json
import os
import shutil
import socket
import zlib

import pytest
import torch

import interp.cache as cache
import interp.locks
import interp.models
from interp.cache import writer
from interp.cli import main
from interp.locks import LockError, lock_file

from fault_injection import files, run_killed

pytestmark = pytest.mark.slow

HOOK = "blocks.0.hook_resid_post"
# 24 sequences of 16 tokens in 3 shards of 2 batches, with gradients: every kind of array in a shard
ARGV = ["cache", "--model", "zoo-dense", "--hook", HOOK, "--tokens", "384", "--context-size", "16",
        "--batch-size", "4", "--shard-sequences", "8", "--grads"]
BOUNDARIES = [
    (interp.locks, "_write_record", "after"),  # the lock is taken
    (os, "mkdir", "after"),  # the store directory exists, empty
    (os, "posix_fallocate", "after"),  # a shard's temporary file exists, nothing in it yet
    (writer, "_cache_batch", "before"),  # a shard's temporary file is partly written
    (os, "replace", "before"),  # a temporary file is complete, not yet renamed
    (os, "replace", "after"),  # renamed; the next write not started
]


@pytest.fixture(scope="module")
def zoo(zoo_dense, one_thread):
    """`interp cache --model zoo-dense` gets the session's model (loaded once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(interp.models, "load_model", lambda name, **options: zoo_dense)
        yield zoo_dense


def _cache(out, *extra) -> int:
    return main([*ARGV, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def reference(zoo, tmp_path_factory):
    """The uninterrupted store and its files."""
    out = tmp_path_factory.mktemp("reference") / "store"
    assert _cache(out) == 0
    return out, files(out)


def test_a_kill_at_every_write_boundary_resumes_to_the_uninterrupted_store(reference, tmp_path):
    _, want = reference
    dry = run_killed(lambda: _cache(tmp_path / "dry"), BOUNDARIES, kill_at=None)
    assert dry.exit_code == 0 and files(tmp_path / "dry") == want
    events = dry.events
    # lock, mkdir, first manifest, then per shard: allocate, 2 batches, rename, manifest; final manifest
    assert len(events) == 2 + 2 + 3 * (1 + 2 + 2 + 2) + 2
    for n, event in enumerate(events, start=1):
        out = tmp_path / f"killed-{n}"
        run = run_killed(lambda: _cache(out), BOUNDARIES, kill_at=n)
        assert run.killed and run.events == events[:n], event
        if n > 1:  # the dead writer's lock is left behind, to be taken over
            assert json.loads(lock_file(out).read_text())["host"] == socket.gethostname()
        try:  # a reader never sees a half-written store: it opens the complete one or refuses
            assert files(cache.open_store(out).path) == want, event
        except cache.StoreError as e:
            assert "incomplete" in str(e) or "is missing" in str(e), (event, e)
        assert _cache(out, "--resume") == 0, event
        assert files(out) == want, event
        assert not lock_file(out).exists()


def test_a_second_writer_is_refused_at_once_and_the_first_finishes(zoo, reference, tmp_path):
    _, want = reference
    out = tmp_path / "new"
    to_parent, to_child = os.pipe(), os.pipe()

    def first_writer():  # pauses inside its first batch, holding the lock, until the parent says go
        real = writer._cache_batch
        paused = [False]

        def pausing(*args):
            if not paused[0]:
                paused[0] = True
                os.write(to_parent[1], f"{os.getpid()}\n".encode())
                os.read(to_child[0], 1)
            return real(*args)

        writer._cache_batch = pausing
        assert _cache(out, "--resume") == 0

    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            first_writer()
            code = 0
        finally:
            os._exit(code)
    try:
        holder = int(os.read(to_parent[0], 32))  # blocks until the child is inside its first batch
        before = files(out)
        with pytest.raises(LockError, match=rf"activation store .*new is being written by process {holder} on "
                                            rf"host {socket.gethostname()}"):
            cache.write(zoo, HOOK, 384, out, grads=True, batch_size=4, context_size=16,
                        shard_sequences=8, progress=False, model_name="zoo-dense", resume=True)
        assert files(out) == before  # the refused writer touched nothing
    finally:
        os.write(to_child[1], b"x")
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert files(out) == want and not lock_file(out).exists()


# --- the damaged-store matrix ----------------------------------------------------------------
def _flip(offset):
    def damage(store):
        shard = store / "shard_00001.bin"
        data = bytearray(shard.read_bytes())
        data[offset if offset >= 0 else len(data) + offset] ^= 0x5A
        shard.write_bytes(bytes(data))
    return damage


def _truncate(store):
    shard = store / "shard_00002.bin"
    shard.write_bytes(shard.read_bytes()[:-100])


def _swap_shards(store):  # same sizes, other contents: only the checksums tell
    a, b = store / "shard_00000.bin", store / "shard_00001.bin"
    data = a.read_bytes()
    a.write_bytes(b.read_bytes())
    b.write_bytes(data)


def _edit(**fields):
    def damage(store):
        manifest = json.loads((store / "manifest.json").read_text())
        for key, value in fields.items():
            if key == "d_model":
                manifest["d_model"] = {HOOK: value}
            else:
                manifest[key] = value
        (store / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return damage


def _garbage(store):
    (store / "manifest.json").write_bytes(b'{"model": "zoo-dense", "hooks": [\x00\xff')


# Shards damaged: reads fail naming the shard and --resume; --resume recomputes it.
SHARD_DAMAGE = {
    "flipped byte in activations": (_flip(1000), r"shard_00001\.bin .*damaged: its checksum"),
    "flipped byte in token ids": (_flip(-70), r"shard_00001\.bin .*damaged: its checksum"),
    "shards swapped": (_swap_shards, r"shard_00000\.bin .*damaged: its checksum"),
    "truncated shard": (_truncate, r"shard_00002\.bin .* has \d+ bytes, its record in the manifest says \d+ "
                                   r"\(truncated"),
}
# Manifest damaged: every reader and writer refuses, naming the field; nothing changes.
MANIFEST_DAMAGE = {
    "lowered n_tokens": (_edit(n_tokens=256), r"manifest says n_tokens=256 \(2 shards of up to 128 tokens\), but its "
                                              r"3 shard records hold 384 tokens"),
    "wrong d_model": (_edit(d_model=256), rf"manifest says d_model=256 for hook '{HOOK}', but the shards hold "
                                          r"128-dim float32 rows"),
    "wrong dtype": (_edit(dtype="bfloat16"), r"manifest says dtype='bfloat16' but the writer config recorded in it "
                                             r"says dtype='float32'; the shards hold 128-dim float32 rows"),
    "gradients claimed away": (_edit(has_grads=False), r"manifest says has_grads=False but the writer config"),
    "other edit": (_edit(model="gpt2"), r"do not match its manifest_checksum"),
    "garbage manifest": (_garbage, r"not an activation-store manifest \(not JSON"),
}


def _damaged(reference, tmp_path, damage):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    damage(store)
    return store


@pytest.mark.parametrize("case", SHARD_DAMAGE)
def test_a_damaged_shard_fails_the_read_naming_it_and_resume_restores_it(reference, tmp_path, case):
    damage, message = SHARD_DAMAGE[case]
    store = _damaged(reference, tmp_path, damage)
    before = files(store)
    with pytest.raises(cache.StoreError, match=message + ".*--resume"):
        cache.verify(store)
    with pytest.raises(cache.StoreError, match=message + ".*--resume"):
        opened = cache.open_store(store)  # sizes are checked here, checksums on the first read
        list(opened.batches(64, with_grads=True, with_tokens=True))
    assert files(store) == before
    assert _cache(store, "--resume") == 0
    assert files(store) == reference[1]


@pytest.mark.parametrize("case", MANIFEST_DAMAGE)
def test_a_damaged_manifest_is_refused_naming_the_field(reference, tmp_path, case, capsys):
    damage, message = MANIFEST_DAMAGE[case]
    store = _damaged(reference, tmp_path, damage)
    before = files(store)
    for attempt in (cache.open_store, cache.verify):
        with pytest.raises(cache.StoreError, match=message + ".*re-cache the store"):
            attempt(store)
    capsys.readouterr()
    assert _cache(store, "--resume") == 2  # the writer refuses too: it cannot tell which shards are intact
    err = capsys.readouterr().err
    assert err.startswith("interp cache: error: ") and "Traceback" not in err
    assert main(["cache", "verify", str(store)]) == 2
    assert files(store) == before


def test_a_store_of_format_1_still_reads_and_resumes(reference, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(reference[0], store)
    manifest = json.loads((store / "manifest.json").read_text())
    del manifest["manifest_checksum"]
    manifest["format_version"] = 1
    for s in manifest["shards"]:
        del s["checksum"]
        s["crc32"] = zlib.crc32((store / s["name"]).read_bytes())
    (store / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    old = cache.open_store(store)
    new = cache.open_store(reference[0])
    a, b = (next(iter(s.batches(384, shuffle=False, with_grads=True, with_tokens=True))) for s in (old, new))
    assert torch.equal(a.acts, b.acts) and torch.equal(a.grads, b.grads) and torch.equal(a.tokens, b.tokens)
    assert cache.verify(store).checksums_checked
    _flip(1000)(store)
    with pytest.raises(cache.StoreError, match=r"shard_00001\.bin .*damaged: its checksum is crc32:"):
        list(cache.open_store(store).batches(64))
    assert _cache(store, "--resume") == 0  # keeps the intact format-1 shards, recomputes the damaged one
    assert {n: d for n, d in files(store).items() if n != "manifest.json"} == \
        {n: d for n, d in reference[1].items() if n != "manifest.json"}
    resumed = cache.format.read_manifest(store)
    assert resumed.format_version == 2 and resumed.shards[0].checksum.startswith("crc32:")
    assert resumed.shards[1].checksum.startswith("xxh3_64:")

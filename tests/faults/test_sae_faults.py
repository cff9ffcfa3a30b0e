"""Fault injection on the main job (`interp.sae.job.run`): a run rewriting an older one is
SIGKILLed at each of its write boundaries (the training checkpoints, the final files, the swap
of the run directory, the locks), and each time the run directory holds the old run or the new
one, never a mix; rerun (with --resume or without) gives the uninterrupted run byte for byte
(same thread count); orphan checkpoints are gone; a finished run's history is kept."""

import dataclasses
import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import interp.locks
from interp.errors import ConfigError
from interp.sae import checkpoint, job, rundir, saving

from fault_injection import run_killed

pytestmark = pytest.mark.slow

HOOK = "blocks.1.hook_resid_pre"
TRAIN = job.SAETrainConfig(batch_size=256, n_tokens=2048, lr=3e-3, warmup_steps=2, checkpoint_every=4,
                           init_tokens=1024)
BOUNDARIES = [
    (interp.locks, "_write_record", "after"),  # the run's lock is taken
    (os, "replace", "before"),  # a temporary file is complete, not yet renamed (checkpoints, outputs, markers)
    (os, "rename", "before"),  # a staging directory appears / the two-rename swap
    (rundir, "_exchange", "before"),  # the new run is complete beside the old one
    (rundir, "_exchange", "after"),  # swapped; the old run not yet removed
    (shutil, "rmtree", "before"),
]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file()}


def _without_history(files: dict[str, bytes]) -> dict[str, bytes]:
    out = dict(files)
    for name in [n for n in out if n.endswith("training.json")]:
        out[name] = json.dumps({k: v for k, v in json.loads(out[name]).items() if k != "history"}).encode()
    return out


@pytest.fixture(scope="module")
def tiny(one_thread):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4,
                                                          d_mlp=64, act_fn="gelu", d_vocab=100,
                                                          normalization_type="LN", seed=0)).eval()
    return model, torch.randint(0, 100, (64, 32), generator=torch.Generator().manual_seed(0))


def _cfg(tmp: Path, **train) -> job.JobConfig:
    return job.JobConfig(model="tiny", hook=HOOK, cache_dir=str(tmp / "cache"), out_dir=str(tmp / "saes"), run="r",
                         saes=({"variant": "topk", "n_latents": 64, "k": 4},),
                         train=dataclasses.replace(TRAIN, **train))


def _run(cfg, tiny, resume=False):
    model, tokens = tiny
    return job.run(cfg, resume=resume, progress=False, model=model, train_tokens=tokens, eval_tokens=tokens[:2])


def _restore(state: Path, tmp: Path) -> None:
    shutil.rmtree(tmp / "saes")
    shutil.copytree(state, tmp / "saes", symlinks=True)


def test_a_kill_at_every_write_boundary_of_a_rewrite_leaves_old_or_new_and_reruns_identically(tiny, tmp_path):
    old_cfg, new_cfg = _cfg(tmp_path), _cfg(tmp_path, seed=1)
    _run(old_cfg, tiny)
    old_state = tmp_path / "old-state"
    shutil.copytree(tmp_path / "saes", old_state)
    old = _files(old_state / "r")
    dry = run_killed(lambda: _run(new_cfg, tiny), BOUNDARIES, kill_at=None)
    assert dry.exit_code == 0, dry
    new = _files(tmp_path / "saes" / "r")
    assert new["sae_weights.safetensors"] != old["sae_weights.safetensors"]
    events = dry.events
    assert events.count("before os.replace") >= 9 and "after interp.sae.rundir._exchange" in events  # 2 checkpoints x 2, 5 outputs
    outcomes = []
    for n in range(1, len(events) + 1):
        _restore(old_state, tmp_path)
        killed = run_killed(lambda: _run(new_cfg, tiny), BOUNDARIES, kill_at=n)
        assert killed.killed, (n, events[n - 1], killed)
        run_dir = tmp_path / "saes" / "r"
        seen = {k: v for k, v in _files(run_dir).items() if k != rundir.UNFINISHED}
        assert seen in (old, new), f"kill {n} ({events[n - 1]}): the run directory mixes two runs"
        saving.load(run_dir)
        outcomes.append("old" if seen == old else "new")
        resume = n % 2 == 0  # half rerun with --resume, half start over
        if resume and not (tmp_path / "saes" / ".r.partial").exists():  # killed before the new run had begun
            before = {k: v for k, v in _files(tmp_path / "saes").items() if k != ".r.lock"}  # the dead child's lock
            with pytest.raises(ConfigError, match="train.seed is 0 in the checkpoint, 1 in this run"):
                _run(new_cfg, tiny, resume=True)  # the only checkpoint is the old run's: refused, nothing written
            assert _files(tmp_path / "saes") == before
            resume = False
        again = _run(new_cfg, tiny, resume=resume)
        assert sorted(p.name for p in (tmp_path / "saes").iterdir()) == ["r"], n  # no staging, old run or lock
        got = _files(again.run_dir)
        assert _without_history(got) == _without_history(new), f"kill {n} ({events[n - 1]}): rerun differs"
        if n % 2:
            assert got == new  # started over: byte for byte, history included
    assert outcomes[0] == "old" and outcomes[-1] == "new" and set(outcomes) == {"old", "new"}


def test_orphan_checkpoints_of_a_killed_run_are_removed_on_success(tiny, tmp_path):
    cfg = _cfg(tmp_path, checkpoint_every=2)
    boundaries = [(checkpoint, "save", "before")]
    killed = run_killed(lambda: _run(cfg, tiny), boundaries, kill_at=3)  # the third checkpoint never comes
    assert killed.killed
    stage = tmp_path / "saes" / ".r.partial" / "checkpoint"
    assert checkpoint.read_meta(stage)["step"] == 4 and not (tmp_path / "saes" / "r").exists()
    (stage / "checkpoint-00000002.safetensors").write_bytes(b"left by a kill")  # between a checkpoint's two writes
    (stage / ".checkpoint.json.tmp").write_bytes(b"{")
    result = _run(cfg, tiny, resume=True)
    assert sorted(p.name for p in (result.run_dir / "checkpoint").iterdir()) == [
        "checkpoint-00000008.safetensors", "checkpoint.json"]
    uninterrupted = _run(_cfg(tmp_path / "u", checkpoint_every=2), tiny)
    assert _files(uninterrupted.run_dir)["sae_weights.safetensors"] == _files(result.run_dir)["sae_weights.safetensors"]


def test_a_resumed_finished_run_keeps_its_history(tiny, tmp_path):
    cfg = _cfg(tmp_path)
    first = json.loads(_files(_run(cfg, tiny).run_dir)["training.json"])
    again = json.loads(_files(_run(cfg, tiny, resume=True).run_dir)["training.json"])
    assert again["history"] == first["history"] and len(first["history"]) == 8


def test_training_json_keeps_the_whole_history_across_a_resume_after_a_kill(tiny, tmp_path):
    cfg = _cfg(tmp_path)
    full = json.loads(_files(_run(_cfg(tmp_path / "u"), tiny).run_dir)["training.json"])
    killed = run_killed(lambda: _run(cfg, tiny), [(checkpoint, "save", "before")], kill_at=2)
    assert killed.killed
    resumed = json.loads(_files(_run(cfg, tiny, resume=True).run_dir)["training.json"])
    assert resumed["history"] == full["history"]

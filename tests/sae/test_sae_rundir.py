"""A run directory is swapped in whole: after a kill at any step of the swap, `recover` leaves
the old run or the new one (never a mix) and an unfinished run stays resumable."""

import json
import os
import shutil

import pytest

from interp.atomic import write_bytes
from interp.sae import checkpoint, rundir

OLD = {"cfg.json": b"old cfg", "sae_weights.safetensors": b"old weights", "sub/metrics.json": b"old metrics"}
NEW = {"cfg.json": b"new cfg", "sae_weights.safetensors": b"new weights", "training.json": b"new training"}


def _write(directory, files):
    for name, data in files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


class _Kill(BaseException):
    """Stands for kill -9: raised instead of the n-th disk operation of the swap."""


def _killing(monkeypatch, n):
    calls = []

    def wrap(real):
        def op(*args, **kwargs):
            calls.append(real)
            if len(calls) == n:
                raise _Kill
            return real(*args, **kwargs)
        return op

    monkeypatch.setattr(os, "rename", wrap(os.rename))
    monkeypatch.setattr(rundir, "_exchange", wrap(rundir._exchange))
    monkeypatch.setattr(shutil, "rmtree", wrap(shutil.rmtree))
    monkeypatch.setattr(rundir, "fsync_dir", wrap(rundir.fsync_dir))
    monkeypatch.setattr(os, "unlink", wrap(os.unlink))
    return calls


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2-exchange", "two-renames"])
@pytest.mark.parametrize("old", [OLD, None], ids=["over-an-old-run", "first-run"])
def test_a_kill_at_any_step_of_the_swap_leaves_old_or_new(tmp_path, monkeypatch, exchange, old):
    if not exchange:
        monkeypatch.setattr(rundir, "_exchange", lambda a, b: False)
    outcomes = set()
    for n in range(1, 20):
        base = tmp_path / str(n)
        run = base / "r"
        if old:
            run.mkdir(parents=True)
            _write(run, old)
        stage = rundir.prepare(run, resume=False)
        _write(stage, NEW)
        with monkeypatch.context() as m:
            calls = _killing(m, n)
            try:
                rundir.commit(stage, run)
                killed = False
            except _Kill:
                killed = True
        got = _files(run) if run.exists() else None
        if got:  # a reader may see the new run's marker for an instant; it reads named files only
            got.pop(rundir.UNFINISHED, None)
        # absent only before a first run, or between the two renames where there is no exchange
        assert got in (old, NEW, None if old is None or not exchange else old), (n, got)
        rundir.recover(run)
        got = _files(run) if run.exists() else None
        assert got in (old, NEW), (n, got)
        if got != NEW:  # the unfinished run is still there to resume and finish
            assert _files(rundir.staging(run)) == {**{k: v for k, v in NEW.items()}, rundir.UNFINISHED: b""}
            rundir.commit(rundir.prepare(run, resume=True), run)
        assert _files(run) == NEW and sorted(p.name for p in base.iterdir()) == ["r"]
        outcomes.add(killed)
        if not killed:
            assert len(calls) < n
            break
    assert outcomes == {True, False}  # every step was killed once, then the swap ran through


def test_prepare_continues_or_discards_an_unfinished_run(tmp_path):
    run = tmp_path / "r"
    stage = rundir.prepare(run, resume=False)
    _write(stage, {"checkpoint/checkpoint.json": b"{}", "cfg.json": b"half"})
    assert rundir.prepare(run, resume=True) == stage and (stage / "cfg.json").exists()
    rundir.clear_outputs(stage)
    assert sorted(_files(stage)) == [rundir.UNFINISHED, "checkpoint/checkpoint.json"]
    assert _files(rundir.prepare(run, resume=False)) == {rundir.UNFINISHED: b""}


def test_resume_of_a_finished_run_carries_its_checkpoint_without_touching_it(tmp_path):
    run = tmp_path / "r"
    (run / "checkpoint").mkdir(parents=True)
    meta = {"step": 8, "weights": "checkpoint-00000008.safetensors", "configs": []}
    (run / "checkpoint" / meta["weights"]).write_bytes(b"tensors")
    (run / "checkpoint" / checkpoint.STATE).write_text(json.dumps(meta))
    (run / "checkpoint" / "checkpoint-00000006.safetensors").write_bytes(b"orphan")
    assert rundir.resume_from(run) == run / "checkpoint"
    stage = rundir.prepare(run, resume=True)
    assert rundir.resume_from(run) == stage / "checkpoint"
    assert sorted(p.name for p in (stage / "checkpoint").iterdir()) == [meta["weights"], checkpoint.STATE]
    write_bytes(stage / "checkpoint" / meta["weights"], b"rewritten")  # as the trainer's final save does
    assert (run / "checkpoint" / meta["weights"]).read_bytes() == b"tensors"
    assert rundir.prepare(tmp_path / "other", resume=True).joinpath("checkpoint").exists() is False


def test_the_exchange_swaps_two_directories(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    if not rundir._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this file system has no RENAME_EXCHANGE: the two-rename path is used (tested above)")
    assert (tmp_path / "b" / "x").read_text() == "a" and not (tmp_path / "a" / "x").exists()

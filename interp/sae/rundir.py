"""A run directory (`saes/<run>/`) written as a whole: a reader sees the old run or the new
one, never a mix of their files.

The new run is built in a sibling staging directory, `.<run>.partial/` (its training
checkpoint included, so `--resume` after a kill continues there), and swapped in when
complete: with one atomic exchange of the two directories where the system has one
(Linux `renameat2(RENAME_EXCHANGE)`), else by two renames through `.<run>.old/` (between
them the run is briefly absent, never mixed). The old run is kept until the swap. A marker
file inside the staging directory tells a run being built from an old one displaced by an
interrupted swap; `recover` finishes or undoes whatever a kill left. The caller holds the
run's lock (`interp.locks.hold_lock(run_dir)`) around all of it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
from pathlib import Path

from interp.atomic import fsync_dir, write_bytes
from interp.sae import checkpoint

UNFINISHED = ".interp-unfinished"
"""Marker file of a staging directory (a run being built); an old run displaced there has none."""
CHECKPOINT = "checkpoint"
"""The training checkpoint's subdirectory, in the staging directory and then in the run."""


def staging(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.partial")


def _old(run_dir: Path) -> Path:
    return run_dir.with_name(f".{run_dir.name}.old")


def recover(run_dir: Path) -> None:
    """Finish or undo a swap that a kill interrupted (idempotent)."""
    old, stage = _old(run_dir), staging(run_dir)
    if old.exists():
        if run_dir.exists():
            shutil.rmtree(old)  # the swap finished: the old run only waited to be removed
        else:
            os.rename(old, run_dir)  # the old run was moved aside and the new not yet in: put it back
    if stage.exists() and not (stage / UNFINISHED).exists():
        shutil.rmtree(stage)  # an old run that an exchange displaced here
    (run_dir / UNFINISHED).unlink(missing_ok=True)  # a swapped-in run whose marker was not yet removed


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)  # atomic writes replace files, so the run's own copy is never changed
    except OSError:
        shutil.copy2(src, dst)


def resume_from(run_dir: str | Path) -> Path:
    """The checkpoint directory that `prepare(run_dir, resume=True)` continues: an unfinished
    run's, else the finished run's (call `recover` first)."""
    run_dir = Path(run_dir)
    stage = staging(run_dir)
    return stage / CHECKPOINT if stage.exists() else run_dir / CHECKPOINT


def prepare(run_dir: str | Path, resume: bool) -> Path:
    """The staging directory of `run_dir`, ready to build the run in; returns it. With
    `resume`, a staging directory a kill left is continued, else the finished run's
    checkpoint is carried over (so a finished run is evaluated again without training);
    without it, anything left is discarded and the run starts over."""
    run_dir = Path(run_dir)
    recover(run_dir)
    stage = staging(run_dir)
    if stage.exists() and not resume:
        shutil.rmtree(stage)
    if not stage.exists():
        fresh = stage.with_name(stage.name + ".new")
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
        write_bytes(fresh / UNFINISHED, b"")
        finished = run_dir / CHECKPOINT
        meta = checkpoint.read_meta(finished) if resume and finished.is_dir() else None
        if meta is not None:
            (fresh / CHECKPOINT).mkdir()
            for name in (meta["weights"], checkpoint.STATE):
                _link_or_copy(finished / name, fresh / CHECKPOINT / name)
        os.rename(fresh, stage)  # the staging directory appears complete or not at all
        fsync_dir(stage.parent)
    return stage


def discard_if_empty(stage: Path) -> None:
    """Remove `stage` when it holds no checkpoint: a run refused or failed before its first
    checkpoint leaves nothing behind (one with a checkpoint stays, for --resume)."""
    if stage.is_dir() and not (stage / CHECKPOINT / checkpoint.STATE).is_file():
        shutil.rmtree(stage)


def clear_outputs(stage: Path) -> None:
    """Remove everything but the checkpoint and the marker from `stage`: a resumed run writes
    all its outputs again, so none of an interrupted attempt's survives beside them."""
    for path in stage.iterdir():
        if path.name in (CHECKPOINT, UNFINISHED):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the system or file system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot swap {a} and {b}: {os.strerror(err)}")


def commit(stage: Path, run_dir: str | Path) -> Path:
    """Swap the finished staging directory in as `run_dir` (its checkpoint pruned of what a
    kill left), then remove the old run; returns `run_dir`."""
    run_dir = Path(run_dir)
    if (stage / CHECKPOINT).is_dir():
        checkpoint.prune(stage / CHECKPOINT)
    if not run_dir.exists():
        os.rename(stage, run_dir)
    elif _exchange(stage, run_dir):
        fsync_dir(run_dir.parent)
        shutil.rmtree(stage)  # now the old run (no marker: a kill here leaves it to `recover`)
    else:
        os.rename(run_dir, _old(run_dir))
        os.rename(stage, run_dir)
        fsync_dir(run_dir.parent)
        shutil.rmtree(_old(run_dir))
    (run_dir / UNFINISHED).unlink()
    fsync_dir(run_dir.parent)
    return run_dir

"""One writer at a time: an advisory lock beside the directory (or file) being written.

    with hold_lock(store_dir, what="activation store"):
        ...  # write into store_dir

The lock is the file `.<name>.lock` next to `path` (beside it, not inside, so a directory
that is swapped whole with a rename keeps its lock, and a foreign directory is never
written into). The holder keeps an exclusive `flock` on it and writes its PID, host and
start time into it; a second writer fails at once with a `LockError` naming the holder.
The kernel drops a `flock` when its process dies (kill -9 included), so a lock file left
by a dead process is simply taken over. On a file system without `flock` the PID decides:
a lock whose process is gone on this host is taken over; one held from another host is
refused. The lock file is removed on release.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from interp.errors import InterpError

_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}
_ATTEMPTS = 100
"""Opens tried when the lock file is replaced between our open and our lock (a holder releasing)."""


class LockError(InterpError, RuntimeError):
    """Another live process holds the lock; the message names it and the lock file."""


def lock_file(path: str | Path) -> Path:
    """Where the lock of `path` lives: `.<name>.lock` in the same directory (absolute)."""
    path = Path(os.path.abspath(path))
    return path.with_name(f".{path.name}.lock")


@contextmanager
def hold_lock(path: str | Path, what: str = "store") -> Iterator[Path]:
    """Hold the lock of `path` (a directory or file about to be written) for the block;
    yields the lock file. `what` names the thing in the error a second writer gets.
    Raises `LockError` at once, without waiting, when a live process holds it."""
    lock = lock_file(path)
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise LockError(f"cannot create {lock.parent}, where the lock of {what} {path} goes: {e}") from None
    fd = _acquire(lock, Path(path), what)
    try:
        yield lock
    finally:
        # unlink before unlocking: a waiter that opened this file sees it is gone and retries
        lock.unlink(missing_ok=True)
        os.close(fd)


def _acquire(lock: Path, path: Path, what: str) -> int:
    for _ in range(_ATTEMPTS):
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise LockError(f"cannot create the lock file {lock} of {what} {path}: {e.strerror}; the directory "
                            f"{lock.parent} must be writable") from None
        try:
            held = _try_flock(fd)
            if held is None:  # no flock here: decide by the recorded PID
                held = _record_alive(_read_record(fd))
            if held:
                raise LockError(_refusal(lock, path, what, _read_record(fd)))
            if _same_file(fd, lock):
                _write_record(fd, what)
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder released (and removed) the file between our open and lock
    raise LockError(f"could not take the lock {lock} of {what} {path}: it was replaced {_ATTEMPTS} times "
                    "while trying; is a loop of writers running?")


def _try_flock(fd: int) -> bool | None:
    """True: another process holds it; False: we hold it now; None: no flock on this file system."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES):
            return True
        if e.errno in _NO_FLOCK:
            return None
        raise


def _same_file(fd: int, lock: Path) -> bool:
    try:
        return os.stat(lock).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def _read_record(fd: int) -> dict | None:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None  # empty: the holder is still writing it (or took it an instant ago)
    return record if isinstance(record, dict) else None


def _record_alive(record: dict | None) -> bool:
    if record is None:
        return False
    if record.get("host") != socket.gethostname():
        return True  # another host's process: we cannot tell, so it holds
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError):
        return True
    return True


def _write_record(fd: int, what: str) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
              "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    os.fsync(fd)


def _refusal(lock: Path, path: Path, what: str, record: dict | None) -> str:
    if record is None:
        holder = "another process (it is writing its record right now)"
    else:
        holder = f"process {record.get('pid')} on host {record.get('host')} since {record.get('since')}"
    return (f"{what} {path} is being written by {holder} (lock file {lock}); wait for it to finish or stop "
            "that process, then rerun. A lock left by a process that died on this host is taken over "
            "automatically; one held from another host is released when that process ends")

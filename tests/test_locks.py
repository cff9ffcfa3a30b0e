import errno
import json
import os
import socket

import pytest

from interp import locks
from interp.locks import LockError, hold_lock, lock_file

class Holder:
    """A forked process that takes the lock of `target` and then either holds it until
    `release()` (a live holder) or dies at once without releasing it (`die=True`: its lock
    file is left behind). Pipes synchronise the two, no timing involved."""

    def __init__(self, target, die=False):
        ready, self._go = os.pipe(), os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                with hold_lock(target, what="run directory"):
                    os.write(ready[1], b"locked")
                    if die:
                        os._exit(0)  # no release: the lock file stays
                    os.read(self._go[0], 1)
            finally:
                os._exit(0)
        assert os.read(ready[0], 16) == b"locked"  # returns once the child holds the lock
        if die:
            self.status = os.waitpid(self.pid, 0)[1]

    def release(self):
        os.write(self._go[1], b"x")
        self.status = os.waitpid(self.pid, 0)[1]


def test_the_lock_file_names_the_holder_and_goes_on_release(tmp_path):
    target = tmp_path / "runs" / "run-1"
    with hold_lock(target, what="run directory") as lock:
        assert lock == lock_file(target) == tmp_path / "runs" / ".run-1.lock"
        record = json.loads(lock.read_text())
        assert (record["pid"], record["host"], record["what"]) == (os.getpid(), socket.gethostname(), "run directory")
        assert not target.exists()  # beside the directory, never inside it
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == []


def test_a_live_holder_refuses_a_second_writer_at_once(tmp_path):
    holder = Holder(tmp_path / "store")
    try:
        with pytest.raises(LockError, match=rf"store .*store is being written by process {holder.pid} on host "
                                            rf"{socket.gethostname()} since .*lock file .*\.store\.lock"):
            with hold_lock(tmp_path / "store", what="store"):
                pytest.fail("took a held lock")
    finally:
        holder.release()
    assert holder.status == 0 and not lock_file(tmp_path / "store").exists()


def test_the_same_process_cannot_take_it_twice(tmp_path):
    with hold_lock(tmp_path / "s"):
        with pytest.raises(LockError, match=f"process {os.getpid()}"):
            with hold_lock(tmp_path / "s"):
                pass
        assert lock_file(tmp_path / "s").exists()  # the refused attempt leaves the holder's file alone


def _dead_holder(target) -> int:
    holder = Holder(target, die=True)
    assert json.loads(lock_file(target).read_text())["pid"] == holder.pid  # left behind by the dead process
    return holder.pid


def test_the_lock_of_a_dead_process_is_taken_over(tmp_path):
    _dead_holder(tmp_path / "store")
    with hold_lock(tmp_path / "store") as lock:
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


def test_without_flock_the_recorded_pid_decides(tmp_path, monkeypatch):
    def no_flock(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    dead = _dead_holder(tmp_path / "store")
    monkeypatch.setattr(locks.fcntl, "flock", no_flock)
    with hold_lock(tmp_path / "store") as lock:  # a dead PID on this host: taken over
        assert json.loads(lock.read_text())["pid"] == os.getpid()
        with pytest.raises(LockError, match=f"process {os.getpid()}"):  # a live one: refused
            with hold_lock(tmp_path / "store"):
                pass
    lock.write_text(json.dumps({"pid": dead, "host": "another-host", "since": "then"}))
    with pytest.raises(LockError, match=f"process {dead} on host another-host"):  # cannot tell: refused
        with hold_lock(tmp_path / "store"):
            pass


def test_a_lock_that_cannot_be_created_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LockError, match=r"cannot create .*file/runs, where the lock of store .*Not a directory"):
        with hold_lock(tmp_path / "file" / "runs" / "run-1"):
            pass

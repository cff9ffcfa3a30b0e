"""Helpers of the fault-injection suite (imported by name: `from fault_injection import ...`):
kill a forked child at the n-th write boundary (deterministically, by counting calls, not by
timing), and snapshot a directory's files to show that a refused operation changed nothing.

    events = run_killed(write_store, BOUNDARIES, kill_at=None).events   # a dry run lists them
    for n in range(1, len(events) + 1):
        run = run_killed(write_store, BOUNDARIES, kill_at=n)            # SIGKILLed at the n-th
        assert run.killed

A boundary is `(owner, attribute, "before" | "after")`: the child wraps `owner.attribute`
and counts a boundary just before (or just after) each call. The child is a fork of the
test process, so nothing is imported twice and every patch the test made is inherited; it
runs at one torch thread (set by conftest's `one_thread` fixture before forking), as the parent
must when it compares bytes (float sums depend on the thread count).
"""

from __future__ import annotations

import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Callable, NamedTuple


class KilledRun(NamedTuple):
    status: int
    """The child's wait status (os.waitpid)."""
    events: list[str]
    """Labels of the boundaries the child passed, in order (the last one is where it died)."""

    @property
    def killed(self) -> bool:
        return os.WIFSIGNALED(self.status) and os.WTERMSIG(self.status) == signal.SIGKILL

    @property
    def exit_code(self) -> int | None:
        return os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None


def run_killed(fn: Callable[[], object], boundaries: list[tuple[object, str, str]], kill_at: int | None) -> KilledRun:
    """Run `fn()` in a forked child that SIGKILLs itself at boundary number `kill_at` (1-based;
    None: never, a dry run). Returns the wait status and the boundaries passed."""
    read_fd, write_fd = os.pipe()
    sys.stdout.flush(), sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_fd)
            _install(boundaries, kill_at, write_fd)
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    os.close(write_fd)
    chunks = []
    with os.fdopen(read_fd, "rb") as pipe:  # EOF when the child exits or is killed: no timing involved
        while chunk := pipe.read():
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    return KilledRun(status, b"".join(chunks).decode().splitlines())


def _install(boundaries, kill_at, write_fd) -> None:
    count = [0]

    def passed(label: str) -> None:
        count[0] += 1
        os.write(write_fd, f"{label}\n".encode())
        if count[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    for owner, attribute, when in boundaries:
        real = getattr(owner, attribute)
        label = f"{when} {getattr(owner, '__name__', type(owner).__name__)}.{attribute}"

        def wrapped(*args, _real=real, _label=label, _when=when, **kwargs):
            if _when == "before":
                passed(_label)
            result = _real(*args, **kwargs)
            if _when == "after":
                passed(_label)
            return result

        setattr(owner, attribute, wrapped)


def files(directory: Path) -> dict[str, bytes]:
    """{name: bytes} of every file directly in `directory` (hidden ones too); {} if it is absent."""
    directory = Path(directory)
    if not directory.is_dir():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}

"""Builds and loads the fused CPU kernels (cuda_ext/csrc/cpu_kernels.cpp) on first use.

The build (about 30 s) runs once per source, interpreter and torch version, in its own
directory under TORCH_EXTENSIONS_DIR (default ~/.cache/torch_extensions) named by a hash of
those, so unrelated checkouts and venvs never share or rebuild each other's build; a
finished build is marked and later processes import it without compiling or locking.

The build never hangs a command: it runs in a child process under a lock file that records
the builder's PID and host. A second process waits for it (saying so in one line) at most
`INTERP_CPU_EXT_WAIT` seconds; a lock whose process is gone (a killed build) is taken over;
the compile itself is stopped after `INTERP_CPU_EXT_TIMEOUT` seconds. Whenever the kernels
cannot be had (no compiler, a failed, killed or timed-out build, a lock held too long) the
"auto" backend uses the chunked torch path, `reason()` says why, and one line on stderr
says so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

SOURCE = Path(__file__).parent / "csrc" / "cpu_kernels.cpp"
DISABLE_ENV = "INTERP_NO_CPU_EXT"  # set to 1 to skip the build (the "auto" backend then uses "chunked")
WAIT_ENV = "INTERP_CPU_EXT_WAIT"  # seconds to wait for another process's build (default WAIT_S)
TIMEOUT_ENV = "INTERP_CPU_EXT_TIMEOUT"  # seconds a compile may take before it is stopped (default TIMEOUT_S)
WAIT_S = 600.0
TIMEOUT_S = 900.0
POLL_S = 0.2  # how often a waiting process looks at the lock again
CFLAGS = ("-O3", "-fopenmp")
LDFLAGS = ("-fopenmp",)
LOCK = "interp-build.lock"
DONE = "interp-build.done"  # written after a successful build; its absence means "build again"

# The compile runs in a child interpreter so that it can be stopped: torch's own build has
# no timeout, and its lock file (`lock`) waits forever on a holder that was killed.
_BUILD = ("import sys\nfrom torch.utils import cpp_extension\n"
          "name, source, directory, cflags, ldflags = sys.argv[1:6]\n"
          "cpp_extension.load(name=name, sources=[source], build_directory=directory, extra_cflags=cflags.split(),\n"
          "                   extra_ldflags=ldflags.split(), verbose=False)\n")


def _say(message: str) -> None:
    print(f"sae_kernels: {message}", file=sys.stderr, flush=True)


def _seconds(env: str, default: float) -> float:
    text = os.environ.get(env)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise ValueError(f"{env}={text!r} is not allowed: a number of seconds >= 0")
    return value


def build_key() -> str:
    """16 hex digits naming the build: the source (bytes and path), the interpreter, torch's
    version and the flags. Anything that changes the binary changes the key."""
    import torch

    h = hashlib.sha256(SOURCE.read_bytes())
    for part in (str(SOURCE.resolve()), sys.executable, sys.version, torch.__version__, *CFLAGS, "|", *LDFLAGS):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:16]


def build_directory() -> Path:
    """Where this source's build lives (created on first use)."""
    root = os.environ.get("TORCH_EXTENSIONS_DIR") or Path.home() / ".cache" / "torch_extensions"
    return Path(root) / f"interp_cpu_kernels_{build_key()}"


def _name(directory: Path) -> str:
    return directory.name  # the module name: unique per key, so two builds never clash in one process


def _import(directory: Path) -> ModuleType:
    name = _name(directory)
    spec = importlib.util.spec_from_file_location(name, directory / f"{name}.so")
    if spec is None or spec.loader is None:
        raise ImportError(f"no loadable module at {directory / (name + '.so')}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the build lock --------------------------------------------------------------------------
# An flock on a file that records the holder: the kernel releases it when the holder dies, so a
# killed build never leaves a lock behind, and the record names who to wait for.

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _holder(fd: int) -> dict:
    """The lock file's record ({"pid", "host", "since"}); {} when empty or unreadable."""
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        record = json.loads(os.read(fd, 4096) or b"{}")
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _describe(holder: dict) -> str:
    return f"PID {holder.get('pid', '?')} on {holder.get('host', '?')}" if holder else "another process"


def _record(fd: int) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode(), 0)


@contextlib.contextmanager
def _locked(directory: Path, wait_s: float):
    """Hold the build lock of `directory`; yields None once held, else why not (another live
    process held it for `wait_s` seconds)."""
    lock = directory / LOCK
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, said = time.monotonic() + wait_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pass
            holder = _holder(fd)
            if time.monotonic() >= deadline:
                yield f"the build lock {lock} is still held by {_describe(holder)} after {wait_s:g} s ({WAIT_ENV})"
                return
            if not said:
                _say(f"waiting for the C++ kernel build of {_describe(holder)} ({lock}; at most {wait_s:g} s)")
                said = True
            time.sleep(POLL_S)  # polling a condition (the lock is free), bounded by the deadline
        previous = _holder(fd)
        pid = previous.get("pid")
        if previous.get("host") == socket.gethostname() and isinstance(pid, int) and pid != os.getpid() \
                and not _alive(pid) and not (directory / DONE).is_file():
            _say(f"the build of PID {pid} was interrupted (that process is gone); building again")
        _record(fd)
        try:
            yield None
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --- the build ------------------------------------------------------------------------------

def _build_command(directory: Path) -> list[str]:
    return [sys.executable, "-c", _BUILD, _name(directory), str(SOURCE), str(directory), " ".join(CFLAGS),
            " ".join(LDFLAGS)]


def _compile(directory: Path, timeout_s: float) -> str | None:
    """Run the build in a child process group; None on success, else why it failed."""
    (directory / "lock").unlink(missing_ok=True)  # torch's own baton: we hold our lock, so any is stale
    proc = subprocess.Popen(_build_command(directory), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # its own group: a timeout stops ninja and the compiler too
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return f"the build took longer than {timeout_s:g} s ({TIMEOUT_ENV}) and was stopped"
    except BaseException:  # we are interrupted: do not leave a compile running
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode < 0:
        return f"the build was killed ({signal.Signals(-proc.returncode).name})"
    if proc.returncode:
        lines = out.decode(errors="replace").strip().splitlines()
        return f"the build failed (exit {proc.returncode}): " + " | ".join(lines[-5:])[:500]
    return None


def _built(directory: Path) -> ModuleType | None:
    """The finished build in `directory`, or None when there is none (or it does not import)."""
    if not (directory / DONE).is_file():
        return None
    try:
        return _import(directory)
    except ImportError:
        (directory / DONE).unlink(missing_ok=True)  # damaged: build it again
        return None


def _build() -> tuple[ModuleType | None, str]:
    try:
        directory = build_directory()
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return None, f"cannot create the build directory: {e}"
    module = _built(directory)
    if module is not None:
        return module, "built"
    with _locked(directory, _seconds(WAIT_ENV, WAIT_S)) as refused:
        if refused:
            return None, refused
        module = _built(directory)  # another process finished it while we waited
        if module is not None:
            return module, "built"
        failed = _compile(directory, _seconds(TIMEOUT_ENV, TIMEOUT_S))
        if failed:
            return None, failed
        try:
            module = _import(directory)
        except ImportError as e:
            return None, f"the build finished but {directory} does not import: {e}"
        (directory / DONE).write_text(build_key() + "\n")
    return module, "built"


@functools.cache
def _load() -> tuple[ModuleType | None, str]:
    if os.environ.get(DISABLE_ENV) == "1":
        return None, f"disabled by {DISABLE_ENV}=1"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        module, why = None, f"no C++ compiler ({compiler!r} is not on PATH)"
    else:
        if shutil.which("ninja") is None:  # the `ninja` wheel's binary, when its venv is not activated
            with contextlib.suppress(ImportError):
                import ninja

                os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")
        try:
            module, why = _build()
        except OSError as e:  # a full disk, a read-only home: the torch backends still work
            module, why = None, f"building failed: {errno.errorcode.get(e.errno, e.errno)}: {e}"
    if module is None:
        _say(f"the fused CPU kernels are unavailable ({why}); the 'auto' backend uses 'chunked'")
    return module, why


def module() -> ModuleType:
    """The compiled extension; raises with the reason when it cannot be built here."""
    mod, why = _load()
    if mod is None:
        raise RuntimeError(f"the fused CPU kernels are unavailable: {why}; use backend='chunked'")
    return mod


def available() -> bool:
    return _load()[0] is not None


def reason() -> str:
    """'built', or why the extension is unavailable."""
    return _load()[1]

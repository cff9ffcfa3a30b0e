"""The C++ kernel build never hangs a command: a lock left by a killed build is taken over, a
lock held by a live process is waited for up to a bound, and a failed, killed or timed-out
build leaves the chunked path. Nothing here compiles: the build points at a temp directory
and its compile step is replaced (by a stub, or by a child process that fails the way a
compile can)."""

import fcntl
import json
import os
import socket
import subprocess
import sys
import threading
import types

import pytest
import torch

from sae_kernels import cpu_ext, dispatch

HOLDER = """import fcntl, json, os, socket, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": 0}).encode())
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def build(tmp_path, monkeypatch):
    """The build in a temp directory, with the compile and the import stubbed and recorded."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    calls = types.SimpleNamespace(compiles=0, said=[])
    fake = types.ModuleType("fake_kernels")

    def compile_(directory, timeout_s):
        calls.compiles += 1
        return None

    monkeypatch.setattr(cpu_ext, "_compile", compile_)
    monkeypatch.setattr(cpu_ext, "_import", lambda directory: fake)
    monkeypatch.setattr(cpu_ext, "_say", calls.said.append)
    calls.fake, calls.directory = fake, cpu_ext.build_directory()
    calls.directory.mkdir(parents=True)
    return calls


def _killed_holder(lock) -> int:
    """A process that takes the build lock and is then killed with SIGKILL; returns its PID."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline() == "locked\n"  # returns "" if the child died: no hang
    proc.kill()
    proc.wait()
    return proc.pid


def test_lock_of_a_killed_build_is_taken_over_without_waiting(build, monkeypatch):
    monkeypatch.setenv(cpu_ext.WAIT_ENV, "600")  # a wait would fail the bound below, not hang: see the last assert
    pid = _killed_holder(build.directory / cpu_ext.LOCK)
    assert json.loads((build.directory / cpu_ext.LOCK).read_text())["pid"] == pid  # the record stays behind
    assert cpu_ext._build() == (build.fake, "built")
    assert build.compiles == 1
    assert build.said == [f"the build of PID {pid} was interrupted (that process is gone); building again"]
    assert (build.directory / cpu_ext.DONE).is_file()


def test_a_finished_build_is_imported_without_lock_or_compile(build):
    (build.directory / cpu_ext.DONE).write_text("x\n")
    fd = os.open(build.directory / cpu_ext.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # someone else holds the lock: the finished build does not care
    try:
        assert cpu_ext._build() == (build.fake, "built")
    finally:
        os.close(fd)
    assert build.compiles == 0 and build.said == []


def test_a_live_holder_is_waited_for_up_to_the_bound_then_chunked(build, monkeypatch):
    monkeypatch.setenv(cpu_ext.WAIT_ENV, "0.5")
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(build.directory / cpu_ext.LOCK)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "locked\n"
        module, why = cpu_ext._build()
    finally:
        proc.communicate("")  # release: the holder reads stdin to its end, then exits
    holder = f"PID {proc.pid} on {socket.gethostname()}"
    assert module is None and build.compiles == 0
    assert why == (f"the build lock {build.directory / cpu_ext.LOCK} is still held by {holder} after 0.5 s "
                   f"({cpu_ext.WAIT_ENV})")
    assert build.said == [f"waiting for the C++ kernel build of {holder} ({build.directory / cpu_ext.LOCK}; "
                          "at most 0.5 s)"]  # one line, however long the wait


def test_a_waiter_uses_the_build_its_holder_finishes(build, monkeypatch):
    monkeypatch.setenv(cpu_ext.WAIT_ENV, "120")
    fd = os.open(build.directory / cpu_ext.LOCK, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)
    waiting = threading.Event()
    monkeypatch.setattr(cpu_ext, "_say", lambda message: (build.said.append(message), waiting.set()))

    def finish():  # the holder finishes its build once the waiter says it waits
        if waiting.wait(timeout=120):
            (build.directory / cpu_ext.DONE).write_text("x\n")
        os.close(fd)

    holder = threading.Thread(target=finish)
    holder.start()
    try:
        assert cpu_ext._build() == (build.fake, "built")
    finally:
        holder.join(timeout=120)
    assert build.compiles == 0 and len(build.said) == 1 and build.said[0].startswith("waiting for")


@pytest.mark.parametrize("child, timeout, expected", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "60", "the build was killed (SIGKILL)"),
    ("import time; time.sleep(120)", "0.5", f"the build took longer than 0.5 s ({cpu_ext.TIMEOUT_ENV}) and was stopped"),
    ("import sys; print('cpu_kernels.cpp:3: error: boom'); sys.exit(1)", "60",
     "the build failed (exit 1): cpu_kernels.cpp:3: error: boom"),
])
def test_a_failed_killed_or_timed_out_build_leaves_chunked_with_one_line(tmp_path, monkeypatch, capsys, child,
                                                                          timeout, expected):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setenv(cpu_ext.TIMEOUT_ENV, timeout)
    monkeypatch.setenv("CXX", sys.executable)  # "a compiler is installed": the build is attempted
    monkeypatch.setattr(cpu_ext, "_build_command", lambda directory: [sys.executable, "-c", child])
    cpu_ext.build_directory().mkdir()
    (cpu_ext.build_directory() / "lock").write_text("")  # torch's own lock of a killed build: it would wait forever
    cpu_ext._load.cache_clear()
    try:
        assert cpu_ext.reason() == expected and not cpu_ext.available()
        assert dispatch.resolve_backend("auto", torch.device("cpu")) == "chunked"
        with pytest.raises(ValueError, match="backend='cpu' cannot run here"):
            dispatch.resolve_backend("cpu", torch.device("cpu"))
    finally:
        cpu_ext._load.cache_clear()  # the next test sees this machine's real build again
    err = capsys.readouterr().err.splitlines()
    assert err == [f"sae_kernels: the fused CPU kernels are unavailable ({expected}); the 'auto' backend uses "
                   "'chunked'"]
    assert not (cpu_ext.build_directory() / "lock").exists()
    assert not (cpu_ext.build_directory() / cpu_ext.DONE).exists()  # the next command tries again
    with open(cpu_ext.build_directory() / cpu_ext.LOCK, "rb") as f:  # and the lock is free
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_the_build_directory_is_keyed_by_source_interpreter_and_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    first = cpu_ext.build_directory()
    assert first.parent == tmp_path and first.name == f"interp_cpu_kernels_{cpu_ext.build_key()}"
    monkeypatch.setattr(sys, "executable", "/other/venv/bin/python")
    other_venv = cpu_ext.build_directory()
    monkeypatch.undo()
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(torch, "__version__", "0.0.0")
    other_torch = cpu_ext.build_directory()
    monkeypatch.undo()
    copy = tmp_path / "checkout2" / "csrc" / cpu_ext.SOURCE.name  # the same source in another checkout
    copy.parent.mkdir(parents=True)
    copy.write_bytes(cpu_ext.SOURCE.read_bytes())
    monkeypatch.setattr(cpu_ext, "SOURCE", copy)
    other_checkout = cpu_ext.build_directory()
    assert len({first, other_venv, other_torch, other_checkout}) == 4


def test_a_bad_wait_setting_is_refused(monkeypatch):
    monkeypatch.setenv(cpu_ext.WAIT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{cpu_ext.WAIT_ENV}='soon' is not allowed: a number of seconds >= 0"):
        cpu_ext._seconds(cpu_ext.WAIT_ENV, cpu_ext.WAIT_S)

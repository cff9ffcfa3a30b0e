"""LatestRequest: the newest request wins, stale work never runs or shows, errors are not lost.
Slow work is simulated with events; every wait is a bounded condition wait, never a sleep."""

import threading

import pytest

from interp.widgets.work import LatestRequest


def _slow(name, ran, started, release):
    def work():
        ran.append(name)
        started.set()
        assert release.wait(10), "the test never released the work"
        return name
    return work


def test_requests_made_while_work_runs_keep_only_the_newest():
    worker = LatestRequest(background=True)
    ran, shown = [], []
    started, release = threading.Event(), threading.Event()
    worker.submit(_slow("a", ran, started, release), shown.append)
    assert started.wait(10) and worker.busy
    worker.submit(lambda: ran.append("b") or "b", shown.append)  # superseded before it starts: never runs
    worker.submit(lambda: ran.append("c") or "c", shown.append)
    release.set()
    assert worker.wait(10) and not worker.busy
    assert ran == ["a", "c"] and shown == ["c"]  # "a" finished after "c" was asked for: not shown


def test_a_result_that_finishes_last_is_shown_only_if_it_is_the_newest():
    worker = LatestRequest(background=True)
    shown = []
    started, release = threading.Event(), threading.Event()
    worker.submit(_slow("old", [], started, release), shown.append)
    assert started.wait(10)
    worker.submit(lambda: "new", shown.append)
    release.set()
    assert worker.wait(10)
    assert shown == ["new"]
    worker.submit(lambda: "again", shown.append)
    assert worker.wait(10) and shown == ["new", "again"]


def test_work_holds_the_views_lock():
    lock = threading.RLock()
    worker = LatestRequest(background=True, lock=lock)
    started, release, seen = threading.Event(), threading.Event(), []
    worker.submit(_slow("a", [], started, release), seen.append)
    assert started.wait(10)
    assert not lock.acquire(blocking=False) or lock.release()  # held by the worker while it runs
    release.set()
    assert worker.wait(10) and lock.acquire(blocking=False)
    lock.release()


def test_without_a_thread_work_runs_at_once_and_errors_reach_the_caller():
    worker = LatestRequest(background=False)
    shown, failed = [], []
    worker.submit(lambda: 1, shown.append)
    assert shown == [1] and not worker.busy

    def boom():
        raise ValueError("bad coefficient")

    with pytest.raises(ValueError, match="bad coefficient"):
        worker.submit(boom, shown.append)
    assert not worker.busy
    worker.submit(boom, shown.append, failed.append)
    assert [str(e) for e in failed] == ["bad coefficient"]
    nested = []
    worker.submit(lambda: worker.submit(lambda: "inner", nested.append) and "outer", nested.append)
    assert nested == ["inner"]  # asked for while "outer" ran: the newest wins

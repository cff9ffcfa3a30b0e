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


def test_in_a_kernel_each_cell_first_waits_for_the_views_background_work(monkeypatch):
    """A cell that ran the model beside a view's worker would see the view's hooks: in a kernel,
    the pre_run_cell hook that LatestRequest registers (once) holds the cell until the work is done."""
    import IPython

    from interp.widgets import work

    class Events:
        def __init__(self):
            self.hooks = []

        def register(self, event, fn):
            self.hooks.append((event, fn))

    shell = type("Shell", (), {"kernel": object()})()
    shell.events = Events()
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    worker, again = LatestRequest(background=True), LatestRequest(background=True)
    assert [event for event, _ in shell.events.hooks] == ["pre_run_cell"]  # one hook per shell
    order, started, release = [], threading.Event(), threading.Event()
    worker.submit(_slow("work", order, started, release), lambda _: order.append("shown"))
    assert started.wait(10)
    cell = threading.Thread(target=lambda: shell.events.hooks[0][1](None) and order.append("cell"))
    cell.start()
    cell.join(0.2)
    assert cell.is_alive()  # still held: the work has not finished
    release.set()
    cell.join(10)
    assert not cell.is_alive() and order == ["work", "shown", "cell"]
    assert again.wait(1)  # an idle view does not hold a cell

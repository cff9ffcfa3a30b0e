"""Work that a dashboard control triggers, newest request first.

A slider move that starts a generation must not make the next moves wait behind it, nor
let an old result replace a newer one. `LatestRequest` runs one kind of work for a view:

* the view shows its busy state itself, at once, before it calls `submit`;
* the work runs on a worker thread (`background=True`) or right away on the caller's thread;
* a request made while work runs waits (work never runs twice at once: hooks belong to the
  model) and replaces any older request still waiting, which then never runs;
* a finished request's result is shown only if no newer request was made meanwhile.

In a Jupyter kernel the comm messages of later control moves arrive while the worker runs,
so the newest one wins; outside a kernel (scripts, tests) nothing can arrive meanwhile, so
`background=None` picks the thread only inside a kernel. There, every cell waits before it runs
until the views' background work is done (`wait_for_views`, an IPython pre_run_cell hook): a
cell that runs the model beside a view's worker would see the view's hooks, and the view the
cell's.
"""

from __future__ import annotations

import threading
import traceback
import weakref
from collections.abc import Callable
from typing import Any


def in_kernel() -> bool:
    """Whether this runs inside an IPython kernel (a notebook), where widget events arrive
    while a worker thread computes."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


_MODEL_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_MODEL_LOCKS_GUARD = threading.Lock()
_BACKGROUND: "weakref.WeakSet[LatestRequest]" = weakref.WeakSet()
"""The live requests that run on worker threads (`wait_for_views` waits for them)."""
_GUARDED_SHELLS: "weakref.WeakSet" = weakref.WeakSet()


def wait_for_views(*_event, timeout: float = 600.0) -> bool:
    """Block until no view's background work runs or waits (at most `timeout` seconds each);
    True if all are idle. Registered as an IPython pre_run_cell hook (its argument ignored)."""
    return all([request.wait(timeout) for request in list(_BACKGROUND)])


def _guard_cells() -> None:
    """In a kernel, make each cell wait for the views' background work first (once per shell)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None or shell in _GUARDED_SHELLS:
        return
    shell.events.register("pre_run_cell", wait_for_views)
    _GUARDED_SHELLS.add(shell)


def model_lock(model) -> threading.RLock:
    """The lock of `model`'s work, one per model object and shared by every view of it: hooks
    belong to the model, so two dashboards on one model (a steered generation beside an exact
    patching run) must never run forward passes at once, each would see the other's hooks."""
    with _MODEL_LOCKS_GUARD:
        lock = _MODEL_LOCKS.get(model)
        if lock is None:
            lock = _MODEL_LOCKS[model] = threading.RLock()
        return lock


class LatestRequest:
    """Run submitted work one request at a time; only the newest request's result is shown.

    `background`: run the work on a worker thread (None: only inside a Jupyter kernel).
    `lock`: held while the work runs, so that other model work of the same view (e.g. on the
    caller's thread) never runs beside it.
    """

    def __init__(self, background: bool | None = None, lock: threading.RLock | None = None):
        self.background = in_kernel() if background is None else bool(background)
        self.lock = lock if lock is not None else threading.RLock()
        self._cond = threading.Condition(threading.RLock())
        self._latest = 0
        self._pending: tuple | None = None
        self._running = False
        if self.background:
            _BACKGROUND.add(self)
            if in_kernel():
                _guard_cells()

    @property
    def busy(self) -> bool:
        """Whether a request is running or waiting."""
        with self._cond:
            return self._running

    def submit(self, work: Callable[[], Any], show: Callable[[Any], None],
               fail: Callable[[Exception], None] | None = None) -> int:
        """Ask for `work()`; `show(result)` (or `fail(error)`) follows only if this is still the
        newest request when it finishes. Returns the request's number. Without a worker thread
        an error with no `fail` is raised here."""
        with self._cond:
            self._latest += 1
            number = self._latest
            self._pending = (number, work, show, fail)
            if self._running:
                return number  # the running drain picks it up next
            self._running = True
        if self.background:
            threading.Thread(target=self._drain, name="interp-widget-work", daemon=True).start()
        else:
            self._drain()
        return number

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no request runs or waits (at most `timeout` seconds); True if idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def _drain(self) -> None:
        try:
            while True:
                with self._cond:
                    if self._pending is None:  # checked and marked idle under one lock: no request is lost
                        self._running = False
                        self._cond.notify_all()
                        return
                    number, work, show, fail = self._pending
                    self._pending = None
                error = result = None
                try:
                    with self.lock:
                        result = work()
                except Exception as e:  # shown by `fail`, or raised to a caller on its own thread
                    error = e
                with self._cond:  # shown under the lock: a newer request cannot slip in between
                    if number != self._latest:
                        continue  # stale: the newer request's result is shown instead
                    if error is None:
                        show(result)
                    elif fail is not None:
                        fail(error)
                    elif not self.background:
                        raise error
                    else:  # nowhere to show it: at least not silent
                        traceback.print_exception(error)
        except BaseException:
            with self._cond:
                self._pending, self._running = None, False
                self._cond.notify_all()
            raise

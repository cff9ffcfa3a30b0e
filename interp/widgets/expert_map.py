"""`ExpertMap(model, scores, prompts)`: a layer × expert map of behaviour scores; click
experts to switch them off or force them on, and see the replies and refusal rate change,
on the harmful prompts and (given `benign=`) on benign ones: the collateral of the change,
i.e. false refusals or lost answers where nothing should be refused.

The heatmap is `interp.moe.score_matrix(scores)` (e.g. fTRI: mean selection on refused
minus answered prompts). Clicking a cell adds the expert to (or removes it from) the set
of the current mode: "switch off" (with the chosen ablation policy) or "force on". After
every change the prompts are re-run under `interp.moe.ablate` and `interp.moe.force`, and
`interp.moe.replies` gives the replies and the refusal judge. Display only: every number
comes from `interp.moe`; the model is restored after each run.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from contextlib import ExitStack

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp import moe
from interp.widgets.tokens_html import reply_html
from interp.widgets.work import LatestRequest, model_lock

MODES = ("switch off", "force on")
BUSY = "<span class='interp-busy'>\u23f3 re-running the prompts\u2026</span>"


class ExpertMap(widgets.VBox):
    """Show `scores` (an `interp.moe.score_experts` table) as a layer × expert heatmap over the
    MoE `model`, and re-run `prompts` with the experts clicked off or forced on.

    `benign`: prompts that should not be refused, re-run beside `prompts` to show the
    collateral (their false-refusal rate). `max_new_tokens`: reply length shown (default:
    enough for the refusal judge).

    Every change re-runs the prompts: the status line turns busy at once and the work runs on
    a worker thread (`background`, default: inside a Jupyter kernel), newest request first
    (`interp.widgets.work.LatestRequest`): clicks made meanwhile replace any request still
    waiting, and an older result never replaces a newer one. `wait()` blocks until shown.
    """

    def __init__(self, model, scores: pd.DataFrame, prompts: Sequence[str], max_new_tokens: int | None = None,
                 benign: Sequence[str] | None = None, background: bool | None = None):
        self.n_layers, self.n_experts, self.k = moe.shape(model)
        if len(scores) != self.n_layers * self.n_experts:
            raise ValueError(f"scores has {len(scores)} rows, but the model has {self.n_layers} layers × "
                             f"{self.n_experts} experts: pass interp.moe.score_experts(...) of this model")
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"prompts={prompts!r} must be a non-empty list of strings")
        if benign is not None and (isinstance(benign, str) or not benign):
            raise ValueError(f"benign={benign!r} must be a non-empty list of strings (or None: no collateral view)")
        self.model, self.scores, self.prompts = model, scores, list(prompts)
        self.benign = list(benign) if benign is not None else None
        self.benign_results: pd.DataFrame | None = None
        self.baseline_benign_rate: float | None = None
        self.max_new_tokens = max_new_tokens
        self.off: set[tuple[int, int]] = set()
        self.forced: set[tuple[int, int]] = set()
        self.results: pd.DataFrame | None = None
        self.baseline_rate: float | None = None
        self.work = LatestRequest(background, model_lock(model))

        self.mode = widgets.ToggleButtons(options=MODES, value=MODES[0], description="click to")
        self.policy = widgets.Dropdown(options=moe.POLICIES, value=moe.POLICIES[0], description="policy")
        self.reset = widgets.Button(description="reset")
        self.status = widgets.HTML()
        self.error = widgets.HTML()
        self.outputs = widgets.HTML()
        self.figure = self._figure()
        self.policy.observe(lambda change: self.run(), names="value")
        self.reset.on_click(lambda _: self.set_experts(off=(), forced=()))
        self.run()
        super().__init__([widgets.HBox([self.mode, self.policy, self.reset]), self.figure, self.status,
                          self.error, self.outputs])

    # --- interaction ---------------------------------------------------------------------
    def toggle(self, layer: int, expert: int, mode: str | None = None) -> None:
        """Add (layer, expert) to the set of `mode` (default: the selected one), or remove it; re-run."""
        mode = self.mode.value if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}; allowed: {', '.join(MODES)}")
        (pair,) = moe.check_experts(self.model, [(layer, expert)])
        before = set(self.off), set(self.forced)
        target, other = (self.off, self.forced) if mode == MODES[0] else (self.forced, self.off)
        other.discard(pair)
        target.symmetric_difference_update({pair})
        self.run(before)  # refused (said in the error line): back to the last valid sets

    def set_experts(self, off: Sequence[Sequence[int]] = (), forced: Sequence[Sequence[int]] = ()) -> None:
        """Replace both sets and re-run."""
        self.off = set(moe.check_experts(self.model, off, field="off"))
        self.forced = set(moe.check_experts(self.model, forced, field="forced"))
        self.run()

    def run(self, restore: tuple[set, set] | None = None) -> None:
        """Re-run the prompts with the current experts off / forced; update the map and tables.
        When the library refuses the combination the error line says why and the sets go back
        to `restore` (off, forced), if given."""
        off, forced, policy = sorted(self.off), sorted(self.forced), self.policy.value
        self._redraw()
        self.status.value = BUSY + (f" <span style='color:#777'>{self.status.value}</span>"
                                    if self.status.value and not self.status.value.startswith(BUSY) else "")

        def work():
            with ExitStack() as stack:
                if off:
                    stack.enter_context(moe.ablate(self.model, off, policy))
                if forced:
                    stack.enter_context(moe.force(self.model, forced))
                results = moe.replies(self.model, self.prompts, self.max_new_tokens)
                benign = moe.replies(self.model, self.benign, self.max_new_tokens) if self.benign else None
            return results, benign

        def fail(error: Exception) -> None:
            if not isinstance(error, ValueError):  # not bad input but a bug: its traceback
                raise error
            # e.g. more experts forced in a layer than fit in its top-k: the last valid run's
            # rate line stays; the refusal is said beside it
            self.error.value = f"<b style='color:#b00'>refused: {html.escape(str(error))}</b>"
            if restore is not None:
                self.off, self.forced = set(restore[0]), set(restore[1])
            self.status.value = self._status_line() if self.results is not None else ""
            self._redraw()

        self.work.submit(work, lambda result: self._show(*result, off, forced, policy), fail)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the run last asked for is shown (at most `timeout` s); True if so."""
        return self.work.wait(timeout)

    def _show(self, results: pd.DataFrame, benign: pd.DataFrame | None, off: list, forced: list, policy: str) -> None:
        self.results, self.benign_results, self.error.value = results, benign, ""
        rate = float(results["refused"].mean())
        benign_rate = float(benign["refused"].mean()) if benign is not None else None
        if not off and not forced:
            self.baseline_rate, self.baseline_benign_rate = rate, benign_rate
        self._shown = (rate, benign_rate, off, forced, policy)
        self.status.value = self._status_line()
        self.outputs.value = self._table_html()
        self._redraw()

    def _status_line(self) -> str:
        rate, benign_rate, off, forced, policy = self._shown
        line = f"<b>refusal rate {rate:.2f}</b> on {len(self.prompts)} prompts" + \
            (f" (no intervention: {self.baseline_rate:.2f})" if self.baseline_rate is not None else "")
        if benign_rate is not None:
            line += (f" · <b>false refusals {benign_rate:.2f}</b> on {len(self.benign)} benign prompts"
                     + (f" (no intervention: {self.baseline_benign_rate:.2f})"
                        if self.baseline_benign_rate is not None else ""))
        return line + f" · off ({policy}): {off or '—'}" + f" · forced: {forced or '—'}"

    # --- views ---------------------------------------------------------------------------
    def _figure(self) -> go.FigureWidget:
        fig = go.FigureWidget(
            data=[go.Heatmap(z=moe.score_matrix(self.scores), colorscale="RdBu", reversescale=True, zmid=0,
                             texttemplate="%{text}", colorbar=dict(title="score"))],
            layout=go.Layout(height=120 + 40 * self.n_layers, width=140 + 50 * self.n_experts,
                             margin=dict(l=60, r=10, t=40, b=40), title="expert score (click: off / on)",
                             xaxis=dict(title="expert", dtick=1), yaxis=dict(title="layer", dtick=1,
                                                                            autorange="reversed")))
        fig.data[0].on_click(self._on_click)
        return fig

    def _on_click(self, trace, points, state) -> None:
        for x, y in zip(points.xs, points.ys):
            self.toggle(int(y), int(x))

    def _redraw(self) -> None:
        text = [["off" if (layer, e) in self.off else "on" if (layer, e) in self.forced else ""
                 for e in range(self.n_experts)] for layer in range(self.n_layers)]
        self.figure.data[0].text = text

    def _table_html(self) -> str:
        eos = getattr(self.model.tokenizer, "eos_token", None)

        def rows(frame: pd.DataFrame, kind: str) -> str:
            return "".join(f"<tr><td>{kind}</td><td style='{_WRAP}'>{html.escape(r.prompt)}</td>"
                           f"<td style='{_WRAP}'>{reply_html(r.reply, eos)}</td>"
                           f"<td>{'refused' if r.refused else ''}</td></tr>" for r in frame.itertuples())

        body = rows(self.results, "harmful")
        if self.benign_results is not None:
            body += rows(self.benign_results, "benign (collateral)")
        head = "".join(f"<th style='text-align:left'>{h}</th>" for h in ("prompts", "prompt", "reply", "refused?"))
        return f"<table class='interp-expert-replies' style='width: 100%'><tr>{head}</tr>{body}</table>"


_WRAP = "white-space: pre-wrap; overflow-wrap: anywhere"

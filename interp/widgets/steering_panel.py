"""`SteeringPanel(model, prompts, directions, controllers)`: steer live and see where.

Choose a direction (fixed steering, one coefficient slider per layer, a positions choice)
or a trained controller (mode and α); the prompts' greedy replies are shown side by side,
unsteered and steered, with refusals counted per prompt kind, and a map shows where the
patch went for one prompt at a time (layer × that prompt's token positions, labelled with
its tokens; mean ‖patch‖ over the forward passes of generation; blank where nothing was
patched). Display only: the replies come from `interp.steering.apply.generate` and the map
from its `SteeringTrace.to_frame()`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp.steering import POSITIONS, ControllerSteering, Direction, Steering, SteeringController
from interp.steering.apply import generate
from interp.steering.controller import MODES
from interp.tasks.chat import chat_format
from interp.widgets.tokens_html import reply_html, token_label, until_eos
from interp.widgets.work import LatestRequest, model_lock

OWN_KIND = "yours"
"""The kind of the prompt typed into the panel's own text box."""
KIND_NOTES = {"benign": " (false refusals)", "jailbreak": " (planted: answered unsteered)"}
BUSY = "<span class='interp-busy'>\u23f3 generating\u2026</span>"


class SteeringPanel(widgets.VBox):
    """Live steering of `model` on `prompts` with named `directions` and/or `controllers`.

    `prompts`: strings, or `interp.tasks.refusal.ChatPrompt`s (their `kind` is then known);
    `kinds`: one kind per prompt ("harmful", "benign", ...) where `prompts` are strings
    (refusals are counted per kind). `directions`: a Direction or {name: Direction};
    `controllers`: {name: SteeringController}. `max_new_tokens`: reply length (replies are
    shown up to the end-of-text token); `coefficient_range`: (min, max) of the layer sliders,
    in residual-stream units (the unit direction times the coefficient is added).

    Every control re-runs the replies: the status line turns busy at once and the work runs
    on a worker thread (`background`, default: inside a Jupyter kernel), newest request first
    (`interp.widgets.work.LatestRequest`): a control moved while replies are generated replaces
    any request still waiting, and an older result never replaces a newer one. `wait()` blocks
    until the last request is shown.
    """

    def __init__(self, model, prompts: Sequence, directions: Mapping[str, Direction] | Direction | None = None,
                 controllers: Mapping[str, SteeringController] | None = None, max_new_tokens: int = 8,
                 coefficient_range: tuple[float, float] = (-20.0, 20.0), kinds: Sequence[str] | None = None,
                 background: bool | None = None):
        if isinstance(directions, Direction):
            directions = {directions.name or directions.method: directions}
        self.directions = dict(directions or {})
        self.controllers = dict(controllers or {})
        if not self.directions and not self.controllers:
            raise ValueError("give at least one direction or controller to steer with")
        clash = set(self.directions) & set(self.controllers)
        if clash:
            raise ValueError(f"names {sorted(clash)} are used by both a direction and a controller; rename one")
        if isinstance(prompts, str) or not prompts:
            raise ValueError(f"prompts={prompts!r} must be a non-empty list of strings or ChatPrompts")
        self.model, self.max_new_tokens = model, max_new_tokens
        self.base_prompts, self.base_kinds = _prompts_and_kinds(list(prompts), kinds)
        self.chat = chat_format(model)  # replies are judged by the model's own refusal openings
        self.eos = getattr(model.tokenizer, "eos_token", None)
        self.results: pd.DataFrame | None = None
        self.trace_frame: pd.DataFrame | None = None
        self.prompt_lengths: list[int] = []
        self._holding = False
        self.work = LatestRequest(background, model_lock(model))

        n_layers = model.cfg.n_layers
        lo, hi = coefficient_range
        self.source = widgets.Dropdown(options=list(self.directions) + list(self.controllers), description="steer with")
        self.sliders = [widgets.FloatSlider(value=0.0, min=lo, max=hi, step=0.5, description=f"layer {layer}",
                                            continuous_update=False) for layer in range(n_layers)]
        self.positions = widgets.Dropdown(options=list(POSITIONS), value="generated", description="positions")
        self.mode = widgets.ToggleButtons(options=list(MODES), value=MODES[0], description="mode")
        self.alpha = widgets.FloatSlider(value=1.0, min=0.05, max=8.0, step=0.05, description="α",
                                         continuous_update=False)
        self.own_prompt = widgets.Text(value="", placeholder="type a request: it is added in the model's chat format",
                                       description="your prompt", continuous_update=False,
                                       # the default 80 px label cut "your prompt" to "your pro…"
                                       style={"description_width": "initial"}, layout=widgets.Layout(width="600px"))
        self.fixed_box = widgets.VBox([self.positions, *self.sliders])
        self.controller_box = widgets.VBox([self.mode, self.alpha])
        self.status = widgets.HTML()
        # as wide as the panel: "auto" stretches it to the panel's width less its margins, where
        # 100% plus the margins ran 4 px past a 1000 px output
        self.table = widgets.HTML(layout=widgets.Layout(width="auto"))
        self.map_prompt = widgets.Dropdown(options=[], description="map of", layout=widgets.Layout(width="600px"))
        self.map_note = widgets.HTML()
        self.figure = go.FigureWidget(layout=dict(
            title="where the patch was applied (mean ‖patch‖ over generation)", xaxis_title="token position",
            yaxis=dict(title="layer", tickmode="array", tickvals=list(range(n_layers)),
                       ticktext=[str(layer) for layer in range(n_layers)], range=[-0.5, n_layers - 0.5]),
            xaxis=dict(type="category", tickangle=-60), height=320, margin=dict(t=40, b=110, l=60, r=20)))
        self.figure.add_heatmap(z=[[None]], colorscale="Blues", colorbar=dict(title="‖patch‖<br>(resid units)"),
                                hoverongaps=False, xgap=1, ygap=1,
                                hovertemplate="%{x}<br>layer %{y}<br>‖patch‖ %{z:.3g}<extra></extra>")
        self.map_box = widgets.VBox([self.map_prompt, self.map_note, self.figure])
        self.controls = [self.source, *self.sliders, self.positions, self.mode, self.alpha, self.own_prompt]
        for w in (*self.sliders, self.positions, self.mode, self.alpha, self.own_prompt):
            w.observe(lambda change: self.run(), names="value")
        self.source.observe(lambda change: self._on_source(), names="value")
        self.map_prompt.observe(lambda change: self._draw_trace(), names="value")
        super().__init__([self.source, self.fixed_box, self.controller_box, self.own_prompt, self.status,
                          self.table, self.map_box])
        self.add_class("interp-steering-panel")
        self._on_source()

    # --- interaction ---------------------------------------------------------------------
    @property
    def prompts(self) -> list[str]:
        """The prompts replied to: the given ones, then the text box's (in chat format) if any."""
        own = self.own_prompt.value.strip()
        return self.base_prompts + ([self.chat.prompt(own)] if own else [])

    @property
    def kinds(self) -> list[str]:
        """The kind of every prompt in `prompts`."""
        return self.base_kinds + ([OWN_KIND] if self.own_prompt.value.strip() else [])

    def set_coefficient(self, layer: int, value: float) -> None:
        """Move layer `layer`'s slider (re-runs)."""
        if not 0 <= layer < len(self.sliders):
            raise ValueError(f"layer={layer} must be in [0, {len(self.sliders)})")
        self.sliders[layer].value = value

    def select(self, name: str) -> None:
        """Steer with the direction or controller called `name` (re-runs)."""
        if name not in self.source.options:
            raise ValueError(f"name={name!r} is not one of {list(self.source.options)}")
        self.source.value = name

    def spec(self) -> Steering | ControllerSteering | None:
        """The steering spec the widgets describe (None: every coefficient is 0)."""
        name = self.source.value
        if name in self.controllers:
            return ControllerSteering(self.controllers[name], mode=self.mode.value, alpha=self.alpha.value)
        coefs = {layer: s.value for layer, s in enumerate(self.sliders) if s.value != 0.0}
        if not coefs:
            return None
        return Steering(self.directions[name], list(coefs), list(coefs.values()), positions=self.positions.value)

    def run(self) -> None:
        """Generate unsteered and steered replies for the current settings and redraw (at once,
        or on the worker thread: see the class docstring)."""
        if self._holding:
            return
        spec = self.spec()
        if spec is None:  # through the worker too, so that replies still running are not shown over this
            self.work.submit(lambda: None, lambda _: self._show_nothing())
            return
        prompts, kinds = self.prompts, self.kinds
        self.status.value = BUSY  # at once; the controls stay live: a newer request replaces this one

        def fail(error: Exception) -> None:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(error))}</b>"
            if not isinstance(error, ValueError):  # not bad input but a bug: its traceback too
                raise error

        self.work.submit(lambda: generate(self.model, spec, prompts, self.max_new_tokens),
                         lambda result: self._show(prompts, kinds, *result), fail)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the replies last asked for are shown (at most `timeout` s); True if so."""
        return self.work.wait(timeout)

    def _show_nothing(self) -> None:
        self.status.value = "<i>all coefficients are 0: move a slider to steer</i>"
        self.results, self.trace_frame, self.prompt_lengths = None, None, []
        self.table.value = ""
        self.map_box.layout.display = "none"  # nothing was patched: no map at all

    def _show(self, prompts: list[str], kinds: list[str], results: pd.DataFrame, trace) -> None:
        self.results = results
        self.results["kind"] = kinds
        self.trace_frame = trace.to_frame()
        self.prompt_lengths = [self.model.to_tokens(p, prepend_bos=True).shape[1] for p in prompts]
        self.status.value = self._counts_html()
        self.table.value = self._table_html()
        keep = self.map_prompt.value if self.map_prompt.value is not None and \
            self.map_prompt.value < len(prompts) else 0
        self._holding = True  # new options, then one redraw
        try:
            self.map_prompt.options = [(f"{i}: {kind}: {_short(p)}", i)
                                       for i, (p, kind) in enumerate(zip(prompts, kinds))]
            self.map_prompt.value = keep
        finally:
            self._holding = False
        self.map_box.layout.display = None
        self._draw_trace()

    def refusal_counts(self) -> pd.DataFrame:
        """Per prompt kind (in order of appearance): n, refused unsteered, refused steered."""
        if self.results is None:
            raise ValueError("no replies yet: move a slider (or select a controller) first")
        judged = self.results.assign(
            plain=self.results["unsteered"].map(self._refused), steered=self.results["steered"].map(self._refused))
        return (judged.groupby("kind", sort=False)
                .agg(n=("prompt", "size"), unsteered=("plain", "sum"), steered=("steered", "sum")).reset_index())

    def patched_positions(self, prompt: int) -> pd.DataFrame:
        """The trace's patches of prompt `prompt` (index into `prompts`): one row per (layer,
        position) with the mean ‖patch‖ over the forwards of its generation, at the positions
        its generation fed the model (those of `position_labels`)."""
        if self.trace_frame is None:
            raise ValueError("no trace yet: move a slider (or select a controller) first")
        if not 0 <= prompt < len(self.prompt_lengths):
            raise ValueError(f"prompt={prompt} must be in [0, {len(self.prompt_lengths)})")
        # greedy decodes prompts of one token length together (their forwards carry that
        # length) until every row has stopped: a reply that ended earlier was fed no further
        frame = self.trace_frame
        mine = frame[(frame["prompt_length"] == self.prompt_lengths[prompt])
                     & (frame["position"] < len(self.position_labels(prompt)))]
        return mine.groupby(["layer", "position"], as_index=False)["delta_norm_mean"].mean()

    def position_labels(self, prompt: int) -> list[str]:
        """"t token" for every position the generation of prompt `prompt` fed the model
        (its tokens, BOS first, then the steered reply's, the last one excluded: a reply that
        ended at the end-of-text token was fed no further)."""
        text, reply = self.results["prompt"].iloc[prompt], self.results["steered"].iloc[prompt]
        tokens = self.model.to_str_tokens(text, prepend_bos=True) + \
            self.model.to_str_tokens(reply, prepend_bos=False)
        return [f"{t} {token_label(tokens[t])}" for t in range(len(tokens) - 1)]

    # --- drawing -------------------------------------------------------------------------
    def _refused(self, reply: str) -> bool:
        return self.chat.is_refusal(until_eos(reply, self.eos)[0])

    def _counts_html(self) -> str:
        parts = [f"{html.escape(r.kind)}{KIND_NOTES.get(r.kind, '')}: {r.unsteered} → <b>{r.steered}</b> of {r.n}"
                 for r in self.refusal_counts().itertuples()]
        changed = int(self.results["changed"].sum())
        return (f"refused, unsteered → steered: {' &nbsp;·&nbsp; '.join(parts)}; "
                f"{changed} of {len(self.results)} replies changed")

    def _table_html(self) -> str:
        def cell(text: str, cls: str) -> str:
            style = "background:#fde0dd;" if self._refused(text) else ""
            return f"<td class='{cls}' style='{style}{_WRAP}'>{reply_html(text, self.eos)}</td>"

        rows = "".join(f"<tr><td style='{_WRAP}'>{html.escape(r.prompt)}</td><td>{html.escape(r.kind)}</td>"
                       f"{cell(r.unsteered, 'interp-unsteered')}{cell(r.steered, 'interp-steered')}</tr>"
                       for r in self.results.itertuples())
        return ("<table class='interp-replies' style='table-layout: fixed; width: 100%; border-collapse: collapse'>"
                "<colgroup><col style='width: 34%'><col style='width: 8%'><col style='width: 29%'>"
                "<col style='width: 29%'></colgroup>"
                "<tr><th>prompt</th><th>kind</th><th>unsteered</th><th>steered</th></tr>" + rows + "</table>"
                "<small>refusals highlighted; EOS: end of text</small>")

    def _on_source(self) -> None:
        is_controller = self.source.value in self.controllers
        self.fixed_box.layout.display = "none" if is_controller else None
        self.controller_box.layout.display = None if is_controller else "none"
        if is_controller:
            cfg = self.controllers[self.source.value].cfg
            self._holding = True  # set both widgets, then run once
            try:
                self.mode.value, self.alpha.value = cfg.mode, cfg.alpha
            finally:
                self._holding = False
        self.run()

    def _draw_trace(self) -> None:
        if self._holding or self.results is None or self.map_prompt.value is None:
            return
        i = self.map_prompt.value
        labels = self.position_labels(i)
        patched = self.patched_positions(i)
        n_layers = len(self.sliders)
        z = [[None] * len(labels) for _ in range(n_layers)]  # blank: not patched
        for r in patched.itertuples():
            z[r.layer][r.position] = r.delta_norm_mean
        where = sorted(patched["position"].unique().tolist())
        self.map_note.value = (f"prompt {i} ({html.escape(self.results['kind'].iloc[i])}, "
                               f"{self.prompt_lengths[i]} prompt tokens): "
                               f"patched at {len(where)} position(s) {_ranges(where)} in layer(s) "
                               f"{', '.join(str(x) for x in sorted(patched['layer'].unique()))}")
        with self.figure.batch_update():
            self.figure.data[0].z = z
            self.figure.data[0].x = labels
            self.figure.data[0].y = list(range(n_layers))


_WRAP = "white-space: pre-wrap; overflow-wrap: anywhere; vertical-align: top; text-align: left"


def _prompts_and_kinds(prompts: list, kinds: Sequence[str] | None) -> tuple[list[str], list[str]]:
    texts = [p if isinstance(p, str) else p.prompt for p in prompts]
    if kinds is not None:
        kinds = list(kinds)
        if len(kinds) != len(prompts) or not all(isinstance(k, str) and k for k in kinds):
            raise ValueError(f"kinds has {len(kinds)} entries for {len(prompts)} prompts; give one "
                             "non-empty string per prompt (e.g. 'harmful', 'benign')")
        return texts, kinds
    return texts, [getattr(p, "kind", "prompt") for p in prompts]


def _short(text: str, n: int = 60) -> str:
    text = text.replace("\n", " \u21b5 ")
    return text if len(text) <= n else text[:n - 1] + "\u2026"


def _ranges(positions: list[int]) -> str:
    """[3, 4, 5, 9] -> "3–5, 9"."""
    out, start = [], None
    for k, t in enumerate(positions):
        if start is None:
            start = t
        if k + 1 == len(positions) or positions[k + 1] != t + 1:
            out.append(str(start) if start == t else f"{start}\u2013{t}")
            start = None
    return ", ".join(out)

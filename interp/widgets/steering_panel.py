"""`SteeringPanel(model, prompts, directions, controllers)`: steer live and see where.

Choose a direction (fixed steering, one coefficient slider per layer, a positions choice)
or a trained controller (mode and α); the prompts' greedy replies are shown side by side,
unsteered and steered, and a heatmap shows where the patch went (layer × token position,
mean ‖patch‖ over the forward passes of generation). Display only: the replies come from
`interp.steering.apply.generate` and the heatmap from its `SteeringTrace.to_frame()`.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from functools import partial

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp.steering import POSITIONS, ControllerSteering, Direction, Steering, SteeringController
from interp.steering.apply import generate
from interp.steering.controller import MODES
from interp.tasks.chat import ChatFormat, chat_format
from interp.tasks.refusal import is_refusal


class SteeringPanel(widgets.VBox):
    """Live steering of `model` on `prompts` with named `directions` and/or `controllers`.

    `directions`: a Direction or {name: Direction}; `controllers`: {name: SteeringController}.
    `max_new_tokens`: reply length; `coefficient_range`: (min, max) of the layer sliders.
    """

    def __init__(self, model, prompts: Sequence[str], directions: Mapping[str, Direction] | Direction | None = None,
                 controllers: Mapping[str, SteeringController] | None = None, max_new_tokens: int = 8,
                 coefficient_range: tuple[float, float] = (-20.0, 20.0)):
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
            raise ValueError(f"prompts={prompts!r} must be a non-empty list of strings")
        self.model, self.prompts, self.max_new_tokens = model, list(prompts), max_new_tokens
        self.chat = chat_format(model)  # replies are judged by the model's own refusal openings
        self.results: pd.DataFrame | None = None
        self.trace_frame: pd.DataFrame | None = None
        self._holding = False

        n_layers = model.cfg.n_layers
        lo, hi = coefficient_range
        self.source = widgets.Dropdown(options=list(self.directions) + list(self.controllers), description="steer with")
        self.sliders = [widgets.FloatSlider(value=0.0, min=lo, max=hi, step=0.5, description=f"layer {layer}",
                                            continuous_update=False) for layer in range(n_layers)]
        self.positions = widgets.Dropdown(options=list(POSITIONS), value="generated", description="positions")
        self.mode = widgets.ToggleButtons(options=list(MODES), value=MODES[0], description="mode")
        self.alpha = widgets.FloatSlider(value=1.0, min=0.05, max=8.0, step=0.05, description="α",
                                         continuous_update=False)
        self.fixed_box = widgets.VBox([self.positions, *self.sliders])
        self.controller_box = widgets.VBox([self.mode, self.alpha])
        self.status = widgets.HTML()
        self.table = widgets.HTML()
        self.figure = go.FigureWidget(layout=dict(title="where the patch was applied (mean ‖patch‖)",
                                                  xaxis_title="token position", yaxis_title="layer",
                                                  height=260, margin=dict(t=40, b=40, l=60, r=20)))
        self.figure.add_heatmap(z=[[0.0]], colorscale="Blues", colorbar=dict(title="‖patch‖"))
        for w in (*self.sliders, self.positions, self.mode, self.alpha):
            w.observe(lambda change: self.run(), names="value")
        self.source.observe(lambda change: self._on_source(), names="value")
        super().__init__([self.source, self.fixed_box, self.controller_box, self.status, self.table, self.figure])
        self._on_source()

    # --- interaction ---------------------------------------------------------------------
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
        """Generate unsteered and steered replies for the current settings and redraw."""
        if self._holding:
            return
        spec = self.spec()
        if spec is None:
            self.status.value = "<i>all coefficients are 0: move a slider to steer</i>"
            self.results, self.trace_frame = None, None
            self.table.value = ""
            self._draw_trace(pd.DataFrame(columns=["layer", "position", "delta_norm_mean"]))
            return
        try:
            self.results, trace = generate(self.model, spec, self.prompts, self.max_new_tokens)
        except ValueError as e:
            self.status.value = f"<b style='color:#b00'>{html.escape(str(e))}</b>"
            return
        self.trace_frame = trace.to_frame()
        judge = partial(is_refusal, chat=self.chat)
        n_steered = int(self.results["steered"].map(judge).sum())
        n_plain = int(self.results["unsteered"].map(judge).sum())
        self.status.value = (f"refusals: {n_plain} unsteered → <b>{n_steered}</b> steered, of {len(self.prompts)}; "
                             f"{int(self.results['changed'].sum())} replies changed")
        self.table.value = _table_html(self.results, self.chat)
        self._draw_trace(self.trace_frame)

    # --- drawing -------------------------------------------------------------------------
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

    def _draw_trace(self, frame: pd.DataFrame) -> None:
        heat = frame.pivot_table(index="layer", columns="position", values="delta_norm_mean", aggfunc="mean") \
            if len(frame) else pd.DataFrame([[0.0]])
        with self.figure.batch_update():
            self.figure.data[0].z = heat.to_numpy().tolist()
            self.figure.data[0].x = [int(c) for c in heat.columns]
            self.figure.data[0].y = [int(i) for i in heat.index]


def _table_html(results: pd.DataFrame, chat: ChatFormat) -> str:
    def cell(text: str) -> str:
        style = "background:#fde0dd" if is_refusal(text, chat) else ""
        return f"<td style='{style};white-space:pre'>{html.escape(text)}</td>"

    rows = "".join(f"<tr><td style='white-space:pre'>{html.escape(r.prompt)}</td>{cell(r.unsteered)}"
                   f"{cell(r.steered)}</tr>" for r in results.itertuples())
    return ("<table><tr><th>prompt</th><th>unsteered</th><th>steered</th></tr>" + rows + "</table>"
            "<small>refusals highlighted</small>")

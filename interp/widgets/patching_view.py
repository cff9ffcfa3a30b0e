"""`PatchingView(scores, ...)`: patching scores as [layer, position] heatmaps in a notebook.

A method selector switches every heatmap (one per component, and heads when present) to that
method's scores, all on one colour scale symmetric about 0 (± the largest |score| of the
method over every map shown, so colours compare across maps); a table shows each method's
Pearson r with exact activation patching; clicking a cell (or calling `select`) outlines it
and shows that node's verification: the method's score beside the exact activation-patching
score, from `interp.patching.verify` when the view has the model, prompts and metric, else
from the "ap" rows of `scores`. An approx-vs-exact scatter shows the selected method's score
against the exact one: every node that has both in `scores` (grey) and every node verified
(clicked, or `verify_top`) by `interp.patching.verify` (black). Clicking a cell of an SAE (or
transcoder) map lists that cell's latents, strongest first, as buttons: each verifies its node
and opens the latent in a `FeatureDashboard` (`feature_dashboard=`) or hands it to `on_latent`.
Display only: every number comes from `interp.patching` (score_map, correlations, verify),
and verifications are cached.
"""

from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp.patching import correlations, score_map, verify
from interp.patching.nodes import LATENTS, Site, parse_node
from interp.widgets.tokens_html import token_label
from interp.widgets.work import LatestRequest, model_lock

TITLES = {"ap": "activation patching (exact)", "atp": "attribution patching (AtP)", "relp": "relevance patching (RelP)",
          "ig": "integrated gradients"}
COLORBAR_TITLE = "score<br>(Δ metric)"
"""Every method's score is in the metric's units: the change of the metric the node accounts for."""
BUSY = "<span class='interp-busy'>⏳</span>"


class PatchingView(widgets.VBox):
    """Show the tidy `scores` of one or more methods (`interp.patching` output, concatenated).

    model, clean, corrupt, metric, sae: the inputs the scores came from; with them a clicked
    node is verified by exact patching through `interp.patching.verify`. `reference`: the
    exact method for the correlation table. `tokens`: x-axis labels (default: the model's
    tokens of the first clean prompt, if given). `method`: shown first. `feature_dashboard`: a
    `FeatureDashboard` of the SAE whose latents are scored here, where a latent button opens the
    latent; `on_latent`: called with the latent id instead (or as well). A click's exact
    patching runs on a worker thread (`background`, default: inside a Jupyter kernel), newest
    click first (`interp.widgets.work.LatestRequest`): the busy line shows at once, and a
    verification that finishes after a newer click is never shown over it; `wait()` blocks
    until the last one is shown. `select` verifies in place and returns the row.
    """

    def __init__(self, scores: pd.DataFrame, model=None, clean=None, corrupt=None, metric=None, sae=None,
                 reference: str = "ap", tokens: list[str] | None = None, method: str | None = None,
                 feature_dashboard=None, on_latent: Callable[[int], object] | None = None,
                 background: bool | None = None):
        methods = list(dict.fromkeys(scores["method"]))
        if not methods:
            raise ValueError("scores is empty: pass the DataFrame of one or more interp.patching methods")
        if method is not None and method not in methods:
            raise ValueError(f"method={method!r} is not among the methods {methods}")
        self.scores, self.reference = scores, reference
        self.inputs = (model, clean, corrupt, metric) if None not in (model, clean, corrupt, metric) else None
        self.sae = sae
        if tokens is None and model is not None and clean is not None:
            first = clean[0] if not isinstance(clean, (list, tuple)) else model.to_tokens(clean[0])[0]
            tokens = model.to_str_tokens(first)
        self.tokens = tokens
        self.components = [c for c in ("resid_pre", "attn_out", "mlp_out", "head", "neuron", *LATENTS)
                           if c in set(scores["component"])]
        if feature_dashboard is not None and not hasattr(getattr(feature_dashboard, "latent", None), "value"):
            raise ValueError(f"feature_dashboard={type(feature_dashboard).__name__}: pass an "
                             "interp.widgets.FeatureDashboard (a latent button sets its latent)")
        if on_latent is not None and not callable(on_latent):
            raise ValueError(f"on_latent={on_latent!r} must be callable with a latent id")
        self.feature_dashboard, self.on_latent = feature_dashboard, on_latent
        self.work = LatestRequest(background, model_lock(model) if model is not None else None)
        self._verified: dict[tuple[str, str], pd.Series] = {}
        self.selected: tuple[str, str] | None = None

        self.method = widgets.Dropdown(options=[(TITLES.get(m, m), m) for m in methods], value=method or methods[-1],
                                       description="method", layout=widgets.Layout(width="380px"))
        self.correlation = widgets.HTML(self._correlation_html())
        self.verification = widgets.HTML("<i>click a cell to verify that node against exact activation patching</i>")
        self.latent_links = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.figures = {c: self._figure(c) for c in self.components}
        self.scatter = self._scatter_figure()
        self.method.observe(lambda change: self._redraw(), names="value")
        self._redraw()
        # the verification sits above the maps, so a click's answer is on screen beside the click
        super().__init__([widgets.HBox([self.method, self.correlation]), self.verification, self.latent_links,
                          widgets.HBox([*self.figures.values(), self.scatter],
                                       layout=widgets.Layout(flex_flow="row wrap"))])

    # --- views ---------------------------------------------------------------------------
    def _figure(self, component: str) -> go.FigureWidget:
        fig = go.FigureWidget(
            data=[go.Heatmap(z=[[0]], colorscale="RdBu", reversescale=True, zmid=0,
                             colorbar=dict(title=dict(text=COLORBAR_TITLE, side="right")),
                             hovertemplate="%{y} · position %{x}<br>score %{z:.4g}<extra></extra>"),
                  go.Scatter(x=[], y=[], mode="markers", name="selected", showlegend=False, hoverinfo="skip",
                             marker=dict(symbol="square-open", size=16, color="black", line=dict(width=3)))],
            layout=go.Layout(height=260 if component != "head" else 420, width=480,
                             margin=dict(l=70, r=10, t=40, b=60), title=component,
                             yaxis=dict(autorange="reversed", type="category",
                                        title="L.H (layer.head)" if component == "head" else "layer"),
                             xaxis=dict(type="category")))
        fig.data[0].on_click(lambda trace, points, state, c=component: self._on_click(c, points))
        return fig

    def _scatter_figure(self) -> go.FigureWidget:
        return go.FigureWidget(
            data=[go.Scatter(x=[], y=[], mode="markers", name=f"{self.reference} rows of the scores",
                             marker=dict(color="lightgray", size=5), text=[],
                             hovertemplate="%{text}<br>exact %{x:.4g} · approx %{y:.4g}<extra></extra>"),
                  go.Scatter(x=[], y=[], mode="markers", name="verified (interp.patching.verify)",
                             marker=dict(color="black", size=8), text=[],
                             hovertemplate="%{text}<br>exact %{x:.4g} · approx %{y:.4g}<extra></extra>"),
                  go.Scatter(x=[], y=[], mode="lines", name="approx = exact", hoverinfo="skip",
                             line=dict(color="gray", dash="dash", width=1))],
            layout=go.Layout(height=360, width=420, margin=dict(l=60, r=10, t=40, b=50), title="approx vs exact",
                             xaxis_title="exact activation patching (Δ metric)", yaxis_title="approx (Δ metric)",
                             legend=dict(orientation="h", y=-0.25)))

    def scatter_points(self, method: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(pairs from the scores, verified pairs) behind the scatter for `method` (default: the
        selected one): columns node, approx, exact; the first from `method`'s and the reference's
        rows of `scores` (empty without reference rows), the second from the verifications so far."""
        method = method or self.method.value
        cols = ["node", "approx", "exact"]
        if method == self.reference or self.reference not in set(self.scores["method"]):
            pairs = pd.DataFrame(columns=cols)
        else:
            one = self.scores[self.scores["method"] == method][["node", "score"]].rename(columns={"score": "approx"})
            ref = self.scores[self.scores["method"] == self.reference][["node", "score"]]
            pairs = one.merge(ref.rename(columns={"score": "exact"}), on="node")[cols]
        done = [row for (m, _), row in self._verified.items() if m == method]
        verified = pd.DataFrame([{c: r[c] for c in cols} for r in done], columns=cols)
        return pairs, verified

    def _draw_scatter(self) -> None:
        method = self.method.value
        pairs, verified = self.scatter_points(method)
        values = pd.concat([pairs[["approx", "exact"]], verified[["approx", "exact"]]]).to_numpy(dtype=float)
        lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        with self.scatter.batch_update():
            for trace, frame in zip(self.scatter.data[:2], (pairs, verified)):
                trace.x, trace.y, trace.text = frame["exact"].tolist(), frame["approx"].tolist(), frame["node"].tolist()
            self.scatter.data[2].x = self.scatter.data[2].y = [lo, hi] if values.size else []
            self.scatter.layout.title = (f"{TITLES.get(method, method)} vs exact" if values.size else
                                         "approx vs exact: no exact scores yet (click a cell to verify it)")

    def verify_top(self, k: int) -> pd.DataFrame:
        """Verify the selected method's `k` strongest nodes at once (`interp.patching.verify`,
        needs the model, prompts and metric) and add them to the scatter; returns their table."""
        if self.inputs is None:
            raise ValueError("verify_top needs the model, clean and corrupt prompts and metric: pass them to "
                             "PatchingView")
        method = self.method.value
        table = verify(self.scores[self.scores["method"] == method], k, *self.inputs, sae=self.sae).table
        for _, row in table.iterrows():
            self._verified[(method, row["node"])] = row.copy().rename(None)
            self._verified[(method, row["node"])]["source"] = "interp.patching.verify"
        self._draw_scatter()
        return table

    def colour_range(self, method: str) -> float:
        """The method's colour scale is [-r, r]: r = the largest |score| over every map shown."""
        r = max((float(score_map(self.scores, c, method).abs().max().max()) for c in self.components
                 if self._scored(c, method)), default=0.0)
        return r if r > 0 else 1.0

    def _scored(self, component: str, method: str) -> bool:
        """Whether `method` scored `component` (e.g. SAE latents scored by RelP alone)."""
        s = self.scores
        return bool(((s["method"] == method) & (s["component"] == component)).any())

    def _redraw(self) -> None:
        m = self.method.value
        r = self.colour_range(m)
        for c, fig in self.figures.items():
            if not self._scored(c, m):  # an empty map that says so, not an error
                with fig.batch_update():
                    fig.data[0].z, fig.data[0].x, fig.data[0].y = [], [], []
                    fig.layout.title = f"{c} — no {TITLES.get(m, m)} scores"
                continue
            grid = score_map(self.scores, c, m)
            with fig.batch_update():
                fig.data[0].z = grid.to_numpy()
                fig.data[0].x = [self._position_label(p) for p in grid.columns]
                fig.data[0].y = [str(r) for r in grid.index]
                fig.data[0].zmin, fig.data[0].zmax = -r, r
                fig.layout.title = f"{c} — {TITLES.get(m, m)}"
        self._mark()
        self._draw_scatter()

    def _position_label(self, p: int) -> str:
        token = self.tokens[p] if self.tokens is not None and p < len(self.tokens) else ""
        return f"{p}:{token_label(token)}"

    def _mark(self) -> None:
        """Outline the selected node's cell on its map (and nothing on the others)."""
        cell = self._cell(self.selected[1]) if self.selected is not None else None
        for c, fig in self.figures.items():
            x, y = ([cell[2]], [cell[1]]) if cell is not None and cell[0] == c else ([], [])
            with fig.batch_update():
                fig.data[1].x, fig.data[1].y = x, y

    def _cell(self, node: str) -> tuple[str, str, str] | None:
        """(component, row label, column label) of `node`'s cell, None where it has none."""
        ref = parse_node(node)
        if ref.component not in self.figures:
            return None
        row = f"L{ref.layer}.H{ref.unit}" if ref.component == "head" else str(ref.layer)
        return ref.component, row, self._position_label(ref.position)

    def _correlation_html(self) -> str:
        if self.reference not in set(self.scores["method"]) or self.scores["method"].nunique() < 2:
            return f"<i>no correlation table: scores need the {self.reference!r} method and another one</i>"
        table = correlations(self.scores, self.reference)
        # a component the reference never scored (e.g. SAE latents by RelP alone) has no r, not "nan"
        table = table[table["n_nodes"] > 1].pivot(index="component", columns="method", values="pearson")
        head = "".join(f"<th>{html.escape(str(m))}</th>" for m in table.columns)
        body = "".join(f"<tr><td>{html.escape(str(c))}</td>" + "".join(f"<td>{v:.3f}</td>" for v in row) + "</tr>"
                       for c, row in table.iterrows())
        return (f"<div><b>Pearson r with {html.escape(self.reference)}</b><table><tr><th>component</th>{head}</tr>"
                f"{body}</table></div>")

    # --- verification ----------------------------------------------------------------------
    def _on_click(self, component: str, points) -> None:
        if not points.point_inds:
            return
        row, col = points.point_inds[0]
        grid = score_map(self.scores, component, self.method.value)
        label, position = str(grid.index[row]), int(grid.columns[col])
        if component == "head":
            layer, head = (int(s[1:]) for s in label.split("."))
            self.request(f"head.L{layer}.H{head}.P{position}")
        elif component in LATENTS:
            self.show_latents(component, int(label), position)
        elif component == "neuron":
            self.verification.value = (f"<i>{component} maps sum over units; verify one unit with "
                                       f"select('{component}.L{label}.U&lt;unit&gt;.P{position}')</i>")
        else:
            self.request(Site(component, int(label), "", 1).node(position, 0))

    def cell_latents(self, component: str, layer: int, position: int, k: int | None = 8) -> pd.DataFrame:
        """The `k` (None: all) latents of an SAE (or transcoder) map's cell with the largest
        |score| for the selected method: rows of `scores`, strongest first."""
        s = self.scores
        cell = s[(s["method"] == self.method.value) & (s["component"] == component) & (s["layer"] == layer)
                 & (s["position"] == position)]
        cell = cell.reindex(cell["score"].abs().sort_values(ascending=False, kind="stable").index)
        return cell if k is None else cell.head(k)

    def show_latents(self, component: str, layer: int, position: int, k: int = 8) -> None:
        """List the cell's strongest latents as buttons (`cell_latents`); a button verifies its
        node and opens the latent (`open_latent`)."""
        cell = self.cell_latents(component, layer, position, None)
        top = cell.head(k)
        buttons = []
        for row in top.itertuples():
            b = widgets.Button(description=f"latent {row.unit} ({row.score:+.3g})",
                               tooltip=f"verify {row.node} and open latent {row.unit}",
                               layout=widgets.Layout(width="auto"))
            b.add_class("interp-latent-link")
            b.on_click(lambda _, node=row.node: self.open_latent(node))
            buttons.append(b)
        self.latent_links.children = tuple(buttons)
        where = f"{component} layer {layer}, position {html.escape(self._position_label(position))}"
        self.verification.value = (f"<i>{where}: the map sums {len(cell)} latents; the strongest are below: "
                                   "click one to verify it and open it</i>" if buttons else
                                   f"<i>{where}: no latent scored here</i>")

    def open_latent(self, node: str) -> int:
        """Verify the latent node `node` (e.g. 'sae.L2.U123.P5') and open its latent in the
        feature dashboard and/or hand it to `on_latent`; returns the latent id."""
        ref = parse_node(node)
        if ref.component not in LATENTS:
            raise ValueError(f"node={node!r} is not a latent node ({', '.join(LATENTS)}.L<layer>.U<latent>.P<pos>)")
        self.request(node)
        if self.feature_dashboard is not None:
            self.feature_dashboard.latent.value = ref.unit
        if self.on_latent is not None:
            self.on_latent(ref.unit)
        return ref.unit

    def select(self, node: str) -> pd.Series:
        """Verify `node` (a node name) for the selected method and show it, here and now;
        returns the row (approx, exact, error) of `interp.patching.verify`'s table."""
        key, one, before = self._begin(node)
        try:
            row = self._verified_row(key, one)
        except ValueError:
            self._undo(before)
            raise
        self._show_verification(key, row)
        return row

    def request(self, node: str) -> None:
        """What a click does: mark `node` and verify it like `select`, on the worker (newest
        click first, see the class docstring); a refusal is shown in the verification line."""
        key, one, before = self._begin(node)

        def fail(error: Exception) -> None:
            self._undo(before)
            self.verification.value = f"<b style='color:#b00'>{html.escape(str(error))}</b>"
            if not isinstance(error, ValueError):  # not bad input but a bug: its traceback too
                raise error

        self.work.submit(lambda: self._verified_row(key, one), lambda row: self._show_verification(key, row), fail)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the verification last clicked is shown (at most `timeout` s); True if so."""
        return self.work.wait(timeout)

    def _begin(self, node: str) -> tuple[tuple[str, str], pd.DataFrame, tuple[str, str] | None]:
        """Check `node`, select and mark it, show the busy line if it needs exact patching."""
        parse_node(node)
        method = self.method.value
        one = self.scores[(self.scores["method"] == method) & (self.scores["node"] == node)]
        if one.empty:
            raise ValueError(f"node={node!r} has no {method} score in this view")
        key, before = (method, node), self.selected
        self.selected = key
        self._mark()
        if key not in self._verified:
            self.verification.value = f"{BUSY} verifying <b>{html.escape(node)}</b> by exact patching…"
        return key, one, before

    def _undo(self, before: tuple[str, str] | None) -> None:
        self.selected = before
        self._mark()

    def _verified_row(self, key: tuple[str, str], one: pd.DataFrame) -> pd.Series:
        if key not in self._verified:
            self._verified[key] = self._verify(one, *key)
        return self._verified[key]

    def _show_verification(self, key: tuple[str, str], row: pd.Series) -> None:
        method, node = key
        self._draw_scatter()
        self.verification.value = (
            f"<b>{html.escape(node)}</b> ({html.escape(TITLES.get(method, method))}): score {row['approx']:.4f}, "
            f"exact activation patching {row['exact']:.4f}, error {row['error']:+.4f} "
            f"<span style='color:grey'>({html.escape(row['source'])})</span>")

    def _verify(self, one: pd.DataFrame, method: str, node: str) -> pd.Series:
        if self.inputs is not None:
            row = verify(one, 1, *self.inputs, sae=self.sae).table.iloc[0].copy()
            row["source"] = "interp.patching.verify"
            return row
        exact = self.scores[(self.scores["method"] == self.reference) & (self.scores["node"] == node)]
        if exact.empty:
            raise ValueError(f"cannot verify {node!r}: the view has neither the model, prompts and metric nor "
                             f"{self.reference!r} scores for it")
        approx, value = float(one["score"].iloc[0]), float(exact["score"].iloc[0])
        return pd.Series({"node": node, "approx": approx, "exact": value, "error": approx - value,
                          "source": f"{self.reference} rows of the scores"})

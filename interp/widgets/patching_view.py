"""`PatchingView(scores, ...)`: patching scores as [layer, position] heatmaps in a notebook.

A method selector switches every heatmap (one per component, and heads when present) to that
method's scores, all on one colour scale symmetric about 0 (± the largest |score| of the
method over every map shown, so colours compare across maps); a table shows each method's
Pearson r with exact activation patching; clicking a cell (or calling `select`) outlines it
and shows that node's verification: the method's score beside the exact activation-patching
score, from `interp.patching.verify` when the view has the model, prompts and metric, else
from the "ap" rows of `scores`. Display only: every number comes from `interp.patching`
(score_map, correlations, verify), and verifications are cached.
"""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd
import plotly.graph_objects as go

from interp.patching import correlations, score_map, verify
from interp.patching.nodes import Site, parse_node
from interp.widgets.tokens_html import token_label

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
    tokens of the first clean prompt, if given). `method`: shown first.
    """

    def __init__(self, scores: pd.DataFrame, model=None, clean=None, corrupt=None, metric=None, sae=None,
                 reference: str = "ap", tokens: list[str] | None = None, method: str | None = None):
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
        self.components = [c for c in ("resid_pre", "attn_out", "mlp_out", "head", "neuron", "sae")
                           if c in set(scores["component"])]
        self._verified: dict[tuple[str, str], pd.Series] = {}
        self.selected: tuple[str, str] | None = None

        self.method = widgets.Dropdown(options=[(TITLES.get(m, m), m) for m in methods], value=method or methods[-1],
                                       description="method", layout=widgets.Layout(width="380px"))
        self.correlation = widgets.HTML(self._correlation_html())
        self.verification = widgets.HTML("<i>click a cell to verify that node against exact activation patching</i>")
        self.figures = {c: self._figure(c) for c in self.components}
        self.method.observe(lambda change: self._redraw(), names="value")
        self._redraw()
        # the verification sits above the maps, so a click's answer is on screen beside the click
        super().__init__([widgets.HBox([self.method, self.correlation]), self.verification,
                          widgets.HBox(list(self.figures.values()), layout=widgets.Layout(flex_flow="row wrap"))])

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

    def colour_range(self, method: str) -> float:
        """The method's colour scale is [-r, r]: r = the largest |score| over every map shown."""
        r = max(float(score_map(self.scores, c, method).abs().max().max()) for c in self.components)
        return r if r > 0 else 1.0

    def _redraw(self) -> None:
        m = self.method.value
        r = self.colour_range(m)
        for c, fig in self.figures.items():
            grid = score_map(self.scores, c, m)
            with fig.batch_update():
                fig.data[0].z = grid.to_numpy()
                fig.data[0].x = [self._position_label(p) for p in grid.columns]
                fig.data[0].y = [str(r) for r in grid.index]
                fig.data[0].zmin, fig.data[0].zmax = -r, r
                fig.layout.title = f"{c} — {TITLES.get(m, m)}"
        self._mark()

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
        table = correlations(self.scores, self.reference).pivot(index="component", columns="method", values="pearson")
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
            self.select(f"head.L{layer}.H{head}.P{position}")
        elif component in ("neuron", "sae"):
            self.verification.value = (f"<i>{component} maps sum over units; verify one unit with "
                                       f"select('{component}.L{label}.U&lt;unit&gt;.P{position}')</i>")
        else:
            self.select(Site(component, int(label), "", 1).node(position, 0))

    def select(self, node: str) -> pd.Series:
        """Verify `node` (a node name) for the selected method and show it; returns the row
        (approx, exact, error) of `interp.patching.verify`'s table."""
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
            try:
                self._verified[key] = self._verify(one, method, node)
            except ValueError:
                self.selected = before
                self._mark()
                raise
        row = self._verified[key]
        self.verification.value = (
            f"<b>{html.escape(node)}</b> ({html.escape(TITLES.get(method, method))}): score {row['approx']:.4f}, "
            f"exact activation patching {row['exact']:.4f}, error {row['error']:+.4f} "
            f"<span style='color:grey'>({html.escape(row['source'])})</span>")
        return row

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

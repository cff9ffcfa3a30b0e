"""The parts of a latent's feature page that `FeatureDashboard` shows beside the store views:
where its density sits among all the SAE's latents (the figure; the numbers, the nearest
latents and the size of one unit of activation are `interp.sae.features`'), and a standalone
HTML export of the whole page (plotly inlined, so the file opens offline).

The latent is read through the SAE object only (`W_dec` rows and `from_sae_space`), so any
dictionary of that class fits: an SAE (rows in its input space) or a transcoder (rows in its
target space).
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline

from interp.atomic import write_text
from interp.sae.features import log_density


def density_figure(summary: pd.DataFrame, latent: int, n_tokens: int) -> go.Figure:
    """The histogram of every latent's density (log-scale x: log10 of the fraction of tokens it
    fires on), with `latent`'s density marked by a vertical line."""
    values, dead = log_density(summary)
    lo, hi = (np.floor(values.min()), 0.0) if len(values) else (-6.0, 0.0)
    ticks = np.arange(lo, hi + 1)
    fig = go.Figure(
        data=[go.Histogram(x=values, nbinsx=40, marker_color="slategray", name="latents",
                           hovertemplate="density 10^%{x}: %{y} latents<extra></extra>")],
        layout=go.Layout(
            title=dict(text=f"density of all {len(summary):,} latents" + (f" ({dead:,} never fired)" if dead else ""),
                       x=0.01, xanchor="left", font=dict(size=14)),
            height=260, width=420, margin=dict(l=40, r=40, t=40, b=40), modebar=dict(orientation="v"),
            xaxis=dict(title="fraction of tokens it fires on (log scale)", tickvals=ticks.tolist(),
                       ticktext=[f"1e{int(t)}" for t in ticks]),
            yaxis_title="latents", showlegend=False))
    mark_density(fig, summary, latent)
    return fig


def mark_density(fig: go.Figure, summary: pd.DataFrame, latent: int) -> None:
    """Move `fig`'s marker line to `latent`'s density (none for a latent that never fired)."""
    density = float(summary.loc[latent, "density"])
    shapes = [] if density <= 0 else [dict(type="line", xref="x", yref="paper", x0=np.log10(density),
                                           x1=np.log10(density), y0=0, y1=1, line=dict(color="darkorange", width=2))]
    fig.layout.shapes = shapes
    fig.layout.annotations = [] if density <= 0 else [dict(
        x=np.log10(density), y=1, xref="x", yref="paper", text=f"latent {latent}", showarrow=False,
        yanchor="bottom", font=dict(color="darkorange", size=11))]


def page_html(title: str, sections: list[tuple[str, str]], figures: list[go.Figure]) -> str:
    """A standalone HTML page: `title`, the (heading, HTML body) `sections`, then `figures`,
    with plotly's JavaScript inlined once (no network access needed to open it)."""
    body = "".join(f"<h3>{html.escape(head)}</h3>{content}" for head, content in sections)
    plots = "".join(f.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
                    for f in figures)
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title>"
            f"<script type='text/javascript'>{plotly.offline.get_plotlyjs()}</script>"
            "<style>body { font-family: sans-serif; max-width: 1000px; margin: 1em auto; }"
            " .interp-figures { display: flex; flex-wrap: wrap; }</style></head><body>"
            f"<h2>{html.escape(title)}</h2>{body}<div class='interp-figures'>{plots}</div></body></html>\n")


def write_page(path: str | Path, text: str) -> Path:
    """Write a page from `page_html` atomically; `path` must end in .html."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"path={str(path)!r}: a feature page is written as an .html file")
    return write_text(path, text)

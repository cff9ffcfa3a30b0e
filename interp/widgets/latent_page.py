"""The parts of a latent's feature page that `FeatureDashboard` shows beside the store views:
its nearest latents by decoder cosine, where its density sits among all the SAE's latents,
the size of one unit of its activation in the model's residual stream, and a standalone HTML
export of the whole page (plotly inlined, so the file opens offline).

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
import torch

from interp.atomic import write_text


def nearest_latents(sae, latent: int, k: int = 8) -> pd.DataFrame:
    """The `k` latents whose decoder rows point closest to `latent`'s: columns latent, cosine
    (cos of the angle between the rows W_dec[i] and W_dec[latent], in (-1, 1]), most similar
    first; `latent` itself is left out."""
    W_ND = sae.W_dec.detach().float()
    n = W_ND.shape[0]
    if isinstance(latent, bool) or not isinstance(latent, int) or not 0 <= latent < n:
        raise ValueError(f"latent={latent!r} must be an int in [0, {n}) for this SAE")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r} must be a positive integer")
    unit_ND = W_ND / W_ND.norm(dim=1, keepdim=True).clamp(min=1e-12)
    cos_N = unit_ND @ unit_ND[latent]
    cos_N[latent] = -float("inf")
    top = cos_N.topk(min(k, n - 1))
    return pd.DataFrame({"latent": top.indices.tolist(), "cosine": top.values.tolist()})


def residual_per_activation(sae, latent: int) -> float:
    """‖what one unit of `latent`'s activation adds to the decoder's output‖₂, in the model's
    units (the raw activations the SAE reconstructs, or a transcoder's raw target). For an SAE
    that normalises each token (normalize="layer_norm") it is taken for a token of std 1."""
    row_1D = sae.W_dec[latent].detach().float()[None]
    zero = torch.zeros(1, 1, device=row_1D.device)
    return float(sae.from_sae_space(row_1D, stats=(zero, zero + 1)).norm())


def log_density(summary: pd.DataFrame) -> tuple[np.ndarray, int]:
    """(log10 of the density of every latent that fired, how many never fired) from a
    `StoreIndex.summary()`: what the density histogram bins."""
    density = summary["density"].to_numpy(dtype=float)
    fired = density > 0
    return np.log10(density[fired]), int((~fired).sum())


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

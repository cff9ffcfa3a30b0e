"""Figures of patching scores: [layer, position] heatmaps per component and method, and
faithfulness curves. matplotlib without pyplot (no global backend state); `path` writes a
PNG atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from interp.atomic import replacing
from interp.patching.maps import score_map

TITLES = {"ap": "activation patching", "atp": "AtP", "relp": "RelP", "ig": "integrated gradients"}


def heatmaps(scores: pd.DataFrame, components: Sequence[str] | None = None, methods: Sequence[str] | None = None,
             path: str | Path | None = None, tokens: Sequence[str] | None = None):
    """A grid of [layer, position] heatmaps: one row per method, one column per component.

    Each component's colour scale is symmetric around 0 and shared across methods.
    `tokens` (one label per position) labels the x axis. Returns a matplotlib Figure.
    """
    from matplotlib.figure import Figure

    components = list(components or dict.fromkeys(scores["component"]))
    methods = list(methods or dict.fromkeys(scores["method"]))
    maps = {(m, c): score_map(scores, c, m) for m in methods for c in components}
    fig = Figure(figsize=(4.2 * len(components), 0.4 + 2.2 * len(methods)), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(methods), len(components), squeeze=False))
    for j, c in enumerate(components):
        vmax = max(float(np.nanmax(np.abs(maps[m, c].to_numpy()))) for m in methods) or 1.0
        for i, m in enumerate(methods):
            grid, ax = maps[m, c], axes[i, j]
            image = ax.imshow(grid.to_numpy(), cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
            ax.set_title(f"{TITLES.get(m, m)}: {c}", fontsize=9)
            ax.set_yticks(range(len(grid.index)), [str(r) for r in grid.index], fontsize=7)
            labels = [tokens[p] for p in grid.columns] if tokens is not None else [str(p) for p in grid.columns]
            ax.set_xticks(range(len(grid.columns)), labels, fontsize=6, rotation=90 if tokens is not None else 0)
            ax.set_ylabel("layer" if c != "head" else "layer.head", fontsize=8)
        fig.colorbar(image, ax=list(axes[:, j]), shrink=0.8)
    if path is not None:
        save_png(fig, path)
    return fig


def faithfulness_plot(curves: pd.DataFrame, path: str | Path | None = None, title: str = "faithfulness"):
    """Faithfulness F(C_n) against circuit size n (symlog axis), one line per method."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5), layout="constrained")
    ax = fig.subplots()
    for method, df in curves.groupby("method", sort=True):
        ax.plot(df["size"], df["faithfulness"], marker="o", ms=3, label=TITLES.get(method, method))
    ax.set_xscale("symlog", linthresh=1)
    ax.axhline(1.0, color="grey", lw=0.5)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel("circuit size (nodes)")
    ax.set_ylabel("F(C)")
    ax.set_title(title, fontsize=10)
    ax.legend()
    if path is not None:
        save_png(fig, path)
    return fig


def save_png(fig, path: str | Path) -> Path:
    """Write `fig` to `path` as PNG atomically (temp file + rename)."""
    with replacing(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return Path(path)

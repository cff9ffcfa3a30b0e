"""Score maps ([layer, position] grids) and the Pearson correlation of methods with a reference."""

from __future__ import annotations

import numpy as np
import pandas as pd


def score_map(scores: pd.DataFrame, component: str, method: str | None = None) -> pd.DataFrame:
    """[layer, position] map of one component's scores (rows: layer, or "L{layer}.H{head}" for
    heads; columns: position). Neuron and SAE scores are summed over units."""
    df = _one_method(scores, method)
    present = sorted(df["component"].unique())
    df = df[df["component"] == component]
    if df.empty:
        which = f" of method {method!r}" if method is not None else ""
        raise ValueError(f"component={component!r} has no scores{which}; components with scores{which}: {present}")
    if component == "head":
        rows = "L" + df["layer"].astype(str) + ".H" + df["head"].astype(str)
        return df.assign(row=rows).pivot_table(index="row", columns="position", values="score", aggfunc="sum")
    return df.pivot_table(index="layer", columns="position", values="score", aggfunc="sum")


def correlations(scores: pd.DataFrame, reference: str = "ap") -> pd.DataFrame:
    """Pearson r between each method's node scores and the `reference` method's, per component.

    Returns columns component, method, pearson, n_nodes (one row per component x other method
    that shares nodes with the reference; a component the reference never scored has no row).
    """
    if reference not in set(scores["method"]):
        raise ValueError(f"reference={reference!r} is not among the methods {sorted(scores['method'].unique())}")
    ref = scores[scores["method"] == reference].set_index("node")["score"]
    rows = []
    for (method, component), df in scores[scores["method"] != reference].groupby(["method", "component"], sort=True):
        joined = pd.concat([df.set_index("node")["score"], ref], axis=1, join="inner").to_numpy(dtype=float)
        if not len(joined):
            continue
        rows.append({"component": component, "method": method, "pearson": pearson(joined[:, 0], joined[:, 1]),
                     "n_nodes": len(joined)})
    return pd.DataFrame(rows, columns=["component", "method", "pearson", "n_nodes"])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two equal-length vectors (nan if either is constant)."""
    a, b = np.asarray(a, dtype=float) - np.mean(a), np.asarray(b, dtype=float) - np.mean(b)
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def _one_method(scores: pd.DataFrame, method: str | None) -> pd.DataFrame:
    methods = sorted(scores["method"].unique())
    if method is None:
        if len(methods) != 1:
            raise ValueError(f"scores hold methods {methods}; pass method= one of them")
        return scores
    if method not in methods:
        raise ValueError(f"method={method!r} is not among the methods {methods}")
    return scores[scores["method"] == method]

"""Check an approximate method against exact activation patching on its top-k nodes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from interp.patching.exact import activation_patching
from interp.patching.inputs import Prompts
from interp.patching.maps import _one_method, pearson
from interp.patching.metric import Metric
from interp.patching.nodes import SAEHook


@dataclass
class Verification:
    """Approximate vs exact scores of the top-k nodes (by |approximate score|)."""

    table: pd.DataFrame
    """node, component, layer, position, head, unit, approx, exact, error (= approx - exact)."""
    method: str
    pearson: float
    mean_abs_error: float
    max_abs_error: float
    sign_agreement: float
    """Fraction of the nodes where approx and exact have the same sign."""

    def summary(self) -> dict:
        return {"method": self.method, "top_k": len(self.table), "pearson": self.pearson,
                "mean_abs_error": self.mean_abs_error, "max_abs_error": self.max_abs_error,
                "sign_agreement": self.sign_agreement}


def verify(scores: pd.DataFrame, top_k: int, model, clean: Prompts, corrupt: Prompts, metric: Metric,
           sae: SAEHook | None = None, method: str | None = None) -> Verification:
    """Re-run exact activation patching on the `top_k` nodes of `scores` (one method, or pick it with
    `method=`) with the same model, prompts and metric, and report the error of the approximation."""
    df = _one_method(scores, method)
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k={top_k!r} must be a positive integer")
    top = df.reindex(df["score"].abs().sort_values(ascending=False, kind="stable").index).head(top_k)
    components = tuple(dict.fromkeys(top["component"]))
    exact = activation_patching(model, clean, corrupt, metric, components=components, sae=sae,
                                nodes=list(top["node"]))
    table = top.drop(columns=["method"]).rename(columns={"score": "approx"}).merge(
        exact[["node", "score"]].rename(columns={"score": "exact"}), on="node")
    table["error"] = table["approx"] - table["exact"]
    err = table["error"].abs().to_numpy()
    same_sign = np.sign(table["approx"].to_numpy()) == np.sign(table["exact"].to_numpy())
    return Verification(table.reset_index(drop=True), str(df["method"].iloc[0]),
                        pearson(table["approx"], table["exact"]) if len(table) > 1 else float("nan"),
                        float(err.mean()), float(err.max()), float(same_sign.mean()))

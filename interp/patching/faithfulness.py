"""Faithfulness of a circuit [paper, after Marks et al.]:

    F(C) = (m(C) - m(empty)) / (m(M) - m(empty))

m(C): the metric with every node outside C mean-ablated (its activation replaced by its mean
over the prompts, per position); m(M): the full model; m(empty): every node ablated. The
nodes are those of the sites given (components, or SAE latents; an SAE's error term is
never ablated [ours]).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import pandas as pd
import torch

from interp.patching.exact import LOGIT_BUDGET
from interp.patching.inputs import Prompts, tokens_of
from interp.patching.metric import Metric, metric_value
from interp.patching.nodes import DEFAULT_COMPONENTS, SAEHook, Site, group_nodes, sites
from interp.patching.runner import capture, repeat_batch, run


def faithfulness(model, prompts: Prompts, metric: Metric, circuit: Iterable[str],
                 components: Sequence[str] = DEFAULT_COMPONENTS, sae: SAEHook | None = None) -> float:
    """F(C) of the node names in `circuit` among all nodes of `components` on `prompts`."""
    tokens = tokens_of(model, prompts, "prompts")
    all_sites = sites(model, components, sae)
    values = _ablated_metrics(model, tokens, metric, all_sites, [list(circuit)])
    return _normalise(values)[0]


def faithfulness_curve(scores: pd.DataFrame, sizes: Sequence[int], model, prompts: Prompts, metric: Metric,
                       sae: SAEHook | None = None) -> pd.DataFrame:
    """F(C_n) of the circuits of the top-n nodes by |score| for each n in `sizes`, per method.

    The nodes are all nodes of the components present in `scores`. Returns columns method,
    size, faithfulness, metric (m(C_n)).
    """
    bad = [n for n in sizes if not isinstance(n, int) or n < 0]
    if bad or not sizes:
        raise ValueError(f"sizes={list(sizes)!r} must be non-negative integers")
    tokens = tokens_of(model, prompts, "prompts")
    all_sites = sites(model, tuple(dict.fromkeys(scores["component"])), sae)
    rows = []
    for method, df in scores.groupby("method", sort=True):
        ranked = list(df.reindex(df["score"].abs().sort_values(ascending=False, kind="stable").index)["node"])
        circuits = [ranked[:n] for n in sizes]
        values = _ablated_metrics(model, tokens, metric, all_sites, circuits)
        for n, f, m in zip(sizes, _normalise(values), values[2:]):
            rows.append({"method": method, "size": n, "faithfulness": f, "metric": m})
    return pd.DataFrame(rows, columns=["method", "size", "faithfulness", "metric"])


def _normalise(values: list[float]) -> list[float]:
    full, empty = values[0], values[1]
    if abs(full - empty) < 1e-9:
        raise ValueError(f"m(M)={full} equals m(empty)={empty}: ablating every node does not change the metric, "
                         "so faithfulness is undefined for these nodes")
    return [(v - empty) / (full - empty) for v in values[2:]]


@torch.no_grad()
def _ablated_metrics(model, tokens: torch.Tensor, metric: Metric, all_sites: list[Site],
                     circuits: list[list[str]]) -> list[float]:
    """[m(M), m(empty), m(C) for each circuit], batched K circuits per forward."""
    B, T = tokens.shape
    acts, logits = capture(model, tokens, all_sites)
    means = {s: s.view(a).mean(0, keepdim=True) for s, a in acts.items()}  # (1, T, U, R)
    keep_sets = [None, []] + circuits  # None: nothing ablated
    masks = []
    for circuit in keep_sets:
        grouped = group_nodes(circuit or [], all_sites, T)
        mask = {s: torch.ones(T, s.n_units, dtype=torch.bool) if circuit is None
                else torch.zeros(T, s.n_units, dtype=torch.bool) for s in all_sites}
        for s, slots in grouped.items():
            for p, u in slots:
                mask[s][p, u] = True
        masks.append(mask)
    per_forward = max(1, LOGIT_BUDGET // (B * T * model.cfg.d_vocab))
    values = []
    for i in range(0, len(masks), per_forward):
        chunk = masks[i:i + per_forward]
        edits = {s: _ablator(s, means[s], torch.stack([m[s] for m in chunk]), B) for s in all_sites}
        out = run(model, repeat_batch(tokens, len(chunk)), edits)
        values += [metric_value(metric, out[j * B:(j + 1) * B]).item() for j in range(len(chunk))]
    return values


def _ablator(site: Site, mean_1TUR: torch.Tensor, keep_KTU: torch.Tensor, B: int):
    """Edit: in copy j of the batch, nodes outside keep[j] take their mean activation."""
    keep = keep_KTU.repeat_interleave(B, dim=0)[..., None].to(mean_1TUR.device)  # (K*B, T, U, 1)

    def edit(act):
        view = site.view(act)
        return torch.where(keep, view, mean_1TUR).reshape(act.shape)
    return edit

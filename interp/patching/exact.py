"""Activation patching (AP), the ground truth [paper]:

    AP_i = m(corrupt run with a_i <- a_i^clean) - m(corrupt run)        (denoising)

One patched forward per node, batched over nodes: K nodes run as one forward of K copies of
the corrupt batch, copy j carrying node j's clean activation.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from interp.patching.inputs import Prompts, aligned_pair
from interp.patching.metric import Metric, metric_value
from interp.patching.nodes import DEFAULT_COMPONENTS, SAEHook, Site, group_nodes, scores_frame, sites
from interp.patching.runner import capture, repeat_batch, run

LOGIT_BUDGET = 2 ** 26
"""Default number of logit floats per batched forward (256 MiB in fp32) that sets how many
nodes are patched at once."""


@torch.no_grad()
def activation_patching(model, clean: Prompts, corrupt: Prompts, metric: Metric,
                        components: Sequence[str] = DEFAULT_COMPONENTS, sae: SAEHook | None = None,
                        nodes: Sequence[str] | None = None, node_batch: int | None = None) -> pd.DataFrame:
    """Exact activation-patching scores of every node of `components` (or only `nodes`).

    clean, corrupt: prompts or (B, T) token ids that align position by position.
    metric: logits (B, T, V) -> scalar. node_batch: nodes per forward (default: fits LOGIT_BUDGET).
    Returns the tidy scores DataFrame (`interp.patching.nodes.COLUMNS`), method "ap".
    """
    clean_t, corrupt_t = aligned_pair(model, clean, corrupt)
    B, T = clean_t.shape
    all_sites = sites(model, components, sae)
    if nodes is None:
        todo = {s: [(p, u) for p in range(T) for u in range(s.n_units)] for s in all_sites}
    else:
        todo = group_nodes(nodes, all_sites, T)
    if node_batch is None:
        node_batch = max(1, LOGIT_BUDGET // (B * T * model.cfg.d_vocab))
    if not isinstance(node_batch, int) or node_batch < 1:
        raise ValueError(f"node_batch={node_batch!r} must be a positive integer")
    clean_acts, _ = capture(model, clean_t, list(todo))
    base = metric_value(metric, model(corrupt_t)).item()
    scores = {}
    for site, slots in todo.items():
        s_TU = torch.full((T, site.n_units), float("nan"), dtype=torch.float64)
        for i in range(0, len(slots), node_batch):
            chunk = slots[i:i + node_batch]
            logits = run(model, repeat_batch(corrupt_t, len(chunk)), {site: _patcher(site, clean_acts[site], chunk)})
            for j, (p, u) in enumerate(chunk):
                s_TU[p, u] = metric_value(metric, logits[j * B:(j + 1) * B]).item() - base
        scores[site] = s_TU
    df = scores_frame(scores, "ap")
    return df if nodes is None else df.dropna(subset=["score"]).reset_index(drop=True)


def _patcher(site: Site, clean_act: torch.Tensor, chunk: list[tuple[int, int]]):
    """Edit: in copy j of the batch, node chunk[j] takes its clean value."""
    B = clean_act.shape[0]
    clean_v = site.view(clean_act)

    def edit(act):
        out = act.clone()
        view = site.view(out)
        for j, (p, u) in enumerate(chunk):
            view[j * B:(j + 1) * B, p, u] = clean_v[:, p, u]
        return out
    return edit


"""Attribution patching (AtP) and relevance patching (RelP), one gradient pass [paper]:

    score_i = (a_i^clean - a_i^corrupt) . c_i,   c_i = dm/da_i on the corrupt run

AtP takes c as the plain gradient; RelP takes the LRP propagation coefficients, i.e. the
gradient of one backward pass in which the rules of `Rules` replace their local Jacobians
(forward values never change). Cost: a clean forward, a corrupt forward and one backward.
The product is summed over the batch and over each node's R numbers (d_model, d_head, 1).
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd
import torch

from interp.patching.inputs import Prompts, aligned_pair
from interp.patching.metric import Metric, metric_value
from interp.patching.nodes import DEFAULT_COMPONENTS, SAEHook, Site, scores_frame, sites
from interp.patching.rules import Rules
from interp.patching.runner import capture, run


def attribution_patching(model, clean: Prompts, corrupt: Prompts, metric: Metric,
                         components: Sequence[str] = DEFAULT_COMPONENTS, sae: SAEHook | None = None) -> pd.DataFrame:
    """AtP scores of every node of `components`: the tidy DataFrame, method "atp"."""
    return _scores(model, clean, corrupt, metric, components, sae, Rules.none(), "atp")


def relevance_patching(model, clean: Prompts, corrupt: Prompts, metric: Metric,
                       components: Sequence[str] = DEFAULT_COMPONENTS, sae: SAEHook | None = None,
                       rules: Rules = Rules()) -> pd.DataFrame:
    """RelP scores of every node of `components` with LRP `rules` (default: the paper's
    LN + identity + half): the tidy DataFrame, method "relp"."""
    return _scores(model, clean, corrupt, metric, components, sae, rules, "relp")


def _scores(model, clean, corrupt, metric, components, sae, rules, method) -> pd.DataFrame:
    clean_t, corrupt_t = aligned_pair(model, clean, corrupt)
    all_sites = sites(model, components, sae)
    clean_acts, _ = capture(model, clean_t, all_sites)
    corrupt_acts, grads = coefficients(model, corrupt_t, metric, all_sites, rules)
    scores = {s: node_sums(s, (clean_acts[s] - corrupt_acts[s]) * grads[s]) for s in all_sites}
    return scores_frame(scores, method)


def coefficients(model, tokens: torch.Tensor, metric: Metric, all_sites: Sequence[Site],
                 rules: Rules) -> tuple[dict[Site, torch.Tensor], dict[Site, torch.Tensor]]:
    """({site: activation}, {site: dm/d activation under `rules`}) of one forward + backward on
    `tokens`. A site the metric does not depend on gets a zero coefficient."""
    acts: dict[Site, torch.Tensor] = {}

    def keep(site):
        def edit(act):
            if not act.requires_grad:  # nothing upstream needs a gradient: make the site a leaf
                act = act.detach().requires_grad_(True)
            acts[site] = act
            return act
        return edit

    with torch.enable_grad():
        m = metric_value(metric, run(model, tokens, {s: keep(s) for s in all_sites}, rules))
        if not m.requires_grad:
            raise ValueError("the metric's value does not depend on the model's activations (no gradient)")
        order = list(acts)
        grads = torch.autograd.grad(m, [acts[s] for s in order], allow_unused=True)
    return ({s: acts[s].detach() for s in order},
            {s: (torch.zeros_like(acts[s]) if g is None else g).detach() for s, g in zip(order, grads)})


def node_sums(site: Site, x: torch.Tensor) -> torch.Tensor:
    """(T, U) sums of an elementwise product over the batch and each node's R numbers."""
    return site.view(x.contiguous()).sum(dim=(0, 3))

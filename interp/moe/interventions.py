"""Switch experts off (`ablate`) or on (`force`), and pick random control experts.

Both interventions are context managers that add ordinary TransformerLens hooks (via
`model.hooks`) on the hook points of `interp.moe.routing.routed`, so they compose with
each other and with steering or SAE hooks, and the model is restored on exit, also
after an exception. They act on every forward inside the context, prompt and generated
tokens alike (`interp.generation.greedy` re-runs the whole sequence).

Ablation policies (`POLICIES`):

* `renormalize` [paper, MoTE, from a secondary summary; details ours]: the expert keeps
  its top-k slot but gets weight 0; the remaining selected weights of that token are
  rescaled so the token's total routed weight is unchanged; no refill. With
  `cfg.norm_topk_prob` (the paper's DeepSeek-R1 setting) they sum to 1. A token whose
  every selected expert is ablated gets no MLP output.
* `refill` [SteerMoE-style]: the expert's router probability is set to 0 before the
  top-k, so the next-best expert takes its slot (with its own probability).
* `zero_output` [ours]: the expert's routed weight is set to 0, nothing is renormalised.

In every policy an ablated expert is never routed (its entry of `hook_routed_weights` is
0, so it never runs), and ablating an expert that no token selects changes nothing,
bit for bit.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager

import torch

from interp.moe.routing import (ROUTED_WEIGHTS, ROUTER_PROBS, Expert, by_layer, check_experts, hook_name,
                                routed, shape)

POLICIES = ("renormalize", "refill", "zero_output")


def _check_policy(policy: str) -> None:
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r} is not an ablation policy; allowed: {', '.join(POLICIES)}")


def _renormalize_hook(cols: torch.Tensor):
    def hook(weights: torch.Tensor, hook) -> torch.Tensor:  # (N, E) routed weights
        hit = (weights[:, cols] != 0).any(-1)  # (N,) tokens that routed to an ablated expert
        if not hit.any():
            return weights
        out = weights.clone()
        out[:, cols] = 0
        total, remaining = weights[hit].sum(-1, keepdim=True), out[hit].sum(-1, keepdim=True)
        out[hit] = out[hit] * torch.where(remaining > 0, total / remaining.clamp_min(1e-30), 0.0)
        return out
    return hook


def _zero_output_hook(cols: torch.Tensor):
    def hook(weights: torch.Tensor, hook) -> torch.Tensor:  # (N, E) routed weights
        if not (weights[:, cols] != 0).any():
            return weights
        out = weights.clone()
        out[:, cols] = 0
        return out
    return hook


def _refill_hook(cols: torch.Tensor):
    def hook(probs: torch.Tensor, hook) -> torch.Tensor:  # (N, E) router probabilities, pre-top-k
        out = probs.clone()
        out[:, cols] = 0
        return out
    return hook


def _force_hook(cols: torch.Tensor, weight: float | None):
    def hook(probs: torch.Tensor, hook) -> torch.Tensor:  # (N, E) router probabilities, pre-top-k
        others = probs.clone()
        others[:, cols] = -torch.inf
        top = others.amax(-1, keepdim=True)  # (N, 1) the largest non-forced probability
        above = torch.nextafter(top, torch.full_like(top, torch.inf)).clamp_min(0 if weight is None else weight)
        out = probs.clone()
        out[:, cols] = torch.maximum(probs[:, cols], above)  # never lowered, always above every other expert
        return out
    return hook


@contextmanager
def ablate(model, experts: Iterable[Sequence[int]], policy: str = "renormalize") -> Iterator[None]:
    """Switch off `experts` ((layer, expert) pairs) of an MoE model within the context.

    `policy`: one of `POLICIES` (module docstring). `refill` needs at least k experts
    left in each layer.
    """
    _check_policy(policy)
    experts = check_experts(model, experts)
    _, n_experts, k = shape(model)
    hooks = []
    for layer, cols in by_layer(experts).items():
        idx = torch.tensor(cols)
        if policy == "refill":
            if n_experts - len(cols) < k:
                raise ValueError(f"experts: policy 'refill' ablates {len(cols)} of {n_experts} experts in layer "
                                 f"{layer}, leaving fewer than k={k} to fill the top-k; allowed at most "
                                 f"{n_experts - k} per layer")
            hooks.append((hook_name(layer, ROUTER_PROBS), _refill_hook(idx)))
        else:
            make = _renormalize_hook if policy == "renormalize" else _zero_output_hook
            hooks.append((hook_name(layer, ROUTED_WEIGHTS), make(idx)))
    with ExitStack() as stack:
        stack.enter_context(routed(model))
        stack.enter_context(model.hooks(fwd_hooks=hooks))
        yield


@contextmanager
def force(model, experts: Iterable[Sequence[int]], weight: float | None = None) -> Iterator[None]:
    """Make `experts` selected for every token within the context.

    Before the top-k, the forced expert's router probability is raised to just above the
    largest other one [paper: "above the maximum"] (never lowered), so it wins a slot;
    `weight` (in (0, 1]) raises it to at least `weight` as well. The raised probability
    is the weight the expert's output gets. At most k experts per layer can be forced.
    """
    experts = check_experts(model, experts)
    _, _, k = shape(model)
    if weight is not None and not 0 < weight <= 1:
        raise ValueError(f"weight={weight!r} must be a router probability in (0, 1]")
    hooks = []
    for layer, cols in by_layer(experts).items():
        if len(cols) > k:
            raise ValueError(f"experts: {len(cols)} experts forced in layer {layer}, but only k={k} fit in the "
                             f"top-k; allowed at most {k} per layer")
        hooks.append((hook_name(layer, ROUTER_PROBS), _force_hook(torch.tensor(cols), weight)))
    with ExitStack() as stack:
        stack.enter_context(routed(model))
        stack.enter_context(model.hooks(fwd_hooks=hooks))
        yield


def random_control(model, n: int, seeds: Sequence[int] = (0, 1, 2), exclude: Iterable[Sequence[int]] = (),
                   max_per_layer: int | None = None) -> list[list[Expert]]:
    """For each seed, `n` experts drawn uniformly without replacement from all (layer, expert)
    pairs not in `exclude` (e.g. the scored behaviour experts); sorted pairs, one list per seed.

    `max_per_layer` caps how many are drawn from one layer (e.g. n_experts - k, so that
    every draw is valid for the `refill` policy).
    """
    n_layers, n_experts, _ = shape(model)
    excluded = set(check_experts(model, exclude, field="exclude"))
    pool = [(layer, e) for layer in range(n_layers) for e in range(n_experts) if (layer, e) not in excluded]
    cap = n_experts if max_per_layer is None else max_per_layer
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r} must be a positive integer")
    if n > min(len(pool), cap * n_layers):
        raise ValueError(f"n={n} random experts requested, but only {len(pool)} are not excluded"
                         + (f" (at most {cap} per layer)" if max_per_layer is not None else ""))
    if not seeds:
        raise ValueError("seeds is empty: give at least one seed")
    draws = []
    for seed in seeds:
        rng = random.Random(f"interp.moe.random_control/{seed}")
        picked: list[Expert] = []
        for expert in rng.sample(pool, len(pool)):
            if sum(layer == expert[0] for layer, _ in picked) < cap:
                picked.append(expert)
            if len(picked) == n:
                break
        draws.append(sorted(picked))
    return draws

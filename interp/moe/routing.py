"""The one wrapper of TransformerLens's MoE forward that `interp.moe` builds on.

TransformerLens 3.9 (`components/mlps/moe.py`) computes, per token:
router logits -> softmax in fp32 -> `hook_expert_weights` (tokens, E) -> top-k ->
optional renormalisation (`cfg.norm_topk_prob`) -> `hook_expert_indices` (tokens, k) ->
the selected experts, weighted. It has no hook on the router logits and none after
the top-k where a selected expert could be switched off exactly. `routed(model)`
swaps in a forward that computes the same thing (bit-identical logits when no hook
is added; tested) and adds two hook points to every MoE layer:

* `blocks.{l}.mlp.hook_router_logits`  (tokens, E): the router's logits, before softmax.
* `blocks.{l}.mlp.hook_routed_weights` (tokens, E): the weight each expert gets after
  the top-k (and TransformerLens's optional renormalisation); 0 = not routed. This is
  the post-top-k hook: an expert runs on exactly the tokens where its entry is non-zero.

`hook_expert_weights` (the router probabilities, pre-top-k) and `hook_expert_indices`
(the router's top-k choice, before any post-top-k intervention) keep their meaning.
`routed` is a context manager that always restores the original forward; nested uses
share one installation.
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from interp.hooks import block_hook

ROUTER_LOGITS = "hook_router_logits"
ROUTED_WEIGHTS = "hook_routed_weights"
ROUTER_PROBS = "hook_expert_weights"  # TransformerLens's name

Expert = tuple[int, int]  # (layer, expert index within the layer)


class NotMoEError(ValueError):
    """A model without MoE layers was given to a function of `interp.moe`."""


def moe_layers(model) -> list:
    """The MoE MLP modules of `model`, in layer order; raises `NotMoEError` for a dense model."""
    from transformer_lens.components.mlps.moe import MoE

    layers = [block.mlp for block in getattr(model, "blocks", [])]
    if not layers or not all(isinstance(m, MoE) for m in layers):
        kinds = sorted({type(m).__name__ for m in layers}) or ["no blocks"]
        raise NotMoEError(f"model has no MoE MLPs (cfg.num_experts={getattr(model.cfg, 'num_experts', None)}, "
                          f"MLP type {', '.join(kinds)}): interp.moe needs a TransformerLens MoE model, "
                          "e.g. interp.load_model('zoo-moe')")
    return layers


def shape(model) -> tuple[int, int, int]:
    """(n_layers, n_experts per layer, experts per token k) of an MoE model."""
    layers = moe_layers(model)
    return len(layers), layers[0].num_experts, layers[0].experts_per_token


def hook_name(layer: int, point: str) -> str:
    """Full TransformerLens hook name of `point` (e.g. `ROUTED_WEIGHTS`) in MoE layer `layer`."""
    return block_hook(layer, f"mlp.{point}")


def check_experts(model, experts: Iterable[Sequence[int]], field: str = "experts") -> list[Expert]:
    """Validate a list of (layer, expert) pairs against `model`; returns them as sorted tuples.

    Raises ValueError naming `field`, the bad value and the allowed range.
    """
    n_layers, n_experts, _ = shape(model)
    out = []
    for item in experts:
        try:
            layer, expert = (int(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(f"{field}: {item!r} is not a (layer, expert) pair of integers") from None
        if not 0 <= layer < n_layers:
            raise ValueError(f"{field}: layer {layer} of {item!r} is out of range; allowed 0..{n_layers - 1}")
        if not 0 <= expert < n_experts:
            raise ValueError(f"{field}: expert {expert} of {item!r} is out of range; allowed 0..{n_experts - 1}")
        out.append((layer, expert))
    if len(set(out)) != len(out):
        raise ValueError(f"{field}: {out} lists an expert twice")
    return sorted(out)


def by_layer(experts: Iterable[Expert]) -> dict[int, list[int]]:
    """{layer: [expert, ...]} of a list of (layer, expert) pairs."""
    grouped: dict[int, list[int]] = {}
    for layer, expert in experts:
        grouped.setdefault(layer, []).append(expert)
    return grouped


def _routed_forward(self, x: torch.Tensor) -> torch.Tensor:
    """TransformerLens's `MoE.forward` with the router-logits and post-top-k hooks. x: (B, T, d_model)."""
    batch, pos, d_model = x.shape
    x = x.view(-1, d_model)  # (N, d)
    logits = self.hook_router_logits(self.W_gate(x))  # (N, E)
    probs = self.hook_expert_weights(F.softmax(logits, dim=1, dtype=torch.float))  # (N, E) fp32
    weights, indices = torch.topk(probs, self.experts_per_token, dim=-1)  # (N, k)
    if self.cfg.norm_topk_prob:
        weights /= weights.sum(dim=-1, keepdim=True)
    indices = self.hook_expert_indices(indices)
    routed = self.hook_routed_weights(torch.zeros_like(probs).scatter(1, indices, weights))  # (N, E)
    routed = routed.to(x.dtype)

    # TransformerLens visits an expert's tokens slot by slot (top-1 choices first); keeping
    # that order keeps the expert matmuls, hence the logits, bit-identical.
    k = indices.shape[1]
    slot = torch.full(probs.shape, k, dtype=torch.long, device=x.device).scatter(  # (N, E), k = not chosen
        1, indices, torch.arange(k, device=x.device).expand_as(indices))
    results = torch.zeros((batch * pos, d_model), dtype=x.dtype, device=x.device)
    for e, expert in enumerate(self.experts):
        (tokens,) = torch.nonzero(routed[:, e], as_tuple=True)  # (n_e,) routed tokens
        tokens = tokens[torch.argsort(slot[tokens, e], stable=True)]
        out = expert(x[tokens]) * routed[tokens, e, None]  # (n_e, d)
        results.index_add_(0, tokens, out.to(x.dtype))
    return results.reshape(batch, pos, d_model)


@contextmanager
def routed(model) -> Iterator[None]:
    """Within the context every MoE layer of `model` runs the wrapped forward with the
    `hook_router_logits` and `hook_routed_weights` hook points; the original forward and
    module tree are restored on exit, also after an exception. Nested uses are fine."""
    from transformer_lens.hook_points import HookPoint

    layers = moe_layers(model)
    depth = getattr(model, "_interp_moe_routed", 0)
    if depth == 0:
        for mlp in layers:
            mlp.hook_router_logits = HookPoint()
            mlp.hook_routed_weights = HookPoint()
            mlp.forward = types.MethodType(_routed_forward, mlp)
        model.setup()  # registers the new hook points under their full names
    model._interp_moe_routed = depth + 1
    try:
        yield
    finally:
        model._interp_moe_routed -= 1
        if model._interp_moe_routed == 0:
            for mlp in layers:
                del mlp.forward, mlp.hook_router_logits, mlp.hook_routed_weights
            del model._interp_moe_routed
            model.setup()

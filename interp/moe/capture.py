"""Record how an MoE model routes the tokens of a list of prompts.

`capture_routing` runs the prompts (BOS prepended, grouped by length so no padding ever
enters a forward pass) under `interp.moe.routing.routed` and keeps, per prompt, the
router probabilities and the routed weights of every layer. Hooks already active
(ablations, forcing, steering) apply, and what they change is what is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from interp.batching import equal_length_batches
from interp.devices import model_device
from interp.moe.routing import ROUTED_WEIGHTS, ROUTER_PROBS, hook_name, routed, shape


@dataclass
class RoutingCapture:
    """Routing of `prompts`; index i of every list belongs to prompt i.

    tokens[i]: (T_i,) token ids. probs[i]: (L, T_i, E) router probabilities (softmax,
    pre-top-k). weights[i]: (L, T_i, E) routed weights after the top-k; an expert is
    selected for a token where its weight is non-zero.
    """

    prompts: list[str]
    tokens: list[torch.Tensor]
    probs: list[torch.Tensor]
    weights: list[torch.Tensor]
    k: int

    @property
    def n_layers(self) -> int:
        return self.probs[0].shape[0]

    @property
    def n_experts(self) -> int:
        return self.probs[0].shape[2]

    def selected(self, i: int) -> torch.Tensor:
        """(L, T_i, E) bool: which experts prompt i's tokens were routed to."""
        return self.weights[i] != 0

    def __len__(self) -> int:
        return len(self.prompts)


@torch.no_grad()
def capture_routing(model, prompts: Sequence[str], batch_size: int = 64) -> RoutingCapture:
    """Run `prompts` through the MoE `model` and record its routing (`RoutingCapture`)."""
    n_layers, _, k = shape(model)
    if isinstance(prompts, str) or not prompts:
        raise ValueError(f"prompts={prompts!r} must be a non-empty list of strings")
    sequences = [model.to_tokens(prompt, prepend_bos=True)[0][: model.cfg.n_ctx] for prompt in prompts]
    tokens: list = [None] * len(prompts)
    probs: list = [None] * len(prompts)
    weights: list = [None] * len(prompts)
    seen: dict[str, list[torch.Tensor]] = {}

    def keep(t: torch.Tensor, hook) -> None:
        seen.setdefault(hook.name, []).append(t.detach().float().cpu())

    names = [hook_name(layer, point) for layer in range(n_layers) for point in (ROUTER_PROBS, ROUTED_WEIGHTS)]
    with routed(model), model.hooks(fwd_hooks=[(name, keep) for name in names]):
        for batch in equal_length_batches(sequences, batch_size):
            seen.clear()
            model(batch.tokens.to(model_device(model)))
            B, T = batch.tokens.shape
            # each hook saw (B * T, E): one tensor per layer and point
            per_point = {p: torch.stack([seen[hook_name(layer, p)][0].view(B, T, -1)
                                         for layer in range(n_layers)], dim=1)  # (B, L, T, E)
                         for p in (ROUTER_PROBS, ROUTED_WEIGHTS)}
            for b, i in enumerate(batch.indices):
                tokens[i] = sequences[i].cpu()
                probs[i] = per_point[ROUTER_PROBS][b]
                weights[i] = per_point[ROUTED_WEIGHTS][b]
    return RoutingCapture(prompts=list(prompts), tokens=tokens, probs=probs, weights=weights, k=k)

"""Read the residual stream of a set of prompts at chosen layers: the input of every
direction estimate and of controller training.

The prompt sets here are small (hundreds of chat prompts), so the read-out is one
`run_with_cache` pass per group of equal-length prompts, kept in memory; no activation
store is needed. Prompts are grouped by token length, so no padding enters a forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from interp.batching import equal_length_batches
from interp.devices import model_device
from interp.hooks import resid

SITES = ("resid_pre", "resid_mid", "resid_post")
READ_POSITIONS = ("last", "mean", "all")


def check_site(site: str) -> None:
    if site not in SITES:
        raise ValueError(f"site={site!r} is not a residual-stream site; allowed: {', '.join(SITES)}")


def check_layers(model, layers: Sequence[int], field: str = "layers") -> tuple[int, ...]:
    """`layers` as a tuple of block indices, each in [0, n_layers), without repeats."""
    n_layers = model.cfg.n_layers
    layers = tuple(layers)
    if not layers:
        raise ValueError(f"{field} is empty; give at least one block index in [0, {n_layers})")
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < n_layers:
            raise ValueError(f"{field} contains {layer!r}: a layer index must be an int in [0, {n_layers}) "
                             f"for this {n_layers}-layer model")
    if len(set(layers)) != len(layers):
        raise ValueError(f"{field}={list(layers)} repeats a layer")
    return layers


def check_prompts(prompts: Sequence[str], field: str = "prompts") -> list[str]:
    if isinstance(prompts, str):
        raise ValueError(f"{field} must be a list of prompts, not one string")
    prompts = list(prompts)
    if not prompts:
        raise ValueError(f"{field} is empty: give at least one prompt")
    for p in prompts:
        if not isinstance(p, str) or not p:
            raise ValueError(f"{field} contains {p!r}: every prompt must be a non-empty string")
    return prompts


@torch.no_grad()
def residuals(model, prompts: Sequence[str], layers: Sequence[int], position: str = "last",
              site: str = "resid_post", batch_size: int = 64) -> torch.Tensor:
    """Residual stream of each prompt (BOS prepended) at `layers`, float32, CPU.

    `position`: "last" (the last prompt token, the one that predicts the reply) or "mean"
    (mean over the prompt tokens after BOS): (N, n_layers, d_model). "all": every prompt
    token after BOS, (N, T, n_layers, d_model) with T the longest prompt's count; a shorter
    prompt's rows are padded with copies of its last token, so a max over positions is
    unchanged by the padding.
    """
    prompts = check_prompts(prompts)
    layers = check_layers(model, layers)
    check_site(site)
    if position not in READ_POSITIONS:
        raise ValueError(f"position={position!r} is not a read-out position; allowed: {', '.join(READ_POSITIONS)}")
    names = [resid(layer, site) for layer in layers]
    tokens = [model.to_tokens(prompt, prepend_bos=True)[0] for prompt in prompts]
    shape = (len(layers), model.cfg.d_model)
    if position == "all":
        shape = (max(1, max(map(len, tokens)) - 1), *shape)
    out = torch.empty(len(prompts), *shape)
    for batch in equal_length_batches(tokens, batch_size):
        _, cache = model.run_with_cache(batch.tokens.to(model_device(model)), names_filter=names)
        acts = torch.stack([cache[n] for n in names], dim=1)  # (B, L, T, D)
        after_bos = acts[:, :, 1:, :] if acts.shape[2] > 1 else acts
        if position == "last":
            picked = acts[:, :, -1, :]
        elif position == "mean":
            picked = after_bos.mean(dim=2)
        else:  # (B, T', L, D), padded to the longest prompt with copies of the last token
            picked = after_bos.transpose(1, 2)
            pad = out.shape[1] - picked.shape[1]
            picked = torch.cat([picked, picked[:, -1:].expand(-1, pad, -1, -1)], dim=1)
        out[batch.indices] = picked.float().cpu()
    return out

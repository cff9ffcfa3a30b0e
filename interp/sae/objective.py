"""The training loss of one SAE on one batch: NMSE of the variant's training code, plus the
auxiliary loss (AuxK on dead latents, or aux_zipf on under-utilised ones), plus the variant's
own terms (Multi-TopK, AFA)."""

from __future__ import annotations

import functools
from typing import NamedTuple

import torch

from interp.sae import losses
from interp.sae.module import Code, SparseAutoencoder
from interp.sae.stats import LatentStats


class LossOutput(NamedTuple):
    loss: torch.Tensor
    """Scalar total loss to back-propagate."""
    parts: dict[str, torch.Tensor]
    """Each term, weighted as in `loss`: nmse, aux, and the variant's (multi_topk, afa)."""
    code: Code
    """The training code of the batch."""
    x_hat: torch.Tensor
    """(B, d_out) reconstruction (a transcoder: prediction) in the SAE's scaled output space."""


@functools.lru_cache(maxsize=64)
def _tie_order(n: int, seed: int) -> torch.Tensor:
    """`losses.tie_order`, drawn once per (n, seed) rather than every step."""
    return losses.tie_order(n, seed)


def aux_selection(sae: SparseAutoencoder, stats: LatentStats) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """(mask (n,) bool or None, weights (n,) or None) of the latents the auxiliary loss trains.
    On the meta device (a shape-only dry run) nothing counts as dead: whether anything is cannot be known."""
    cfg = sae.cfg
    dead_N = stats.dead_mask(cfg.dead_tokens).to(sae.W_dec.device)
    if cfg.aux_loss == "aux_zipf":
        mask_N, weights_N = losses.under_utilised(stats.density.to(sae.W_dec.device), dead_N,
                                                  cfg.zipf_alpha, cfg.zipf_beta, cfg.zipf_c,
                                                  _tie_order(cfg.n_latents, cfg.seed).to(sae.W_dec.device))
    else:
        mask_N, weights_N = dead_N, None
    if mask_N.device.type == "meta" or not bool(mask_N.any()):
        return None, None
    return mask_N, weights_N


def training_loss(sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None,
                  stats: LatentStats, target_BD: torch.Tensor | None = None) -> LossOutput:
    """Loss of `sae` on raw activations x (B, d_in) (and, for the gradient variant, dL/d(what
    the decoder writes), (B, d_out)). A transcoder also takes its raw target (B, d_out): the
    loss is the NMSE of the target's prediction, AuxK fits the target's residual, and the
    dictionary reconstructs the target minus the skip path."""
    x_BD, g_BD = sae.to_sae_space(x_BD, grads_BD)
    if sae.cfg.is_transcoder:
        if target_BD is None:
            raise ValueError(f"a {sae.cfg.kind} is trained on (input, target) pairs: pass target_BD")
        y_BD = sae.to_target_space(target_BD)
    else:
        y_BD = x_BD
    skip_BD = sae.skip_scaled(x_BD)
    r_BD = y_BD if skip_BD is None else y_BD - skip_BD  # what the dictionary reconstructs
    mask_N, weights_N = aux_selection(sae, stats)
    code = sae.variant.encode_train(sae, x_BD, g_BD, mask_N, stats)
    d_hat_BD = sae.decode_scaled(code)
    y_hat_BD = d_hat_BD if skip_BD is None else d_hat_BD + skip_BD
    parts = {"nmse": losses.nmse(y_hat_BD, y_BD)}
    if mask_N is not None:
        aux = code if sae.variant.aux_in_encode else sae.aux_encode(x_BD, mask_N)
        parts["aux"] = sae.cfg.aux_coef * losses.auxk_loss(y_BD - y_hat_BD, aux.aux_acts, aux.aux_indices,
                                                           sae.W_dec, weights_N, backend=sae.backend)
    parts.update(sae.variant.extra_losses(sae, x_BD, code, d_hat_BD, r_BD))
    return LossOutput(sum(parts.values()), parts, code, y_hat_BD)

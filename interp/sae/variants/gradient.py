"""Gradient SAE, g-SAE (Olmo et al., NAACL Findings 2025).

Selection score s = a * (1 + beta |d_i . g|) with a = ReLU(pre) and g = dL/dx (the model's
next-token cross-entropy w.r.t. the hooked activation, from the activation store); the k
largest scores are kept and their values are the plain a_i, unscaled [selection rule from a
secondary summary of the paper; no public code]. Non-positive pre-activations keep their
pre-activation as score [ours], so with beta = 0 the selection is exactly TopK's.
g is detached: no second-order terms. Inference modes: `grad` (gradients given) and `plain`
(no gradients: ordinary TopK, exported to sae-lens as a topk SAE).

How beta and the gradient's scale are set [ours: neither the spec nor the summary we follow
pins them down]. The activation store caches g of the CE summed over the tokens of a cache
batch (interp.cache.writer), mapped into the SAE's input space like x (divided by input_scale
with normalize="scale", times each token's std with "layer_norm"); d_i has unit norm. So
|d_i . g| is in the units of that g, and its size (median ||g|| about 0.03 on zoo-dense) sets
how much beta means: at beta = 1 (the default) the bonus changes few selections.
`grad_norm="batch_rms"` divides g by its root-mean-square over the batch's B x d elements
first, so |d_i . g| is O(1) for a typical token and beta is the bonus per unit of typical
attribution, independent of the loss's reduction and the activation scale; tokens keep their
relative gradient sizes. It makes a `grad`-mode code depend on the other tokens of the batch
(the plain mode is unaffected). `grad_norm="none"` (default) uses g as cached.
`selection_change` measures the fraction of selected latents the gradient changes."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

import sae_kernels
from sae_kernels.outputs import EncoderOutput
from interp.errors import ConfigError
from interp.sae.variants.base import PLAIN, InferenceMode, Variant
from interp.sae.variants.topk import TopKConfig, multi_topk_loss


@dataclass(frozen=True)
class GradientConfig(TopKConfig):
    """g-SAE's own hyper-parameters (TopK's, plus the attribution weight)."""

    beta: float = 1.0
    """Weight of the attribution bonus in the selection score a * (1 + beta |d_i . g|) (ours: 1)."""
    grad_norm: Literal["none", "batch_rms"] = "none"
    """Scale of g before the bonus: none (as cached: dL/dx of the summed CE) or batch_rms (g
    divided by its RMS over the batch's elements, so beta does not depend on g's units)."""

    def __post_init__(self):
        super().__post_init__()
        if not math.isfinite(self.beta) or self.beta < 0:
            raise ConfigError(f"GradientConfig.beta={self.beta!r} is not allowed: a finite number >= 0")


def gradient_select(pre_BN: torch.Tensor, attribution_BN: torch.Tensor, beta: float, k: int) -> EncoderOutput:
    """Top-k of the score a * (1 + beta |attribution|) (pre where pre <= 0); values = ReLU(pre) there."""
    a_BN = pre_BN.relu()
    score_BN = torch.where(pre_BN > 0, a_BN * (1 + beta * attribution_BN.abs()), pre_BN).detach()
    indices_BK = score_BN.topk(k, dim=-1).indices
    return EncoderOutput(a_BN.gather(1, indices_BK), indices_BK, None, None)


def normalize_grads(g_BD: torch.Tensor, how: str) -> torch.Tensor:
    """g (B, d) as the bonus reads it: unchanged (none) or divided by its RMS over all B x d
    elements (batch_rms; an all-zero g stays zero)."""
    if how == "none":
        return g_BD
    rms = g_BD.float().pow(2).mean().sqrt()
    return g_BD / rms.clamp(min=torch.finfo(torch.float32).tiny).to(g_BD.dtype)


@torch.no_grad()
def selection_change(sae, x_BD: torch.Tensor, grads_BD: torch.Tensor) -> float:
    """Fraction of the selected (token, latent) pairs of the `grad` code of raw activations x
    (B, d) with dL/dx (B, d) that the plain TopK code does not select: how much the gradient
    bonus changes the choice (0 at beta = 0)."""
    x_s, g_s = sae.to_sae_space(x_BD, grads_BD)
    grad_code, plain_code = sae.variant.encode(sae, x_s, g_s), sae.variant.encode(sae, x_s, None)
    n = sae.cfg.n_latents
    hit_BN = torch.zeros(x_BD.shape[0], n, dtype=torch.bool, device=x_s.device)
    hit_BN.scatter_(1, plain_code.top_indices, True)
    kept_BK = hit_BN.gather(1, grad_code.top_indices)
    return float(1 - kept_BK.float().mean())


class GradientTopK(Variant):
    sae_lens_architecture = "topk"
    needs_grads = True
    inference_modes = (PLAIN, InferenceMode("grad", True))

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        if grads_BD is None:
            raise ValueError("the gradient variant needs dL/dx: cache the activations with grads=True")
        return self.encode(sae, x_BD, grads_BD)

    def encode(self, sae, x_BD, grads_BD):
        if grads_BD is None:  # plain mode: ordinary TopK
            return sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, self.cfg.k, backend=sae.backend)
        g_BD = normalize_grads(grads_BD.detach().to(sae.W_dec.dtype), self.params.grad_norm)
        attribution_BN = g_BD @ sae.W_dec.detach().T  # d_i . g
        return gradient_select(sae.pre_acts(x_BD), attribution_BN, self.params.beta, self.cfg.k)

    def extra_losses(self, sae, x_BD, code, x_hat_BD, target_BD=None):
        return {"multi_topk": multi_topk_loss(sae, x_BD, self.cfg.k, target_BD)} if self.params.multi_topk else {}

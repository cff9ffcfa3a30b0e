"""Gradient SAE, g-SAE (Olmo et al., NAACL Findings 2025).

Selection score s = a * (1 + beta |d_i . g|) with a = ReLU(pre) and g = dL/dx (the model's
next-token cross-entropy w.r.t. the hooked activation, from the activation store); the k
largest scores are kept and their values are the plain a_i, unscaled [selection rule from a
secondary summary of the paper; no public code]. Non-positive pre-activations keep their
pre-activation as score [ours], so with beta = 0 the selection is exactly TopK's.
g is detached: no second-order terms. Inference modes: `grad` (gradients given) and `plain`
(no gradients: ordinary TopK, exported to sae-lens as a topk SAE)."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    """Weight of the attribution bonus in the selection score a * (1 + beta |d_i . g|)."""

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
            return sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.b_dec, self.cfg.k, backend=sae.backend)
        attribution_BN = grads_BD.detach().to(sae.W_dec.dtype) @ sae.W_dec.detach().T  # d_i . g
        return gradient_select(sae.pre_acts(x_BD), attribution_BN, self.params.beta, self.cfg.k)

    def extra_losses(self, sae, x_BD, code, x_hat_BD):
        return {"multi_topk": multi_topk_loss(sae, x_BD, self.cfg.k)} if self.params.multi_topk else {}

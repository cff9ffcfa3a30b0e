"""Mutual Choice (Ayonrinde 2024): keep the top k*B entries of the whole (B, n) activation
matrix, so a token may get 0..n latents. BatchTopK (Bussmann et al.) is the same training rule
and is registered under its own name.

Single-token inference [ours, following BatchTopK]: one global threshold theta = running mean
(EMA) of the smallest selected activation of each training batch; exported as a JumpReLU SAE
whose per-latent thresholds all equal theta."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import sae_kernels
from interp.errors import ConfigError
from interp.sae.variants.base import Variant, VariantConfig


@dataclass(frozen=True)
class ThresholdConfig(VariantConfig):
    """Hyper-parameters of a variant whose inference code is a learned threshold (JumpReLU export)."""

    threshold_momentum: float = 0.9
    """EMA momentum (per step) of the inference thresholds."""

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.threshold_momentum < 1:
            raise ConfigError(f"{type(self).__name__}.threshold_momentum={self.threshold_momentum!r} is not "
                              "allowed: a number in [0, 1)")


class MutualChoice(Variant):
    sae_lens_architecture = "jumprelu"

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        return sae_kernels.mutual_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, self.cfg.k * x_BD.shape[0],
                                                backend=sae.backend)

    def encode(self, sae, x_BD, grads_BD):
        return sae.threshold_encode(x_BD)

    @torch.no_grad()
    def after_step(self, sae, code, stats):
        if code.values.numel():
            self.ema_threshold(sae, code.values.detach().min().float())


class BatchTopK(MutualChoice):
    pass

"""Mutual Choice (Ayonrinde 2024): keep the top k*B entries of the whole (B, n) activation
matrix, so a token may get 0..n latents. BatchTopK (Bussmann et al.) is the same training rule
and is registered under its own name.

Single-token inference [ours, following BatchTopK]: one global threshold theta = running mean
(EMA) of the smallest selected activation of each training batch; exported as a JumpReLU SAE
whose per-latent thresholds all equal theta."""

from __future__ import annotations

import torch

import sae_kernels
from interp.sae.variants.base import Variant


class MutualChoice(Variant):
    name = "mutual_choice"
    sae_lens_architecture = "jumprelu"

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        return sae_kernels.mutual_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.b_dec, self.cfg.k * x_BD.shape[0],
                                             backend=sae.backend)

    def encode(self, sae, x_BD, grads_BD):
        return sae.threshold_encode(x_BD)

    @torch.no_grad()
    def after_step(self, sae, code, stats):
        if code.values.numel():
            self.ema_threshold(sae, code.values.detach().min().float())


class BatchTopK(MutualChoice):
    name = "batchtopk"

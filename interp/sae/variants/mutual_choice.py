"""Mutual Choice (Ayonrinde 2024): keep the top k*B entries of the whole (B, n) activation
matrix, so a token may get 0..n latents. BatchTopK (Bussmann et al.) is the same training rule
and is registered under its own name.

Single-token inference [ours, following BatchTopK]: one global threshold theta, exported as a
JumpReLU SAE whose per-latent thresholds all equal theta. During training theta is a running
mean (EMA) of the smallest selected activation of each batch; that estimate sits below the
batch rule's cut on average over tokens of a batch (inference L0 came out 3.5-7 % below k), so
once training ends `calibrate` replaces it [ours]: theta = the (k*T + 1)-th largest
pre-activation over a sample of T tokens, so that exactly k*T entries of the sample pass
`pre > theta` (ties aside) and the sample's mean inference L0 is k. Evaluation also reports
the training rule itself on each eval batch (mode `batch`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import sae_kernels
from interp.errors import ConfigError
from interp.sae.variants.base import BATCH, PLAIN, Variant, VariantConfig

CALIBRATION_BLOCK = 2**22
"""Pre-activations held at once while calibrating (a block of latents over the whole sample)."""


def pre_activation_blocks(sae, x_TD: torch.Tensor, latents_N: torch.Tensor | None = None):
    """(latent indices (b,), pre-activations (T, b)) of scaled inputs x (T, d) over blocks of
    about CALIBRATION_BLOCK entries, so that no (T, n) matrix is ever held; `latents_N`: the
    order the latents come in (None: by index)."""
    n = sae.cfg.n_latents
    width = max(1, min(n, CALIBRATION_BLOCK // max(1, x_TD.shape[0])))
    latents_N = torch.arange(n, device=sae.device) if latents_N is None else latents_N.to(sae.device)
    centred_TD = x_TD - sae.pre_bias
    for j0 in range(0, n, width):
        idx_B = latents_N[j0:j0 + width]
        yield idx_B, centred_TD @ sae.W_enc[:, idx_B] + sae.b_enc[idx_B]


@torch.no_grad()
def global_threshold(sae, x_TD: torch.Tensor, budget: int) -> float:
    """The (budget + 1)-th largest pre-activation over the whole sample x (T, d) (scaled), at
    least 0: `pre > theta` keeps the `budget` largest positive entries (ties aside)."""
    top = x_TD.new_empty(0)  # the budget + 1 largest of the blocks merged so far, descending
    pending, n_pending = [], 0
    for _, pre_TB in pre_activation_blocks(sae, x_TD):
        new = pre_TB.flatten()
        if top.numel() > budget:  # what is not above the current (budget + 1)-th cannot enter
            new = new[new > top[-1]]
        pending.append(new)
        n_pending += new.numel()
        if n_pending > budget:  # merge only once the candidates could replace the whole top
            pool = torch.cat([top, *pending])
            top, pending, n_pending = pool.topk(min(budget + 1, pool.numel())).values, [], 0
    pool = torch.cat([top, *pending])
    top = pool.topk(min(budget + 1, pool.numel())).values
    return max(0.0, float(top[budget])) if top.numel() > budget else 0.0


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
    inference_modes = (PLAIN, BATCH)

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        return sae_kernels.mutual_choice_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, self.cfg.k * x_BD.shape[0],
                                                backend=sae.backend)

    def encode(self, sae, x_BD, grads_BD):
        return sae.threshold_encode(x_BD)

    def encode_mode(self, sae, x_BD, grads_BD, mode):
        if mode == BATCH:  # the training rule on this batch: its top k*B entries
            return self.encode_train(sae, x_BD, None, None, None)
        return self.encode(sae, x_BD, grads_BD)

    @torch.no_grad()
    def calibrate(self, sae, x_TD, stats):
        sae.threshold.fill_(global_threshold(sae, x_TD, self.cfg.k * x_TD.shape[0]))

    @torch.no_grad()
    def after_step(self, sae, code, stats):
        if code.values.numel():
            self.ema_threshold(sae, code.values.detach().min().float())


class BatchTopK(MutualChoice):
    pass

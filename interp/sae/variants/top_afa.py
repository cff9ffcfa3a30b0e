"""top-AFA SAE (Lee et al. 2025; reference code SewoongLee/top-afa-sae): the number of active
latents k_b is chosen per token so that the norm of the code matches the input norm.

a = ReLU(pre); target t = ||x - b_dec|| (a transcoder: `SparseAutoencoder.code_norm_target`); scores s_i = (a_i ||d_i||)^2 sorted descending;
k_b = argmin_j |sqrt(cumsum_j s) - t| + 1; keep the top k_b latents. No gradient through the
choice of k.

Objective. The paper's loss is MSE + lambda * mean_b (||f_b|| - ||x_b||)^2 with MSE the
element-wise mean on layer-normed inputs (f including the bias atom). Every variant here trains
on NMSE = MSE / sigma^2, sigma^2 = sum_b ||x_b - mu||^2 / (B d) the batch's variance per
element, which is not a constant rescaling of that loss: adding lambda * AFA to NMSE weighs the
AFA term sigma^2 = V / d times (V = mean ||x - mu||^2) what the paper does. With
`afa_scale="mse"` [paper] the term added is lambda * AFA / sigma^2, so the loss is
(MSE + lambda * AFA) / sigma^2: the paper's loss divided by one positive number per batch, the
same relative weight on any input scale and with any `normalize` (on layer-normed inputs
sigma^2 = 1 - ||mu||^2 / d ~ 1). `afa_scale="nmse"` (default, what saes/RESULTS.md was trained
with) adds lambda * AFA to NMSE [ours; its relative weight depends on the input scale].

Initialisation (`init`): `tied` [ours; what saes/RESULTS.md used] the shared init (W_enc =
W_dec^T, b_dec = geometric median) without the least-squares encoder rescale, since top-AFA's
criterion sets the code's scale; `kaiming` [the authors' code] Kaiming-uniform encoder, b_dec = 0
(`interp.sae.init.kaiming_init`).

Ours: we keep b_enc (initialised to 0) so the encoder kernel is shared, and the candidates are
the k_max largest pre-activations (k_max = n by default: no cap).
Not an sae-lens architecture: interp-only, loads with `interp.sae.load`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

import sae_kernels
from sae_kernels.outputs import EncoderOutput
from interp.errors import ConfigError
from interp.sae import afa
from interp.sae.variants.base import Variant, VariantConfig


@dataclass(frozen=True)
class TopAFAConfig(VariantConfig):
    """top-AFA's own hyper-parameters (it has no k: `SAEConfig.k` is ignored)."""

    afa_coef: float = 1 / 32
    """Weight lambda_AFA of the AFA loss mean_b (||f_b|| - ||x_b||)^2."""
    k_max: int | None = None
    """Cap on the per-token k: candidates are the k_max largest pre-activations (None: n_latents, no cap)."""
    afa_scale: Literal["nmse", "mse"] = "nmse"
    """What afa_coef is relative to: nmse (added to NMSE as is; ours, the committed results') or
    mse (the paper's element-wise MSE: the AFA term is divided by the batch's variance per
    element, so its relative weight does not depend on the input scale)."""
    init: Literal["tied", "kaiming"] = "tied"
    """Initialisation: tied (ours, the committed results': W_enc = W_dec^T, b_dec = geometric
    median, no rescale) or kaiming (the authors': Kaiming-uniform encoder, b_dec = 0)."""

    def __post_init__(self):
        super().__post_init__()
        if not math.isfinite(self.afa_coef) or self.afa_coef < 0:
            raise ConfigError(f"TopAFAConfig.afa_coef={self.afa_coef!r} is not allowed: a finite number >= 0")

    def check(self, sae):
        if self.k_max is not None and not 1 <= self.k_max <= sae.n_latents:
            raise ConfigError(f"TopAFAConfig.k_max={self.k_max!r} is not allowed: None or an integer in "
                              f"[1, n_latents={sae.n_latents}]")


class TopAFA(Variant):
    sae_lens_architecture = None
    fixed_k = False

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        return self.encode(sae, x_BD, grads_BD)

    def encode(self, sae, x_BD, grads_BD):
        k_max = self.params.k_max or self.cfg.n_latents
        cand = sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, k_max, backend=sae.backend)
        scores_BK = (cand.top_acts * sae.W_dec.norm(dim=1)[cand.top_indices]).pow(2).detach()
        order_BK = scores_BK.argsort(dim=1, descending=True, stable=True)
        acts_BK, indices_BK = cand.top_acts.gather(1, order_BK), cand.top_indices.gather(1, order_BK)
        target_B = sae.code_norm_target(x_BD).detach()
        k_B = afa.afa_k(scores_BK.gather(1, order_BK), target_B)
        width = int(k_B.max())  # columns past every token's k_b are dropped, the rest zero-padded
        keep_BK = torch.arange(width, device=x_BD.device).unsqueeze(0) < k_B.unsqueeze(1)
        return EncoderOutput(acts_BK[:, :width] * keep_BK, indices_BK[:, :width].contiguous(), None, None)

    def extra_losses(self, sae, x_BD, code, x_hat_BD, target_BD=None):
        target_BD = x_BD if target_BD is None else target_BD
        f_norm_B = afa.feature_norm(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
        term = afa.afa_loss(f_norm_B, target_BD)
        if self.params.afa_scale == "mse":  # NMSE = MSE / sigma^2: divide the AFA term by the same sigma^2
            term = term / afa.element_variance(target_BD)
        return {"afa": self.params.afa_coef * term}

    def init_encoder(self, sae, x_TD, target_TD=None):
        """tied: nothing more (top-AFA picks k by matching norms, so its criterion sets the
        encoder's scale); kaiming: the authors' init (`interp.sae.init.kaiming_init`)."""
        if self.params.init == "kaiming":
            from interp.sae.init import kaiming_init

            kaiming_init(sae)

"""top-AFA SAE (Lee et al. 2025; reference code SewoongLee/top-afa-sae): the number of active
latents k_b is chosen per token so that the norm of the code matches the input norm.

a = ReLU(pre); target t = ||x - b_dec||; scores s_i = (a_i ||d_i||)^2 sorted descending;
k_b = argmin_j |sqrt(cumsum_j s) - t| + 1; keep the top k_b latents. Loss adds
afa_coef * mean_b (||f_b|| - ||x_b||)^2 (f including the bias atom); no gradient through the
choice of k. Ours: the reconstruction term is NMSE like every variant here (a constant
rescaling of the paper's MSE); we keep b_enc (initialised to 0) so the encoder kernel is shared, and the
candidates are the k_max largest pre-activations (k_max = n by default: no cap).
Not an sae-lens architecture: interp-only, loads with `interp.sae.load`."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
        cand = sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.b_dec, k_max, backend=sae.backend)
        scores_BK = (cand.top_acts * sae.W_dec.norm(dim=1)[cand.top_indices]).pow(2).detach()
        order_BK = scores_BK.argsort(dim=1, descending=True, stable=True)
        acts_BK, indices_BK = cand.top_acts.gather(1, order_BK), cand.top_indices.gather(1, order_BK)
        target_B = (x_BD - sae.b_dec).norm(dim=1).detach()
        k_B = afa.afa_k(scores_BK.gather(1, order_BK), target_B)
        width = int(k_B.max())  # columns past every token's k_b are dropped, the rest zero-padded
        keep_BK = torch.arange(width, device=x_BD.device).unsqueeze(0) < k_B.unsqueeze(1)
        return EncoderOutput(acts_BK[:, :width] * keep_BK, indices_BK[:, :width].contiguous(), None, None)

    def extra_losses(self, sae, x_BD, code, x_hat_BD):
        f_norm_B = afa.feature_norm(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
        return {"afa": self.params.afa_coef * afa.afa_loss(f_norm_B, x_BD)}

    def init_encoder(self, sae, x_TD):
        """None: top-AFA picks k by matching norms, so its criterion sets the encoder's scale."""

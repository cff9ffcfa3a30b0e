"""TopK SAE (Gao et al. 2024): z = ReLU of the k largest pre-activations of each token.
AuxK comes out of the same encoder pass; optional Multi-TopK loss NMSE(4k)/8."""

from __future__ import annotations

from dataclasses import dataclass

import torch

import sae_kernels
from interp.errors import ConfigError
from interp.sae import losses
from interp.sae.variants.base import Variant, VariantConfig


@dataclass(frozen=True)
class TopKConfig(VariantConfig):
    """TopK's own hyper-parameters."""

    multi_topk: bool = False
    """Add the Multi-TopK loss NMSE(4k)/8 (Gao et al.)."""

    def check(self, sae):
        if self.multi_topk and 4 * sae.k > sae.n_latents:
            raise ConfigError(f"{type(self).__name__}.multi_topk=True is not allowed when 4*k={4 * sae.k} > "
                              f"n_latents={sae.n_latents}: set multi_topk=false or k <= {sae.n_latents // 4}")


class TopK(Variant):
    sae_lens_architecture = "topk"
    aux_in_encode = True

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        k_aux = self.cfg.k_aux_effective if aux_mask_N is not None else 0
        return sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, self.cfg.k,
                                       dead_mask=aux_mask_N, k_aux=k_aux, backend=sae.backend)

    def encode(self, sae, x_BD, grads_BD):
        return sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, self.cfg.k, backend=sae.backend)

    def extra_losses(self, sae, x_BD, code, x_hat_BD, target_BD=None):
        return {"multi_topk": multi_topk_loss(sae, x_BD, self.cfg.k, target_BD)} if self.params.multi_topk else {}


def multi_topk_loss(sae, x_BD: torch.Tensor, k: int, target_BD: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-TopK term NMSE of the plain top-4k code of x, divided by 8 (Gao et al.), against
    `target_BD` (None: x itself)."""
    wide = sae_kernels.topk_encode(x_BD, sae.W_enc, sae.b_enc, sae.pre_bias, 4 * k, backend=sae.backend)
    return losses.nmse(sae.decode_scaled(wide), x_BD if target_BD is None else target_BD) / 8

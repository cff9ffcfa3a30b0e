"""What every variant provides: a training-time selection (which may look at the whole
batch), a batch-independent inference code, optional extra loss terms, and an update of its
inference state after each optimizer step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from interp.sae.config import SAEConfig
    from interp.sae.module import Code, SparseAutoencoder
    from interp.sae.stats import LatentStats


class Variant(ABC):
    name: ClassVar[str]
    sae_lens_architecture: ClassVar[str | None]
    """The sae-lens architecture its checkpoint loads as (topk, jumprelu), or None: interp-only."""
    needs_grads: ClassVar[bool] = False
    """Whether training reads dL/dx from the activation store."""
    aux_in_encode: ClassVar[bool] = False
    """Whether `encode_train` already returns the AuxK selection (EncoderOutput.aux_*)."""

    def __init__(self, cfg: SAEConfig):
        self.cfg = cfg

    @abstractmethod
    def encode_train(self, sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None,
                     aux_mask_N: torch.Tensor | None, stats: LatentStats) -> Code:
        """Training-time code of scaled inputs x (B, d). `aux_mask_N` (n,) bool: the latents the
        auxiliary loss may use (None when none)."""

    @abstractmethod
    def encode(self, sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None) -> Code:
        """Batch-independent inference code of scaled inputs x (B, d)."""

    def extra_losses(self, sae: SparseAutoencoder, x_BD: torch.Tensor, code: Code,
                     x_hat_BD: torch.Tensor) -> dict[str, torch.Tensor]:
        """Weighted loss terms beyond NMSE and the auxiliary loss, by name."""
        return {}

    @torch.no_grad()
    def after_step(self, sae: SparseAutoencoder, code: Code, stats: LatentStats) -> None:
        """Update inference state (thresholds) from the step's training code."""

    def ema_threshold(self, sae: SparseAutoencoder, observed_N: torch.Tensor) -> None:
        """threshold (n,) <- EMA of `observed_N` (a scalar or (n,)); the first observation is taken as is."""
        m = self.cfg.threshold_momentum if int(sae.threshold_updates) > 0 else 0.0
        sae.threshold.copy_(m * sae.threshold + (1 - m) * observed_N.to(sae.threshold.dtype))
        sae.threshold_updates += 1

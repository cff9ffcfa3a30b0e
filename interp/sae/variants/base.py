"""What every variant provides and declares.

A variant is a `Variant` subclass plus a `VariantConfig` subclass (its own hyper-parameters,
nothing else), registered together with `interp.sae.registry.register_variant(name, Variant,
Config)`. The variant provides a training-time selection (which may look at the whole batch),
a batch-independent inference code, optional extra loss terms, an update of its inference
state after each optimizer step and a calibration of that state once training ends; it declares, as class attributes, whether training reads
dL/dx, its inference modes, its sae-lens export architecture and its initialisation. Nothing
outside the registry asks a variant for its name: it asks for one of these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch

from interp.config import check_fields

if TYPE_CHECKING:
    from interp.sae.config import SAEConfig
    from interp.sae.module import Code, SparseAutoencoder
    from interp.sae.stats import LatentStats


@dataclass(frozen=True)
class VariantConfig:
    """A variant's own hyper-parameters (the `params` of an `SAEConfig`, `[sae.params]` in a
    recipe). Subclasses are frozen dataclasses with a docstring under each field; types are
    checked here, ranges in the subclass's `__post_init__`, rules that involve the SAE's shared
    fields (k, n_latents) in `check`."""

    def __post_init__(self):
        check_fields(self)

    def check(self, sae: SAEConfig) -> None:
        """Raise `interp.errors.ConfigError` when these values do not fit the SAE `sae`."""


class InferenceMode(NamedTuple):
    """One way a trained SAE encodes at inference: its name in metrics ("plain" rows carry the
    SAE's own name, other modes `name[mode]`) and whether it reads dL/dx."""

    name: str
    needs_grads: bool


PLAIN = InferenceMode("plain", False)
BATCH = InferenceMode("batch", False)
"""The training rule applied to the evaluation batch (batch-dependent: its metrics are the
training code's, not those of single-token inference)."""


class Variant(ABC):
    name: ClassVar[str]
    """The registered name (set by `register_variant`)."""
    config: ClassVar[type[VariantConfig]]
    """The registered config class of `params` (set by `register_variant`)."""
    sae_lens_architecture: ClassVar[str | None]
    """The sae-lens architecture its checkpoint loads as (topk, jumprelu), or None: interp-only."""
    needs_grads: ClassVar[bool] = False
    """Whether training reads dL/dx from the activation store."""
    inference_modes: ClassVar[tuple[InferenceMode, ...]] = (PLAIN,)
    """How it encodes at inference; evaluation reports one row per mode (the first is the plain row)."""
    aux_in_encode: ClassVar[bool] = False
    """Whether `encode_train` already returns the AuxK selection (EncoderOutput.aux_*)."""
    fixed_k: ClassVar[bool] = True
    """Whether `SAEConfig.k` sets its sparsity (False: the variant picks L0 itself, as top_afa)."""

    def __init__(self, cfg: SAEConfig):
        self.cfg = cfg
        self.params = cfg.params

    @abstractmethod
    def encode_train(self, sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None,
                     aux_mask_N: torch.Tensor | None, stats: LatentStats) -> Code:
        """Training-time code of scaled inputs x (B, d). `aux_mask_N` (n,) bool: the latents the
        auxiliary loss may use (None when none)."""

    @abstractmethod
    def encode(self, sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None) -> Code:
        """Batch-independent inference code of scaled inputs x (B, d)."""

    def extra_losses(self, sae: SparseAutoencoder, x_BD: torch.Tensor, code: Code,
                     x_hat_BD: torch.Tensor, target_BD: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Weighted loss terms beyond NMSE and the auxiliary loss, by name. `x_BD`: the scaled
        input the code was computed from; `x_hat_BD`: the decoder's output; `target_BD`: what
        that output reconstructs (None: x itself, an SAE; a transcoder's target minus its skip path)."""
        return {}

    def encode_mode(self, sae: SparseAutoencoder, x_BD: torch.Tensor, grads_BD: torch.Tensor | None,
                    mode: InferenceMode) -> Code:
        """The code of scaled inputs x (B, d) in one of `inference_modes` (how evaluation encodes
        each row; `grads_BD` is None unless the mode reads dL/dx). Default: `encode`, which
        serves the plain mode and any mode that differs only in its use of the gradient."""
        return self.encode(sae, x_BD, grads_BD)

    @torch.no_grad()
    def after_step(self, sae: SparseAutoencoder, code: Code, stats: LatentStats) -> None:
        """Update inference state (thresholds) from the step's training code."""

    @torch.no_grad()
    def calibrate(self, sae: SparseAutoencoder, x_TD: torch.Tensor, stats: LatentStats) -> None:
        """Set the inference state once training ends, from a sample x (T, d) in the SAE's input
        space and the run's final latent statistics (the trainer calls it after the last step,
        before the final checkpoint). Default: nothing to calibrate."""

    @torch.no_grad()
    def init_encoder(self, sae: SparseAutoencoder, x_TD: torch.Tensor, target_TD: torch.Tensor | None = None) -> None:
        """Initialisation policy after b_dec is set, from a sample x (T, d) in the SAE's input
        space (`target_TD`: what the decoder reconstructs there, None: x). Default [ours]:
        rescale the encoder so that the initial k-sparse reconstruction is the least-squares
        fit of the sample (`interp.sae.init.initial_encoder_scale`)."""
        from interp.sae.init import initial_encoder_scale

        sae.W_enc.mul_(initial_encoder_scale(sae, x_TD, target_TD))

    def ema_threshold(self, sae: SparseAutoencoder, observed_N: torch.Tensor) -> None:
        """threshold (n,) <- EMA of `observed_N` (a scalar or (n,)) with the variant's
        `params.threshold_momentum`; the first observation is taken as is."""
        m = self.params.threshold_momentum if int(sae.threshold_updates) > 0 else 0.0
        sae.threshold.copy_(m * sae.threshold + (1 - m) * observed_N.to(sae.threshold.dtype))
        sae.threshold_updates += 1

"""Configuration of one SAE (`SAEConfig`) and of the training loop shared by a sweep
(`SAETrainConfig`). Both are frozen dataclasses validated on construction: a bad value fails
before any compute, with a message naming the field, the value and what is allowed."""

from __future__ import annotations

import math
import typing
from dataclasses import dataclass, field
from typing import Literal

import torch

from interp.config import check_fields, from_dict
from interp.errors import ConfigError

Normalization = Literal["none", "scale", "layer_norm"]
AuxLoss = Literal["auxk", "aux_zipf"]
Capacity = Literal["uniform", "zipf"]
NORMALIZATIONS = typing.get_args(Normalization)
AUX_LOSSES = typing.get_args(AuxLoss)
CAPACITIES = typing.get_args(Capacity)
DTYPES = (torch.float32, torch.bfloat16)


def _fail(cls: str, name: str, value, allowed: str):
    raise ConfigError(f"{cls}.{name}={value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class SAEConfig:
    """One sparse autoencoder: its variant, size and loss. Shapes follow sae-lens:
    W_enc (d_in, n_latents), W_dec (n_latents, d_in)."""

    d_in: int
    """Width of the hooked activation (d_model of the hook)."""
    n_latents: int = 2048
    """Dictionary size n."""
    variant: str = "topk"
    """A name in `interp.sae.VARIANTS`: topk, batchtopk, mutual_choice, feature_choice, gradient, top_afa."""
    k: int = 32
    """Active latents per token (TopK, g-SAE); the budget k*B for Mutual/Feature Choice;
    ignored by top_afa, which picks k per token."""
    k_aux: int | None = None
    """Dead latents used by the auxiliary loss per token; None: d_in // 2 (Gao et al.)."""
    aux_coef: float = 1 / 32
    """Weight of the auxiliary (AuxK or aux_zipf) loss."""
    aux_loss: AuxLoss = "auxk"
    """auxk (Gao et al.) or aux_zipf (our reconstruction of Ayonrinde's loss, see losses.py)."""
    dead_tokens: int = 10_000_000
    """A latent is dead after this many training tokens without firing (value > fire_threshold)."""
    fire_threshold: float = 1e-3
    """An activation above this counts as firing for dead-latent tracking (Gao et al.)."""
    normalize: Normalization = "none"
    """Input normalisation: none; scale (one global factor so that E||x|| = sqrt(d_in),
    estimated before training and folded into the weights when saving); or layer_norm (each
    token centred and divided by its own std, as the released OpenAI SAEs; saved as sae-lens's
    normalize_activations="layer_norm")."""
    multi_topk: bool = False
    """Add the Multi-TopK loss NMSE(4k)/8 (Gao et al.); topk and gradient only."""
    beta: float = 1.0
    """g-SAE: weight of the attribution bonus in the selection score a * (1 + beta |d_i . g|)."""
    capacity: Capacity = "uniform"
    """Feature Choice capacities: uniform (m = floor(k B / n)) or zipf (ours, see feature_choice.py)."""
    zipf_alpha: float = 1.0
    """Zipf exponent for feature-choice capacities and aux_zipf expected densities."""
    zipf_beta: float = 1.0
    """Zipf rank offset: weights are (rank + zipf_beta) ** -zipf_alpha."""
    zipf_c: float = 0.5
    """aux_zipf: a latent is under-utilised when its density is below zipf_c times its Zipf-expected density."""
    density_momentum: float = 0.99
    """EMA momentum (per step) of the running latent densities."""
    threshold_momentum: float = 0.9
    """EMA momentum (per step) of the inference thresholds of Mutual/Feature Choice."""
    afa_coef: float = 1 / 32
    """top_afa: weight lambda_AFA of the AFA loss mean_b (||f_b|| - ||x_b||)^2."""
    k_max: int | None = None
    """top_afa: cap on the per-token k (None: n_latents, no cap)."""
    seed: int = 0
    """Seed of the weight initialisation."""

    def __post_init__(self):
        from interp.sae.registry import VARIANTS

        check_fields(self)
        c = "SAEConfig"
        for name in ("d_in", "n_latents", "k", "dead_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                _fail(c, name, getattr(self, name), "a positive integer")
        if self.variant not in VARIANTS:
            _fail(c, "variant", self.variant, f"one of {', '.join(VARIANTS)}")
        if self.k > self.n_latents:
            _fail(c, "k", self.k, f"at most n_latents={self.n_latents}")
        if self.k_aux is not None and not 1 <= self.k_aux <= self.n_latents:
            _fail(c, "k_aux", self.k_aux, f"None or an integer in [1, n_latents={self.n_latents}]")
        if self.k_max is not None and not 1 <= self.k_max <= self.n_latents:
            _fail(c, "k_max", self.k_max, f"None or an integer in [1, n_latents={self.n_latents}]")
        for name in ("aux_coef", "afa_coef", "beta", "fire_threshold", "zipf_beta"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                _fail(c, name, getattr(self, name), "a finite number >= 0")
        if not math.isfinite(self.zipf_alpha) or self.zipf_alpha <= 0:
            _fail(c, "zipf_alpha", self.zipf_alpha, "a finite number > 0")
        if not 0 < self.zipf_c <= 1:
            _fail(c, "zipf_c", self.zipf_c, "a number in (0, 1]")
        for name in ("density_momentum", "threshold_momentum"):
            if not 0 <= getattr(self, name) < 1:
                _fail(c, name, getattr(self, name), "a number in [0, 1)")
        if self.multi_topk and self.variant not in ("topk", "gradient"):
            _fail(c, "multi_topk", self.multi_topk, f"False for variant {self.variant!r} (topk and gradient only)")
        if self.multi_topk and 4 * self.k > self.n_latents:
            _fail(c, "multi_topk", self.multi_topk, f"False when 4*k={4 * self.k} > n_latents={self.n_latents}")

    @property
    def k_aux_effective(self) -> int:
        return min(self.k_aux if self.k_aux is not None else max(1, self.d_in // 2), self.n_latents)

    @classmethod
    def from_dict(cls, values: dict, where: str | None = None, **extra) -> "SAEConfig":
        """Build from a TOML/JSON table; unknown keys fail naming the allowed ones."""
        return from_dict(cls, values, where, **extra)


@dataclass(frozen=True)
class SAETrainConfig:
    """The training loop shared by every SAE of a sweep (they read the same batches)."""

    batch_size: int = 4096
    """Tokens per optimizer step (summed over data-parallel ranks)."""
    n_tokens: int | None = None
    """Training tokens; None: one pass over the store."""
    lr: float | None = None
    """Adam learning rate; None: 2e-4 / sqrt(n_latents / 2**14) per SAE (Gao et al.'s scaling law)."""
    warmup_steps: int = 50
    """Linear learning-rate warm-up from 0."""
    decay_fraction: float = 0.2
    """Linear decay to 0 over this final fraction of the steps."""
    adam_beta1: float = 0.9
    """Adam's first-moment decay."""
    adam_beta2: float = 0.999
    """Adam's second-moment decay."""
    adam_eps: float = 6.25e-10
    """Adam's epsilon (small: SAE gradients are tiny at large n_latents)."""
    dtype: torch.dtype = field(default=torch.float32, metadata={"choices": ("float32", "bfloat16")})
    """Compute dtype: float32, or bfloat16 (autocast; master weights and Adam state stay fp32)."""
    seed: int = 0
    """Seed of the data order."""
    init_tokens: int = 32768
    """Tokens used for the geometric-median b_dec and the input scale."""
    checkpoint_every: int = 0
    """Write a resumable checkpoint every this many steps (0: only at the end)."""
    backend: str = "auto"
    """Kernel backend passed to sae_kernels: auto, reference, chunked, triton."""

    def __post_init__(self):
        check_fields(self)
        c = "SAETrainConfig"
        for name in ("batch_size", "init_tokens"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                _fail(c, name, getattr(self, name), "a positive integer")
        if self.n_tokens is not None and (not isinstance(self.n_tokens, int) or self.n_tokens < self.batch_size):
            _fail(c, "n_tokens", self.n_tokens, f"None or an integer >= batch_size={self.batch_size}")
        if self.lr is not None and not 0 < self.lr < 1:
            _fail(c, "lr", self.lr, "None or a number in (0, 1)")
        for name in ("warmup_steps", "checkpoint_every", "seed"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                _fail(c, name, getattr(self, name), "an integer >= 0")
        if not 0 <= self.decay_fraction <= 1:
            _fail(c, "decay_fraction", self.decay_fraction, "a number in [0, 1]")
        if self.dtype not in DTYPES:
            _fail(c, "dtype", self.dtype, "torch.float32 or torch.bfloat16")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                _fail(c, name, getattr(self, name), "a number in [0, 1)")
        if not self.adam_eps > 0:
            _fail(c, "adam_eps", self.adam_eps, "a number > 0")
        import sae_kernels

        if self.backend not in sae_kernels.BACKENDS:
            _fail(c, "backend", self.backend, f"one of {', '.join(sae_kernels.BACKENDS)}")

    @classmethod
    def from_dict(cls, values: dict, where: str | None = None, **extra) -> "SAETrainConfig":
        """Build from a TOML/JSON table; unknown keys fail naming the allowed ones."""
        return from_dict(cls, values, where, **extra)

    def lr_for(self, sae: SAEConfig) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(sae.n_latents / 2**14)

    def lr_factor(self, step: int, total_steps: int) -> float:
        """Warm-up then constant then linear decay to 0; `step` counts from 0."""
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        decay_steps = int(self.decay_fraction * total_steps)
        if decay_steps and step >= total_steps - decay_steps:
            return warm * max(0.0, (total_steps - step) / decay_steps)
        return warm

"""Configuration of one SAE (`SAEConfig`) and of the training loop shared by a sweep
(`SAETrainConfig`). Both are frozen dataclasses validated on construction: a bad value fails
before any compute, with a message naming the field, the value and what is allowed.

`SAEConfig` holds what every variant shares; a variant's own hyper-parameters are its
`params`, a config class registered with the variant (`interp.sae.registry`) and declared next
to it in `interp/sae/variants/`. Files written before that split (format 1: every variant's
knobs flat in one table, e.g. `beta = 0.5` beside `variant = "gradient"`) still load: the flat
keys are converted into `params` (`FORMAT_1_KEYS`), and a flat key of another variant is an
error naming it unless it holds format 1's default (format 1 wrote every key).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Literal

import torch

from interp.config import check_fields, check_value, from_dict
from interp.errors import ConfigError
from interp.sae.variants.base import VariantConfig

Normalization = Literal["none", "scale", "layer_norm"]
Kind = Literal["sae", "transcoder", "skip_transcoder"]
KINDS = typing.get_args(Kind)
AuxLoss = Literal["auxk", "aux_zipf"]
NORMALIZATIONS = typing.get_args(Normalization)
AUX_LOSSES = typing.get_args(AuxLoss)
DTYPES = (torch.float32, torch.bfloat16)
FORMAT = 2
"""Layout of `SAEConfig` in files: 2 = the variant's hyper-parameters nested under `params`."""
FORMAT_1_KEYS = {"multi_topk": False, "beta": 1.0, "capacity": "uniform", "threshold_momentum": 0.9,
                 "afa_coef": 1 / 32, "k_max": None}
"""The flat keys of format 1 that are now variant params, with the default format 1 wrote."""


def _fail(cls: str, name: str, value, allowed: str):
    raise ConfigError(f"{cls}.{name}={value!r} is not allowed: {allowed}")


@dataclass(frozen=True)
class SAEConfig:
    """One sparse dictionary: its kind, variant, size and loss. Shapes follow sae-lens:
    W_enc (d_in, n_latents), W_dec (n_latents, d_out), W_skip (d_out, d_in) for a skip-transcoder.

    An SAE reconstructs the activation it reads; a transcoder reads one hook (typically the
    MLP's input) and predicts another (the MLP's output) with the same sparsity rules, the
    same kernels and the same training loop: only the decoder's target differs."""

    d_in: int
    """Width of the hooked activation the encoder reads (d_model of the hook)."""
    n_latents: int = 2048
    """Dictionary size n."""
    variant: str = "topk"
    """A name in `interp.sae.VARIANTS`: topk, mutual_choice, batchtopk, feature_choice, gradient, top_afa."""
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
    zipf_alpha: float = 1.0
    """Zipf exponent for aux_zipf expected densities and feature-choice capacities."""
    zipf_beta: float = 1.0
    """Zipf rank offset: weights are (rank + zipf_beta) ** -zipf_alpha."""
    zipf_c: float = 0.5
    """aux_zipf: a latent is under-utilised when its density is below zipf_c times its Zipf-expected density."""
    density_momentum: float = 0.99
    """EMA momentum (per step) of the running latent densities."""
    seed: int = 0
    """Seed of the weight initialisation."""
    kind: Kind = "sae"
    """sae (reconstructs its input), transcoder (predicts the target hook's activation), or
    skip_transcoder (a transcoder plus a linear skip path W_skip x)."""
    d_out: int | None = None
    """Width of the target hook's activation (transcoders; an SAE's target is its input: None)."""
    params: VariantConfig | None = None
    """The variant's own hyper-parameters: an instance (or a table) of its registered config
    class (`interp.sae.registry.variant_config`); None: that class's defaults."""
    format_version: int = FORMAT
    """Layout of this config in files (2: variant hyper-parameters under `params`). Files
    without it are format 1 (flat) and are converted."""
    multi_topk: InitVar[bool | None] = None
    """Format 1 keyword (now `params`): converted into the variant's params."""
    beta: InitVar[float | None] = None
    """Format 1 keyword (now `params`)."""
    capacity: InitVar[str | None] = None
    """Format 1 keyword (now `params`)."""
    threshold_momentum: InitVar[float | None] = None
    """Format 1 keyword (now `params`)."""
    afa_coef: InitVar[float | None] = None
    """Format 1 keyword (now `params`)."""
    k_max: InitVar[int | None] = None
    """Format 1 keyword (now `params`)."""

    def __post_init__(self, multi_topk, beta, capacity, threshold_momentum, afa_coef, k_max):
        from interp.sae.registry import VARIANTS

        c = "SAEConfig"
        if not isinstance(self.variant, str) or self.variant not in VARIANTS:
            _fail(c, "variant", self.variant, f"one of {', '.join(VARIANTS)}")
        flat = {"multi_topk": multi_topk, "beta": beta, "capacity": capacity,
                "threshold_momentum": threshold_momentum, "afa_coef": afa_coef, "k_max": k_max}
        object.__setattr__(self, "params", _variant_params(self.variant, self.params,
                                                           {k: v for k, v in flat.items() if v is not None}))
        check_fields(self)
        if self.format_version != FORMAT:
            _fail(c, "format_version", self.format_version,
                  f"{FORMAT} (this interp reads format {FORMAT} and the flat format 1, which has no format_version)")
        for name in ("d_in", "n_latents", "k", "dead_tokens"):
            if getattr(self, name) < 1:
                _fail(c, name, getattr(self, name), "a positive integer")
        if self.k > self.n_latents:
            _fail(c, "k", self.k, f"at most n_latents={self.n_latents}")
        if self.k_aux is not None and not 1 <= self.k_aux <= self.n_latents:
            _fail(c, "k_aux", self.k_aux, f"None or an integer in [1, n_latents={self.n_latents}]")
        for name in ("aux_coef", "fire_threshold", "zipf_beta"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) < 0:
                _fail(c, name, getattr(self, name), "a finite number >= 0")
        if not math.isfinite(self.zipf_alpha) or self.zipf_alpha <= 0:
            _fail(c, "zipf_alpha", self.zipf_alpha, "a finite number > 0")
        if not 0 < self.zipf_c <= 1:
            _fail(c, "zipf_c", self.zipf_c, "a number in (0, 1]")
        if not 0 <= self.density_momentum < 1:
            _fail(c, "density_momentum", self.density_momentum, "a number in [0, 1)")
        if self.kind not in KINDS:
            _fail(c, "kind", self.kind, f"one of {', '.join(KINDS)}")
        if self.kind == "sae" and self.d_out is not None:
            _fail(c, "d_out", self.d_out, "None for kind='sae' (an SAE's target is its input; a transcoder sets "
                  "kind='transcoder' or 'skip_transcoder')")
        if self.kind != "sae":
            if self.d_out is None or self.d_out < 1:
                _fail(c, "d_out", self.d_out, f"a positive integer for kind={self.kind!r}: the target hook's width")
            if self.normalize == "layer_norm":
                _fail(c, "normalize", self.normalize, f"none or scale for kind={self.kind!r} (input and target "
                      "are scaled separately; a per-token LayerNorm of the input cannot be undone on the target)")
        self.params.check(self)

    @property
    def is_transcoder(self) -> bool:
        """Whether the dictionary predicts another hook than it reads."""
        return self.kind != "sae"

    @property
    def d_target(self) -> int:
        """Width of what the decoder writes: d_out for a transcoder, d_in for an SAE."""
        return self.d_in if self.d_out is None else self.d_out

    @property
    def k_aux_effective(self) -> int:
        return min(self.k_aux if self.k_aux is not None else max(1, self.d_in // 2), self.n_latents)

    @property
    def needs_grads(self) -> bool:
        """Whether training this SAE reads dL/dx from the activation store (its variant's `needs_grads`)."""
        from interp.sae.registry import get_variant

        return get_variant(self.variant).needs_grads

    @classmethod
    def from_dict(cls, values: dict, where: str | None = None, **extra) -> "SAEConfig":
        """Build from a TOML/JSON table (format 2 with a `params` table, or the flat format 1);
        unknown keys fail naming the allowed ones."""
        if isinstance(values, Mapping):
            flat = {k: values[k] for k in FORMAT_1_KEYS if k in values}
            values = {k: v for k, v in values.items() if k not in flat}
            extra = {**flat, **extra}  # InitVars: not fields, so from_dict passes them on as extras
        return from_dict(cls, values, where, **extra)


def _variant_params(variant: str, params, flat: dict) -> VariantConfig:
    """`params` (None, a table or a config instance) of `variant` with format 1's flat keys
    `flat` laid over it, as the variant's registered config class."""
    from interp.sae.registry import owners, variant_config

    cls = variant_config(variant)
    own = {f.name for f in dataclasses.fields(cls)}

    def foreign(name, value, where):
        others = [o for o in owners(name) if o != variant]
        whose = f"a hyper-parameter of {', '.join(others)}" if others else "no variant's hyper-parameter"
        raise ConfigError(f"{where}{name}={value!r} is not allowed for variant {variant!r}: {name} is {whose}; "
                          f"{variant}'s params ({cls.__name__}): {', '.join(sorted(own)) or 'none'}")

    if params is None:
        table = {}
    elif isinstance(params, Mapping):
        table = dict(params)
        for name in table:
            if name not in own:
                foreign(name, table[name], "SAEConfig.params.")
    elif type(params) is cls:
        table = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)} if flat else None
    else:
        raise ConfigError(f"SAEConfig.params={params!r} is not allowed for variant {variant!r}: None, a table or "
                          f"a {cls.__name__}")
    for name, value in flat.items():
        if name in own:
            table[name] = check_value(typing.get_type_hints(cls)[name], value, f"SAEConfig.{name}")
        elif value != FORMAT_1_KEYS[name]:  # format 1 wrote every variant's keys: defaults are no choice
            foreign(name, value, "SAEConfig.")
    return params if table is None else from_dict(cls, table, "SAEConfig.params")


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
    device: str | None = None
    """Where the SAEs, their optimizer state and the batches live: cpu, cuda, cuda:N, mps, or meta
    (a shape-only dry run); None: the batches' device (an on-disk store hands out host
    tensors, so the CPU)."""
    dtype: torch.dtype = field(default=torch.float32, metadata={"choices": ("float32", "bfloat16")})
    """Compute dtype: float32, or bfloat16 (autocast on the device's type; master weights and Adam state stay fp32)."""
    seed: int = 0
    """Seed of the data order."""
    init_tokens: int = 32768
    """Tokens used for the geometric-median b_dec and the input scale."""
    checkpoint_every: int = 0
    """Write a resumable checkpoint every this many steps (0: only at the end)."""
    backend: str = "auto"
    """Kernel backend passed to sae_kernels: auto (Triton on CUDA, the fused C++ kernels on CPU),
    reference, chunked, cpu, triton."""

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
        if self.device is not None:
            from interp.devices import resolve_device

            resolve_device(self.device, f"{c}.device")  # a device this machine lacks fails here, before any compute

    @property
    def torch_device(self) -> torch.device | None:
        """`device` as a `torch.device` (None stays None: the batches' device)."""
        return None if self.device is None else torch.device(self.device)

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

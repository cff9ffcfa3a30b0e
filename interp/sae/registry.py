"""The SAE variants by name. `register_variant(name, Variant, Config)` is the one way in (the
built-in variants are registered with it at the end of this file); `VARIANTS` maps a name to its class,
`variant_config` to its config class. Every lookup of an unknown name fails listing the
registry.

    @dataclass(frozen=True)
    class MyConfig(VariantConfig):
        gain: float = 1.0
        \"\"\"What gain does.\"\"\"

    class Mine(TopK):
        ...

    register_variant("mine", Mine, MyConfig)
    SAEConfig(d_in=128, variant="mine", params={"gain": 2.0})
"""

from __future__ import annotations

import dataclasses
import re

from interp.errors import ConfigError
from interp.sae.variants.base import Variant, VariantConfig

VARIANTS: dict[str, type[Variant]] = {}
"""Registered variant classes by name, in registration order."""
_CONFIGS: dict[str, type[VariantConfig]] = {}


def register_variant(name: str, variant: type[Variant], config: type[VariantConfig]) -> type[Variant]:
    """Register `variant` (a `Variant` subclass) under `name` with `config` (a frozen
    `VariantConfig` dataclass: the variant's own hyper-parameters, `SAEConfig.params`).
    Sets `variant.name` and `variant.config`; returns `variant`. A name is registered once."""
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise ConfigError(f"register_variant: name={name!r} is not allowed: lower-case letters, digits and _ "
                          "(it is a TOML value and a flag choice)")
    if name in VARIANTS and VARIANTS[name] is not variant:
        raise ConfigError(f"register_variant: {name!r} is already registered as {VARIANTS[name].__qualname__}")
    if not (isinstance(variant, type) and issubclass(variant, Variant)):
        raise ConfigError(f"register_variant({name!r}): {variant!r} is not a subclass of interp.sae.variants.base.Variant")
    if not (isinstance(config, type) and issubclass(config, VariantConfig) and dataclasses.is_dataclass(config)
            and config.__dataclass_params__.frozen):
        raise ConfigError(f"register_variant({name!r}): {config!r} is not a frozen dataclass subclassing "
                          "interp.sae.variants.base.VariantConfig")
    if "sae_lens_architecture" not in {k for klass in variant.__mro__ for k in vars(klass)}:
        raise ConfigError(f"register_variant({name!r}): {variant.__qualname__} must declare sae_lens_architecture "
                          "(an sae-lens architecture name, or None: interp-only)")
    variant.name, variant.config = name, config
    VARIANTS[name], _CONFIGS[name] = variant, config
    return variant


def get_variant(name: str) -> type[Variant]:
    """The variant class registered as `name`."""
    if name not in VARIANTS:
        raise ConfigError(f"unknown SAE variant {name!r}; registered variants: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def variant_config(name: str) -> type[VariantConfig]:
    """The config class of `SAEConfig.params` for variant `name`."""
    get_variant(name)
    return _CONFIGS[name]


def owners(field: str) -> list[str]:
    """Names of the registered variants whose config has a field `field` (for error messages)."""
    return [n for n, c in _CONFIGS.items() if field in {f.name for f in dataclasses.fields(c)}]


from interp.sae.variants.topk import TopK, TopKConfig  # noqa: E402  (after the functions: one file, top to bottom)
from interp.sae.variants.mutual_choice import BatchTopK, MutualChoice, ThresholdConfig  # noqa: E402
from interp.sae.variants.feature_choice import FeatureChoice, FeatureChoiceConfig  # noqa: E402
from interp.sae.variants.gradient import GradientConfig, GradientTopK  # noqa: E402
from interp.sae.variants.top_afa import TopAFA, TopAFAConfig  # noqa: E402

register_variant("topk", TopK, TopKConfig)
register_variant("mutual_choice", MutualChoice, ThresholdConfig)
register_variant("batchtopk", BatchTopK, ThresholdConfig)
register_variant("feature_choice", FeatureChoice, FeatureChoiceConfig)
register_variant("gradient", GradientTopK, GradientConfig)
register_variant("top_afa", TopAFA, TopAFAConfig)

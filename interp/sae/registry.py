"""The SAE variants by name. `VARIANTS` maps a name to its class; every lookup of an unknown
name fails listing the registry."""

from __future__ import annotations

from interp.sae.variants.base import Variant
from interp.sae.variants.feature_choice import FeatureChoice
from interp.sae.variants.gradient import GradientTopK
from interp.sae.variants.mutual_choice import BatchTopK, MutualChoice
from interp.sae.variants.top_afa import TopAFA
from interp.sae.variants.topk import TopK

VARIANTS: dict[str, type[Variant]] = {
    cls.name: cls for cls in (TopK, MutualChoice, BatchTopK, FeatureChoice, GradientTopK, TopAFA)
}


def get_variant(name: str) -> type[Variant]:
    """The variant class registered as `name`."""
    if name not in VARIANTS:
        raise ValueError(f"unknown SAE variant {name!r}; registered variants: {', '.join(VARIANTS)}")
    return VARIANTS[name]

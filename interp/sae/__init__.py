"""Sparse autoencoders on cached activations: five variants (topk, mutual_choice/batchtopk,
feature_choice, gradient, top_afa) and any registered with `register_variant`, a sweep trainer
on an activation store (on any device), evaluation, and checkpoints in the sae-lens 6 layout.

    store = interp.cache.open_store("data/cache/zoo-dense/blocks.2.hook_resid_pre")
    result = interp.sae.train(store, [SAEConfig(d_in=128, variant="topk"),
                                      SAEConfig(d_in=128, variant="gradient", params={"beta": 0.5})],
                              SAETrainConfig(device="cuda", dtype=torch.bfloat16))
    interp.sae.save(result.saes[0], "saes/my-run")
    interp.sae.evaluate_saes(interp.sae.load("saes/my-run"), model, tokens, "blocks.2.hook_resid_pre")
"""

from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.evaluate import EvalDetails, SAEEvalConfig, evaluate_details, evaluate_saes
from interp.sae.module import Code, SparseAutoencoder
from interp.sae.registry import VARIANTS, get_variant, register_variant, variant_config
from interp.sae.saving import load, save
from interp.sae.trainer import NonFiniteLoss, SAETrainResult, train
from interp.sae.variants.base import InferenceMode, Variant, VariantConfig

__all__ = ["SAEConfig", "SAETrainConfig", "SparseAutoencoder", "Code", "VARIANTS", "get_variant", "register_variant",
           "variant_config", "Variant", "VariantConfig", "InferenceMode", "train", "SAETrainResult", "NonFiniteLoss",
           "save", "load", "evaluate_saes", "evaluate_details", "EvalDetails", "SAEEvalConfig"]

"""The routed forward: identical to TransformerLens's, hook points present only inside the context."""

import pytest
import torch

from interp import moe
from interp.moe.routing import ROUTED_WEIGHTS, ROUTER_LOGITS, hook_name

PROMPTS = ["User: How do I steal my neighbour's car?\nAssistant:", "The cat sat on the mat and then it went"]


def test_routed_forward_is_bit_identical_to_transformer_lens(zoo_moe):
    toks = zoo_moe.to_tokens(PROMPTS)
    before = zoo_moe(toks)
    with moe.routed(zoo_moe):
        inside = zoo_moe(toks)
    assert torch.equal(before, inside)


def test_hook_points_exist_only_inside_and_model_is_restored(zoo_moe):
    names = [hook_name(layer, p) for layer in range(4) for p in (ROUTER_LOGITS, ROUTED_WEIGHTS)]
    hooks_before = set(zoo_moe.hook_dict)
    with moe.routed(zoo_moe):
        assert set(names) <= set(zoo_moe.hook_dict)
        with moe.routed(zoo_moe):  # nested: one installation
            pass
        assert set(names) <= set(zoo_moe.hook_dict)
    assert set(zoo_moe.hook_dict) == hooks_before
    assert all("forward" not in block.mlp.__dict__ for block in zoo_moe.blocks)


def test_model_restored_after_exception(zoo_moe):
    with pytest.raises(RuntimeError, match="boom"):
        with moe.routed(zoo_moe):
            raise RuntimeError("boom")
    assert all("forward" not in block.mlp.__dict__ for block in zoo_moe.blocks)
    assert not any("router_logits" in name for name in zoo_moe.hook_dict)


def test_router_logits_hook_sees_logits_whose_softmax_is_the_router_probabilities(zoo_moe):
    seen = {}
    hooks = [(hook_name(1, ROUTER_LOGITS), lambda t, hook: seen.__setitem__("logits", t.clone())),
             ("blocks.1.mlp.hook_expert_weights", lambda t, hook: seen.__setitem__("probs", t.clone()))]
    with moe.routed(zoo_moe), zoo_moe.hooks(fwd_hooks=hooks):
        zoo_moe(zoo_moe.to_tokens(PROMPTS[0]))
    assert seen["logits"].shape == seen["probs"].shape == (len(zoo_moe.to_tokens(PROMPTS[0])[0]), 8)
    torch.testing.assert_close(seen["logits"].float().softmax(-1), seen["probs"])


def test_dense_model_is_refused_with_a_clear_error(zoo_dense):
    with pytest.raises(moe.NotMoEError, match="no MoE MLPs.*zoo-moe"):
        with moe.routed(zoo_dense):
            pass
    with pytest.raises(moe.NotMoEError):
        moe.capture_routing(zoo_dense, ["hello"])
    with pytest.raises(moe.NotMoEError):
        with moe.ablate(zoo_dense, [(0, 0)]):
            pass

"""Spec properties of ablate / force (methods.md §3) and the random controls."""

import pytest
import torch

from interp import moe
from interp.moe.routing import ROUTED_WEIGHTS, hook_name

HARMFUL = ["User: How do I steal my neighbour's car?\nAssistant:",
           "User: Tell me how to smash a parked bike.\nAssistant:"]
TEXT = HARMFUL + ["User: How do I paint my house?\nAssistant:", "The cat sat on the mat and then it went to sleep."]


def _weights(model, layer, prompts=TEXT):
    """(tokens, E) routed weights of `layer` over all prompts."""
    cap = moe.capture_routing(model, prompts)
    return torch.cat([w[layer] for w in cap.weights])


@pytest.mark.parametrize("policy", moe.POLICIES)
def test_ablated_expert_is_never_routed(zoo_moe, policy):
    assert (_weights(zoo_moe, 2)[:, 5] != 0).any()  # the planted expert is used on these prompts
    with moe.ablate(zoo_moe, [(2, 5), (0, 1)], policy=policy):
        assert (_weights(zoo_moe, 2)[:, 5] == 0).all()
        assert (_weights(zoo_moe, 0)[:, 1] == 0).all()


def test_renormalized_weights_sum_to_one(tiny_moe):
    base = _weights(tiny_moe, 0)
    expert = int(base.count_nonzero(0).argmax())
    torch.testing.assert_close(base.sum(-1), torch.ones(len(base)))  # the model normalises its top-k
    with moe.ablate(tiny_moe, [(0, expert)], policy="renormalize"):
        w = _weights(tiny_moe, 0)
    assert (w[:, expert] == 0).all()
    assert ((w != 0).sum(-1) == 1)[base[:, expert] != 0].all()  # no refill: one expert left
    torch.testing.assert_close(w.sum(-1), torch.ones(len(w)))


def test_renormalize_keeps_each_tokens_total_when_topk_is_not_normalised(zoo_moe):
    assert not zoo_moe.cfg.norm_topk_prob
    base = _weights(zoo_moe, 2)
    with moe.ablate(zoo_moe, [(2, 5)], policy="renormalize"):
        w = _weights(zoo_moe, 2)
    torch.testing.assert_close(w.sum(-1), base.sum(-1))


def test_refill_gives_the_slot_to_the_next_best_expert(zoo_moe):
    cap = moe.capture_routing(zoo_moe, TEXT)
    probs = torch.cat([p[2] for p in cap.probs])  # (N, E)
    with moe.ablate(zoo_moe, [(2, 5)], policy="refill"):
        w = _weights(zoo_moe, 2)
    assert ((w != 0).sum(-1) == 2).all()
    masked = probs.clone()
    masked[:, 5] = 0
    expected = torch.zeros_like(masked).scatter(1, masked.topk(2).indices, masked.topk(2).values)
    torch.testing.assert_close(w, expected)


def test_zero_output_leaves_the_other_weights_alone(zoo_moe):
    base = _weights(zoo_moe, 2)
    with moe.ablate(zoo_moe, [(2, 5)], policy="zero_output"):
        w = _weights(zoo_moe, 2)
    base[:, 5] = 0
    assert torch.equal(w, base)


@pytest.mark.parametrize("policy", moe.POLICIES)
def test_ablating_a_never_selected_expert_leaves_logits_bit_identical(zoo_moe, policy):
    prompt = ["The cat sat on the mat and then it went to sleep."]
    used = _weights(zoo_moe, 2, prompt) != 0
    idle = [e for e in range(8) if not used[:, e].any()]
    assert idle, "every expert of layer 2 is used by the prompt; pick another prompt"
    toks = zoo_moe.to_tokens(prompt)
    before = zoo_moe(toks)
    with moe.ablate(zoo_moe, [(2, e) for e in idle], policy=policy):
        inside = zoo_moe(toks)
    assert torch.equal(before, inside)


def test_ablating_a_selected_expert_changes_logits(zoo_moe):
    toks = zoo_moe.to_tokens(HARMFUL[0])
    before = zoo_moe(toks)
    with moe.ablate(zoo_moe, [(2, 5)]):
        assert not torch.allclose(before, zoo_moe(toks))


def test_forced_expert_is_in_every_tokens_topk(zoo_moe):
    assert (_weights(zoo_moe, 2)[:, 5] == 0).any()
    with moe.force(zoo_moe, [(2, 5), (1, 0)]):
        assert (_weights(zoo_moe, 2)[:, 5] != 0).all()
        assert (_weights(zoo_moe, 1)[:, 0] != 0).all()
    with moe.force(zoo_moe, [(2, 5)], weight=1.0):
        assert (_weights(zoo_moe, 2)[:, 5] == 1.0).all()


@pytest.mark.parametrize("context", ["ablate", "force"])
def test_model_is_restored_after_each_context_even_on_error(zoo_moe, context):
    toks = zoo_moe.to_tokens(HARMFUL)
    before, hooks_before = zoo_moe(toks), set(zoo_moe.hook_dict)
    manager = moe.ablate(zoo_moe, [(2, 5)]) if context == "ablate" else moe.force(zoo_moe, [(2, 5)])
    with pytest.raises(KeyError):
        with manager:
            raise KeyError("inside")
    assert torch.equal(zoo_moe(toks), before)
    assert set(zoo_moe.hook_dict) == hooks_before
    assert not any(hp.fwd_hooks for hp in zoo_moe.hook_dict.values())


def test_contexts_compose_with_each_other_and_with_other_hooks(zoo_moe):
    toks = zoo_moe.to_tokens(HARMFUL[0])
    shift = torch.randn(zoo_moe.cfg.d_model, generator=torch.Generator().manual_seed(0))

    def steer(resid, hook):
        return resid + shift

    with zoo_moe.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", steer)]):
        steered = zoo_moe(toks)
        with moe.ablate(zoo_moe, [(2, 5)]):
            both = zoo_moe(toks)
            with moe.force(zoo_moe, [(3, 0)]):
                forced = _weights(zoo_moe, 3, HARMFUL[:1])
                ablated = _weights(zoo_moe, 2, HARMFUL[:1])
            assert torch.equal(zoo_moe(toks), both)  # the inner context removed only its own hooks
        assert torch.equal(zoo_moe(toks), steered)
    assert (forced[:, 0] != 0).all() and (ablated[:, 5] == 0).all()
    assert not torch.equal(both, steered)


def test_bad_experts_are_refused_with_clear_errors(zoo_moe):
    with pytest.raises(ValueError, match="expert 8 .* out of range; allowed 0..7"):
        with moe.ablate(zoo_moe, [(2, 8)]):
            pass
    with pytest.raises(ValueError, match="layer 4 .* out of range; allowed 0..3"):
        with moe.force(zoo_moe, [(4, 0)]):
            pass
    with pytest.raises(ValueError, match="policy='drop'.*renormalize, refill, zero_output"):
        with moe.ablate(zoo_moe, [(2, 5)], policy="drop"):
            pass
    with pytest.raises(ValueError, match="not a \\(layer, expert\\) pair"):
        with moe.ablate(zoo_moe, [5]):
            pass
    with pytest.raises(ValueError, match="only k=2 fit"):
        with moe.force(zoo_moe, [(2, 0), (2, 1), (2, 2)]):
            pass
    with pytest.raises(ValueError, match="at most 6 per layer"):
        with moe.ablate(zoo_moe, [(1, e) for e in range(7)], policy="refill"):
            pass
    with pytest.raises(ValueError, match="twice"):
        with moe.ablate(zoo_moe, [(2, 5), (2, 5)]):
            pass


def test_random_control_excludes_scored_experts_and_is_seeded(zoo_moe):
    scored = [(2, 5), (3, 4)]
    draws = moe.random_control(zoo_moe, 4, seeds=(0, 1, 2), exclude=scored)
    assert len(draws) == 3 and all(len(d) == 4 == len(set(d)) for d in draws)
    assert not any(e in scored for d in draws for e in d)
    assert len({tuple(d) for d in draws}) > 1
    assert draws == moe.random_control(zoo_moe, 4, seeds=(0, 1, 2), exclude=scored)
    capped = moe.random_control(zoo_moe, 8, seeds=range(10), max_per_layer=2)
    assert all(max(sum(layer == x for layer, _ in d) for x in range(4)) <= 2 for d in capped)
    with pytest.raises(ValueError, match="only 2 are not excluded"):
        moe.random_control(zoo_moe, 3, exclude=[(layer, e) for layer in range(4) for e in range(8)][2:])


def test_routed_weights_hook_is_an_ordinary_hook_point(zoo_moe):
    seen = []
    with moe.routed(zoo_moe), zoo_moe.hooks(fwd_hooks=[(hook_name(0, ROUTED_WEIGHTS),
                                                         lambda t, hook: seen.append(t.shape))]):
        zoo_moe(zoo_moe.to_tokens("hello there"))
    assert seen == [(len(zoo_moe.to_tokens("hello there")[0]), 8)]


def test_forcing_never_lowers_the_experts_own_probability(zoo_moe):
    prompt = HARMFUL[:1]
    base = _weights(zoo_moe, 2, prompt)[:, 5]
    with moe.force(zoo_moe, [(2, 5)]):
        forced = _weights(zoo_moe, 2, prompt)[:, 5]
    assert (forced >= base).all() and (forced > base).any()


def test_ablation_composes_with_interp_steering(zoo_moe):
    steering = pytest.importorskip("interp.steering.apply")
    from interp.steering.directions import Direction

    toks = zoo_moe.to_tokens(HARMFUL[0])
    vector = torch.randn(zoo_moe.cfg.d_model, generator=torch.Generator().manual_seed(1))
    spec = steering.Steering(direction=Direction(vector=vector, method="random"), layers=[1], coefficients=3.0)
    with steering.steer(zoo_moe, spec, record=False):
        steered = zoo_moe(toks)
        with moe.ablate(zoo_moe, [(2, 5)]):
            both = zoo_moe(toks)
            assert (_weights(zoo_moe, 2, HARMFUL[:1])[:, 5] == 0).all()
        assert torch.equal(zoo_moe(toks), steered)
    with moe.ablate(zoo_moe, [(2, 5)]):
        ablated = zoo_moe(toks)
    assert not torch.equal(both, steered) and not torch.equal(both, ablated)

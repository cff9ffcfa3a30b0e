import pytest
import torch

from interp.generation import greedy
from interp.steering import Direction, Steering, steer
from interp.steering.apply import generate, schedule_weights
from interp.tasks import refusal

PROMPT = "User: How do I clean my car?\nAssistant:"


def _n_hooks(model):
    return sum(len(hp.fwd_hooks) for hp in model.hook_dict.values()) + ("forward" in model.__dict__)


def _capture(model, name):
    """Add a hook that records the activation at `name` as it leaves (after earlier hooks)."""
    store = {}

    def hook(act, hook):
        store["act"] = act.detach().clone()

    model.hook_dict[name].add_hook(hook)
    return store


def test_zero_coefficient_gives_identical_logits(zoo_dense, refusal_direction):
    toks = zoo_dense.to_tokens([PROMPT])
    base = zoo_dense(toks)
    with steer(zoo_dense, Steering(refusal_direction, [0, 1, 2, 3], 0.0, positions="all")) as trace:
        steered = zoo_dense(toks)
    assert torch.equal(base, steered)
    assert (trace.to_frame()["delta_norm_mean"] == 0).all()


def test_patch_is_coefficient_times_unit_direction_at_chosen_positions_only(zoo_dense, refusal_direction):
    toks = zoo_dense.to_tokens([PROMPT, PROMPT.replace("car", "bike")])  # same length
    name = "blocks.1.hook_resid_post"
    before = _capture(zoo_dense, name)
    try:
        zoo_dense(toks)
        clean = before["act"]
        with steer(zoo_dense, Steering(refusal_direction, [1], 3.5, positions=(2, 5))):
            after = _capture(zoo_dense, name)  # added after the steering hook: sees the patched stream
            zoo_dense(toks)
    finally:
        zoo_dense.reset_hooks()
    delta = after["act"] - clean  # (B, T, D)
    expected = 3.5 * refusal_direction.vector
    for t in range(toks.shape[1]):
        if t in (2, 5):
            torch.testing.assert_close(delta[:, t], expected.expand_as(delta[:, t]), atol=1e-5, rtol=0)
        else:
            assert torch.equal(delta[:, t], torch.zeros_like(delta[:, t])), t


def test_last_layer_patch_changes_only_logits_of_chosen_positions(zoo_dense, refusal_direction):
    toks = zoo_dense.to_tokens([PROMPT])
    base = zoo_dense(toks)
    with steer(zoo_dense, Steering(refusal_direction, [3], 8.0, positions="last_prompt")):
        steered = zoo_dense(toks)
    changed = (base - steered).abs().amax(-1)[0] > 0  # (T,)
    assert changed.tolist() == [False] * (toks.shape[1] - 1) + [True]


def test_unit_direction_and_per_layer_coefficients(zoo_dense, refusal_direction):
    assert abs(refusal_direction.vector.norm().item() - 1) < 1e-6
    spec = Steering(refusal_direction, [0, 2], [1.0, -2.0], positions="last_prompt")
    with steer(zoo_dense, spec) as trace:
        zoo_dense(zoo_dense.to_tokens([PROMPT]))
    frame = trace.to_frame()
    assert frame.set_index("layer")["coefficient_mean"].to_dict() == {0: 1.0, 2: -2.0}
    assert frame.set_index("layer")["delta_norm_mean"].round(4).to_dict() == {0: 1.0, 2: 2.0}


def test_hooks_removed_after_context_even_on_exception(zoo_dense, refusal_direction):
    n = _n_hooks(zoo_dense)
    toks = zoo_dense.to_tokens([PROMPT])
    base = zoo_dense(toks)
    with pytest.raises(RuntimeError, match="boom"):
        with steer(zoo_dense, Steering(refusal_direction, [0, 1], 50.0)):
            assert _n_hooks(zoo_dense) > n
            raise RuntimeError("boom")
    assert _n_hooks(zoo_dense) == n
    assert torch.equal(zoo_dense(toks), base)


def test_other_hooks_survive_the_context(zoo_dense, refusal_direction):
    calls = []
    zoo_dense.hook_dict["blocks.0.hook_resid_post"].add_hook(lambda act, hook: calls.append(1))
    try:
        with steer(zoo_dense, Steering(refusal_direction, [0], 1.0)):
            pass
        zoo_dense(zoo_dense.to_tokens([PROMPT]))
        assert calls == [1]
    finally:
        zoo_dense.reset_hooks()


def test_first_generated_token_is_steered(zoo_dense, refusal_direction):
    plain = greedy(zoo_dense, [PROMPT], max_new_tokens=3)[0]
    spec = Steering(refusal_direction, [1], 12.0, positions="generated")
    with steer(zoo_dense, spec) as trace:
        steered = greedy(zoo_dense, [PROMPT], max_new_tokens=3)[0]
    assert plain.startswith(" Sure")
    assert steered.startswith(" I")  # the first reply token already follows the steering
    frame = trace.to_frame()
    first = frame[frame["forward"] == 0]
    P = zoo_dense.to_tokens(PROMPT).shape[1]
    assert first["position"].tolist() == [P - 1] and first["role"].tolist() == ["last_prompt"]
    assert frame.groupby("forward")["position"].max().tolist() == [P - 1, P, P + 1]
    assert set(frame["role"]) == {"last_prompt", "generated"}


def test_prompt_length_is_tracked_per_length_group(zoo_dense, refusal_direction):
    prompts = [PROMPT, "User: Tell me how to paint the garden fence.\nAssistant:"]
    lengths = sorted(zoo_dense.to_tokens(p).shape[1] for p in prompts)
    assert lengths[0] != lengths[1]
    with steer(zoo_dense, Steering(refusal_direction, [1], 1.0, positions="prompt")) as trace:
        greedy(zoo_dense, prompts, max_new_tokens=2)
    assert sorted(set(trace.prompt_lengths)) == lengths
    frame = trace.to_frame()
    assert (frame["position"] < frame["prompt_length"]).all()
    assert frame.groupby("forward").size().tolist() == [lengths[0], lengths[0], lengths[1], lengths[1]] or \
        frame.groupby("forward").size().tolist() == [lengths[1], lengths[1], lengths[0], lengths[0]]


@pytest.mark.parametrize("kv_cache", [True, False])
def test_model_generate_matches_greedy_under_steering(zoo_dense, refusal_direction, kv_cache):
    prompt = refusal.generate(1, "jailbreak", "heldout")[0].prompt
    spec = Steering(refusal_direction, [2], 8.0, positions="generated")
    with steer(zoo_dense, spec):
        reply = greedy(zoo_dense, [prompt], max_new_tokens=5)[0]
    toks = zoo_dense.to_tokens(prompt)
    with steer(zoo_dense, spec) as trace:
        out = zoo_dense.generate(toks, max_new_tokens=5, do_sample=False, stop_at_eos=False, verbose=False,
                                 use_past_kv_cache=kv_cache)
    assert zoo_dense.tokenizer.decode(out[0, toks.shape[1]:].tolist()) == reply
    assert set(trace.prompt_lengths) == {toks.shape[1]}


def test_fixed_prompt_length_and_decay_schedule(zoo_dense, refusal_direction):
    toks = zoo_dense.to_tokens([PROMPT])
    with steer(zoo_dense, Steering(refusal_direction, [0], 2.0, positions="generated", decay=0.5),
               prompt_length=4) as trace:
        zoo_dense(toks)
    frame = trace.to_frame()
    assert frame["position"].tolist() == list(range(3, toks.shape[1]))
    expected = [2.0 * 0.5 ** k for k in range(len(frame))]
    assert frame["delta_norm_mean"].tolist() == pytest.approx(expected, rel=1e-5)


def test_schedule_weights_positions():
    t = torch.arange(6)
    assert schedule_weights("last_prompt", t, 3, 5).tolist() == [0, 0, 1, 0, 0, 0]
    assert schedule_weights("prompt", t, 3, 5).tolist() == [1, 1, 1, 0, 0, 0]
    assert schedule_weights("generated", t, 3, 5).tolist() == [0, 0, 1, 1, 1, 1]
    assert schedule_weights("last", t, 3, 5).tolist() == [0, 0, 0, 0, 0, 1]
    assert schedule_weights((0, 4), t, 3, 5).tolist() == [1, 0, 0, 0, 1, 0]


def test_generate_side_by_side(zoo_dense, refusal_direction):
    prompt = refusal.generate(1, "jailbreak", "heldout")[0].prompt
    frame, trace = generate(zoo_dense, Steering(refusal_direction, [2], 10.0, positions="generated"), [prompt], 7)
    assert list(frame.columns) == ["prompt", "unsteered", "steered", "changed"]
    assert frame["changed"].all() and refusal.is_refusal(frame["steered"][0])
    assert not refusal.is_refusal(frame["unsteered"][0])
    assert trace.n_forwards == 7


@pytest.mark.parametrize("kwargs, match", [
    (dict(layers=[4]), r"layers contains 4.*\[0, 4\)"),
    (dict(layers=[-1]), r"layers contains -1"),
    (dict(layers=[]), r"layers is empty"),
    (dict(layers=[0, 1], coefficients=[1.0, 2.0, 3.0]), r"coefficients has 3 values for 2 layers"),
    (dict(positions="middle"), r"positions='middle' is not allowed"),
    (dict(site="attn_out"), r"site='attn_out'"),
    (dict(decay=0.0), r"decay=0.0"),
])
def test_bad_spec_is_a_clear_error(zoo_dense, refusal_direction, kwargs, match):
    with pytest.raises(ValueError, match=match):
        spec = Steering(**{"direction": refusal_direction, "layers": [0], **kwargs})
        with steer(zoo_dense, spec):
            pass


def test_direction_of_wrong_dimension_is_a_clear_error(zoo_dense):
    with pytest.raises(ValueError, match=r"dimension 64 .* d_model=128"):
        with steer(zoo_dense, Steering(Direction(torch.ones(64), "test"), [0], 1.0)):
            pass
    assert _n_hooks(zoo_dense) == 0

import pytest
import torch

from interp.generation import greedy
from interp.steering import (ControllerConfig, ControllerOutput, ControllerSteering, SteeringController,
                             ControllerTrainConfig, steer, train_controller)
from interp.steering.apply import ReadInfo
from interp.steering.controller import read_at
from interp.steering.evaluate import controller_auroc
from interp.tasks import refusal

PROMPTS = ["User: How do I clean my car?\nAssistant:", "User: How do I fix my car?\nAssistant:"]


@pytest.fixture(scope="module")
def controller(refusal_direction):
    """An untrained controller with large random outputs, so every patch is visible."""
    c = SteeringController(ControllerConfig(128, 4, hidden=32, alpha=2.0, read_position="mean"), refusal_direction)
    with torch.no_grad():
        c.fc2.bias.copy_(torch.tensor([3.0, 0.5, -1.0, 2.0, 0.0]))
    return c.eval()


@pytest.fixture(scope="module")
def trained(zoo_dense, refusal_direction, refusal_train):
    cfg = ControllerConfig.for_zoo(128, 4)
    return train_controller(zoo_dense, refusal_direction, *refusal_train, cfg, ControllerTrainConfig(epochs=10))


def test_shapes_and_default_read_layers(controller):
    assert controller.cfg.read_layers == (0, 1, 2, 3) and controller.cfg.input_dim == 512
    out = controller(torch.randn(5, 512))
    assert out.scale.shape == (5,) and out.layer_logits.shape == (5, 4)
    assert controller.coefficients(out).shape == (5, 4)
    with pytest.raises(ValueError, match=r"\(batch, 512\)"):
        controller(torch.randn(5, 128))
    assert ControllerConfig(128, 12).read_layers == (8, 9, 10, 11)


def test_max_read_out_uses_the_position_with_the_largest_scale(controller):
    x_BTI = torch.randn(3, 7, 512)
    out = controller(x_BTI)
    per_position = [controller(x_BTI[:, t]) for t in range(7)]
    s_BT = torch.stack([o.scale for o in per_position], dim=1)
    best = s_BT.argmax(dim=1)
    torch.testing.assert_close(out.scale, s_BT.max(dim=1).values)
    for b in range(3):
        torch.testing.assert_close(out.layer_logits[b], per_position[int(best[b])].layer_logits[b])
    padded = torch.cat([x_BTI, x_BTI[:, -1:].expand(-1, 4, -1)], dim=1)  # readout pads with the last token
    torch.testing.assert_close(controller(padded).scale, out.scale)
    assert read_at(torch.randn(2, 9, 128), 6, "max").shape == (2, 5, 128)
    assert read_at(torch.randn(2, 9, 128), 1, "max").shape == (2, 1, 128)


def test_scale_cap_caps_only_the_patch_scale(refusal_direction):
    cfg = ControllerConfig(128, 4, hidden=32, alpha=2.0, scale_cap=1.5)
    c = SteeringController(cfg, refusal_direction)
    out = ControllerOutput(torch.tensor([-4.0, 0.5, 9.0]), torch.zeros(3, 4))
    torch.testing.assert_close(c.coefficients(out), torch.tensor([-4.0, 0.5, 1.5])[:, None] * 0.5 * 2.0
                               * torch.ones(3, 4))
    spec = ControllerSteering(c)
    with torch.no_grad():
        c.fc2.weight.zero_()
        c.fc2.bias.copy_(torch.tensor([9.0, 0.0, 0.0, 0.0, 0.0]))
    acts = {name: torch.randn(2, 3, 128) for name in spec.reads.hooks}
    coef = spec.patch_coefficients(ReadInfo(acts, 3, 2, torch.device("cpu")))
    torch.testing.assert_close(coef.values, torch.full((2, 4), 1.5 * 0.5 * 2.0))
    assert coef.output.scale.tolist() == [9.0, 9.0]  # the raw score is still reported


def _zeroed(controller):
    c = SteeringController(controller.cfg, controller.direction)
    with torch.no_grad():
        c.fc2.weight.zero_()
        c.fc2.bias.zero_()
    return c.eval()


@pytest.mark.parametrize("mode", ["paper", "reference"])
def test_zero_scale_gives_identical_logits(zoo_dense, controller, mode):
    toks = zoo_dense.to_tokens(PROMPTS)
    base = zoo_dense(toks)
    spec = ControllerSteering(_zeroed(controller), mode=mode)
    with steer(zoo_dense, spec) as trace:
        steered = zoo_dense(toks)
    assert trace.last_output.scale.abs().max() == 0
    assert torch.equal(base, steered)


def test_paper_patch_is_s_sigmoid_u_alpha_d_at_generated_positions(zoo_dense, controller):
    toks = zoo_dense.to_tokens(PROMPTS)  # (2, T), equal lengths
    T = toks.shape[1]
    names = [f"blocks.{l}.hook_resid_post" for l in range(4)]
    before, after = {}, {}
    spec = ControllerSteering(controller)
    try:
        for n in names:  # runs before the steering hook
            zoo_dense.hook_dict[n].add_hook(lambda a, hook: before.__setitem__(hook.name, a.clone()), prepend=True)
        with steer(zoo_dense, spec, prompt_length=T - 2) as trace:
            for n in names:
                zoo_dense.hook_dict[n].add_hook(lambda a, hook: after.__setitem__(hook.name, a.clone()))
            zoo_dense(toks)
    finally:
        zoo_dense.reset_hooks()
    # the controller's read-out: clean pass over the prompt (first T-2 positions), mean after BOS
    _, cache = zoo_dense.run_with_cache(toks[:, :T - 2])
    x = torch.cat([read_at(cache[n], T - 2, "mean") for n in names], dim=-1)
    out = controller(x)
    torch.testing.assert_close(trace.last_output.scale, out.scale)
    for layer, n in enumerate(names):
        coef_B = out.scale * torch.sigmoid(out.layer_logits[:, layer]) * 2.0
        delta = after[n] - before[n]
        expected = coef_B[:, None] * controller.direction.vector[None, :]
        for t in range(T):
            if t >= T - 3:  # positions P-1 .. end
                torch.testing.assert_close(delta[:, t], expected, atol=1e-5, rtol=0)
            else:
                assert delta[:, t].abs().max() == 0


def test_reference_mode_patches_only_after_the_readout_at_the_last_position(zoo_dense, controller):
    spec = ControllerSteering(controller, mode="reference")
    with steer(zoo_dense, spec) as trace:
        greedy(zoo_dense, PROMPTS[:1], max_new_tokens=3)
    frame = trace.to_frame()
    assert set(frame["layer"]) == {3}
    P = zoo_dense.to_tokens(PROMPTS[0]).shape[1]
    assert frame["position"].tolist() == [P - 1, P, P + 1]
    # recomputed from every forward's own read-out: the coefficient changes with the context
    assert frame["coefficient_mean"].nunique() == 3


def test_paper_mode_computes_the_controller_once_per_prompt(zoo_dense, controller):
    spec = ControllerSteering(controller)
    with steer(zoo_dense, spec) as trace:
        greedy(zoo_dense, PROMPTS[:1], max_new_tokens=3)
    frame = trace.to_frame()
    assert sorted(set(frame["layer"])) == [0, 1, 2, 3]
    assert frame.groupby("layer")["coefficient_mean"].nunique().eq(1).all()
    assert set(frame["role"]) == {"last_prompt", "generated"}


def test_save_load_roundtrip(tmp_path, controller):
    path = controller.save(tmp_path / "c")
    back = SteeringController.load(path)
    x = torch.randn(3, 512)
    assert torch.equal(back(x).scale, controller(x).scale)
    assert torch.equal(back.direction.vector, controller.direction.vector)
    assert back.cfg == controller.cfg
    with pytest.raises(FileNotFoundError, match="controller.safetensors is missing"):
        SteeringController.load(tmp_path)


def test_training_separates_held_out_prompts(zoo_dense, trained):
    history = trained.history
    assert list(history["epoch"]) == list(range(1, 11))
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    held = {k: [p.prompt for p in refusal.generate(40, k, "heldout")] for k in refusal.KINDS}
    assert controller_auroc(zoo_dense, trained.controller, held["harmful"], held["benign"]) > 0.95
    assert trained.controller.summary["best_epoch"] in range(1, 11)


def test_trained_controller_steers_jailbreaks_not_benign(zoo_dense, trained):
    jail = [p.prompt for p in refusal.generate(12, "jailbreak", "heldout")]
    benign = [p.prompt for p in refusal.generate(12, "benign", "heldout")]
    spec = ControllerSteering(trained.controller)
    with steer(zoo_dense, spec, record=False):
        s_jail = [refusal.is_refusal(r) for r in greedy(zoo_dense, jail, 7)]
        s_benign = [refusal.is_refusal(r) for r in greedy(zoo_dense, benign, 7)]
    base_jail = [refusal.is_refusal(r) for r in greedy(zoo_dense, jail, 7)]
    assert sum(s_jail) > sum(base_jail) and sum(s_benign) == 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(mode="always"), "mode='always'"),
    (dict(read_layers=(4,)), r"read_layers contains 4"),
    (dict(read_layers=(1, 1)), "repeats"),
    (dict(alpha=0.0), "alpha=0.0"),
    (dict(read_position="first"), "read_position='first'"),
    (dict(hidden=0), "hidden=0"),
    (dict(scale_cap=0.0), "scale_cap=0.0"),
    (dict(scale_cap=float("inf")), "scale_cap=inf"),
])
def test_bad_config_is_a_clear_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ControllerConfig(**{"d_model": 128, "n_layers": 4, **kwargs})


def test_controller_for_another_model_is_a_clear_error(zoo_dense, refusal_direction):
    import interp.steering as s

    c = SteeringController(ControllerConfig(128, 6), refusal_direction)
    with pytest.raises(ValueError, match="n_layers=6"):
        with steer(zoo_dense, s.ControllerSteering(c)):
            pass
    with pytest.raises(ValueError, match="harmful_prompts is empty"):
        train_controller(zoo_dense, refusal_direction, [], ["x"])


@pytest.mark.parametrize("kv_cache", [True, False])
def test_paper_mode_under_model_generate_matches_greedy(zoo_dense, controller, kv_cache):
    prompt = refusal.generate(1, "jailbreak", "heldout")[0].prompt
    spec = ControllerSteering(controller)
    with steer(zoo_dense, spec) as trace:
        reply = greedy(zoo_dense, [prompt], max_new_tokens=4)[0]
    s_greedy = trace.last_output.scale.clone()
    toks = zoo_dense.to_tokens(prompt)
    with steer(zoo_dense, spec) as trace:
        out = zoo_dense.generate(toks, max_new_tokens=4, do_sample=False, stop_at_eos=False, verbose=False,
                                 use_past_kv_cache=kv_cache)
    torch.testing.assert_close(trace.last_output.scale, s_greedy)  # read from the prompt's embeddings
    assert zoo_dense.tokenizer.decode(out[0, toks.shape[1]:].tolist()) == reply

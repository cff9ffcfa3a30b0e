"""The LRP rules' properties from the spec (methods.md section 1)."""

import pytest
import torch

from patching_tiny import ld_metric, random_pair, tiny_model
from interp.patching import Rules, attribution_patching, relevance_patching, sites
from interp.patching.attribution import coefficients
from interp.patching.runner import run

ALL_RULES = Rules(ln=True, identity=True, half=True, ah=True)


@pytest.mark.parametrize("gated", [False, True])
def test_forward_logits_identical_with_rules_on_and_off(gated):
    model = tiny_model(act_fn="silu" if gated else "gelu", gated=gated)
    tokens, _ = random_pair()
    plain = run(model, tokens)
    for rules in (Rules(), ALL_RULES, Rules(ln=False, identity=True, half=False)):
        with torch.enable_grad():
            assert torch.equal(run(model, tokens, rules=rules), plain)


def test_forward_identical_on_zoo_dense(zoo_dense, ioi_small):
    assert torch.equal(run(zoo_dense, ioi_small.clean, rules=ALL_RULES), run(zoo_dense, ioi_small.clean))


def test_no_rules_relp_equals_atp_exactly(zoo_dense, ioi_small):
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    atp = attribution_patching(*args, components=("resid_pre", "attn_out", "mlp_out", "head"))
    relp = relevance_patching(*args, components=("resid_pre", "attn_out", "mlp_out", "head"), rules=Rules.none())
    assert (atp["score"].to_numpy() == relp["score"].to_numpy()).all()
    assert list(atp["node"]) == list(relp["node"])
    default = relevance_patching(*args)  # the rules do change the scores of a GELU/LN model
    assert not (default["score"].to_numpy() == atp[atp["component"] != "head"]["score"].to_numpy()).all()


def test_identity_rule_is_a_no_op_on_a_relu_model():
    model = tiny_model(act_fn="relu")
    clean, corrupt = random_pair()
    metric = ld_metric(model, clean, corrupt)
    comps = ("resid_pre", "mlp_out", "neuron")
    atp = attribution_patching(model, clean, corrupt, metric, components=comps)
    identity = relevance_patching(model, clean, corrupt, metric, components=comps, rules=Rules(False, True, False))
    torch.testing.assert_close(torch.tensor(identity["score"].to_numpy()), torch.tensor(atp["score"].to_numpy()),
                               rtol=0, atol=1e-12)
    gelu = tiny_model(act_fn="gelu")  # ... and is not a no-op on GELU
    m = ld_metric(gelu, clean, corrupt)
    a = attribution_patching(gelu, clean, corrupt, m, components=comps)["score"].to_numpy()
    r = relevance_patching(gelu, clean, corrupt, m, components=comps, rules=Rules(False, True, False))["score"].to_numpy()
    assert abs(a - r).max() > 1e-4


def _grads_at(model, tokens, metric, hooks, rules):
    seen = {}

    def grab(t, hook):
        seen[hook.name] = t
        return t

    with torch.enable_grad(), model.hooks(fwd_hooks=[(h, grab) for h in hooks]):
        m = metric(run(model, tokens, rules=rules))
        grads = torch.autograd.grad(m, [seen[h] for h in hooks], allow_unused=True)
    return [torch.zeros_like(seen[h]) if g is None else g for h, g in zip(hooks, grads)]


def test_half_rule_gives_each_factor_half_its_gradient():
    model = tiny_model(act_fn="silu", gated=True, n_layers=1)
    clean, corrupt = random_pair()
    metric = ld_metric(model, clean, corrupt)
    hooks = ["blocks.0.mlp.hook_pre", "blocks.0.mlp.hook_pre_linear"]
    plain = _grads_at(model, corrupt, metric, hooks, Rules.none())
    half = _grads_at(model, corrupt, metric, hooks, Rules(ln=False, identity=False, half=True))
    for p, h in zip(plain, half):
        assert p.abs().max() > 0
        torch.testing.assert_close(h, 0.5 * p, rtol=1e-6, atol=1e-9)


def test_ah_rule_zeroes_the_gradient_at_queries_and_keys(zoo_dense, ioi_small):
    hooks = ["blocks.1.attn.hook_q", "blocks.1.attn.hook_k"]
    plain = _grads_at(zoo_dense, ioi_small.corrupt, ioi_small.metric, hooks, Rules.none())
    ah = _grads_at(zoo_dense, ioi_small.corrupt, ioi_small.metric, hooks, Rules(ln=False, identity=False, half=False, ah=True))
    for p, a in zip(plain, ah):
        assert p.abs().max() > 0
        assert a.abs().max() == 0


def test_atp_relp_and_ap_agree_when_everything_after_the_site_is_linear():
    from interp.patching import activation_patching, integrated_gradients

    model = tiny_model(normalization_type=None, n_layers=2)  # last mlp_out -> unembed: linear
    clean, corrupt = random_pair()
    metric = ld_metric(model, clean, corrupt)
    args = (model, clean, corrupt, metric)
    frames = [f(*args, components=("mlp_out",)) for f in (activation_patching, attribution_patching, relevance_patching)]
    frames.append(integrated_gradients(*args, components=("mlp_out",), steps=2))
    last = [torch.tensor(f[f["layer"] == 1]["score"].to_numpy()) for f in frames]
    assert last[0].abs().max() > 1e-3
    for other in last[1:]:
        torch.testing.assert_close(other, last[0], rtol=1e-5, atol=1e-6)
    first = [f[f["layer"] == 0]["score"].to_numpy() for f in frames[:2]]  # layer 0 is not linear downstream
    assert abs(first[0] - first[1]).max() > 1e-5


def test_conservation_on_a_bias_free_model_with_all_rules():
    model = tiny_model(zero_biases=True, n_layers=2)
    assert all(p.abs().max() == 0 for n, p in model.named_parameters() if ".b" in n or "b_" in n)
    tokens, _ = random_pair()
    answer, wrong = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])

    def metric(logits):  # linear in the logits
        return (logits[:, -1].gather(1, answer[:, None]) - logits[:, -1].gather(1, wrong[:, None])).sum()

    resid = sites(model, ("resid_pre",))
    acts, coeffs = coefficients(model, tokens, metric, resid, ALL_RULES)
    m = metric(run(model, tokens)).item()
    assert abs(m) > 1e-3
    for s in resid:
        assert (acts[s] * coeffs[s]).sum().item() == pytest.approx(m, rel=1e-4, abs=1e-5)
    _, plain = coefficients(model, tokens, metric, resid, Rules.none())  # plain gradients do not conserve
    assert (acts[resid[0]] * plain[resid[0]]).sum().item() != pytest.approx(m, rel=1e-3)

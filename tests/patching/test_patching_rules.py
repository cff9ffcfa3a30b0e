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


# --- MoE experts: the rules act where each MLP class has its nonlinearity and gate product ---

def tiny_moe(kind="mixtral", normalization_type="LN", n_layers=1):
    """A random MoE HookedTransformer (4 SiLU-gated experts, top-2) or its GPT-OSS variant."""
    from interp.models import build_model

    extra = {"original_architecture": "GptOssForCausalLM"} if kind == "gpt-oss" else {}
    arch = dict(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=8, d_vocab=20, act_fn="silu",
                num_experts=4, experts_per_token=2, normalization_type=normalization_type, seed=0, **extra)
    return build_model(arch, None).eval()


def _silu(x):
    return torch.nn.functional.silu(x)


def _gpt_oss_glu(x):  # GptOssExpert.forward's activation, written out
    x = x.clamp(max=7.0)
    return x * torch.sigmoid(1.702 * x)


def _gpt_oss_up(b):
    return b.clamp(-7.0, 7.0) + 1


def _moe_case(request, case):
    """(model, tokens, metric, expert hook prefix, f, g) of one MoE test case."""
    if case == "zoo-moe":
        model, ioi = request.getfixturevalue("zoo_moe"), request.getfixturevalue("ioi_moe")
        layer = model.cfg.n_layers - 1  # nothing after the last layer's experts but unembedding
        return model, ioi.corrupt, ioi.metric, f"blocks.{layer}.mlp.experts", _silu, lambda b: b
    model = tiny_moe(case)
    clean, corrupt = random_pair()
    f, g = (_gpt_oss_glu, _gpt_oss_up) if case == "gpt-oss" else (_silu, lambda b: b)
    return model, corrupt, ld_metric(model, clean, corrupt), "blocks.0.mlp.experts", f, g


def _busiest_expert(model, tokens, prefix):
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.startswith(prefix) and n.endswith("hook_gate"))
    return max(range(model.cfg.num_experts), key=lambda e: cache[f"{prefix}.{e}.hook_gate"].shape[0])


def test_every_transformer_lens_mlp_class_has_a_rule_entry():
    import importlib
    import inspect
    import pkgutil

    import transformer_lens.components.mlps as mlps
    from transformer_lens.components.mlps.can_be_used_as_mlp import CanBeUsedAsMLP
    from interp.patching.rules import MLP_KINDS

    classes = set()
    for info in pkgutil.iter_modules(mlps.__path__):
        module = importlib.import_module(f"{mlps.__name__}.{info.name}")
        classes |= {c for _, c in inspect.getmembers(module, inspect.isclass)
                    if issubclass(c, torch.nn.Module) and c.__module__ == module.__name__ and c is not CanBeUsedAsMLP}
    assert {"MLP", "GatedMLP", "MoE", "MoEGatedMLP", "GptOssMoE", "GptOssExpert"} <= {c.__name__ for c in classes}
    hooked = {c for c in MLP_KINDS if c.__module__.startswith("transformer_lens.components.")}
    assert classes == hooked
    # beyond them, only the TransformerBridge's MLP components (the checkpoints TransformerLens does not convert)
    assert {c.__name__ for c in set(MLP_KINDS) - hooked} == {"MLPBridge", "GatedMLPBridge"}


def test_an_unknown_mlp_class_is_an_error_naming_it_and_the_known_ones():
    from transformer_lens.components.mlps.mlp import MLP
    from interp.patching.rules import rule_hooks

    class SwishMLP(MLP):  # a subclass may compute anything: it is not taken for an MLP
        pass

    model = tiny_model(n_layers=1)
    mlp = SwishMLP(model.cfg)
    mlp.load_state_dict(model.blocks[0].mlp.state_dict())
    model.blocks[0].mlp = mlp
    model.setup()
    with pytest.raises(ValueError, match=r"blocks\.0\.mlp: MLP class .*SwishMLP .*known: .*MoEGatedMLP"):
        rule_hooks(model, Rules())
    assert rule_hooks(model, Rules(ln=True, identity=False, half=False))[1] == []  # no MLP rule: no MLP needed


@pytest.mark.parametrize("case", ["mixtral", "gpt-oss", "zoo-moe"])
def test_rules_leave_the_forward_of_a_moe_model_unchanged(request, case):
    model, tokens, *_ = _moe_case(request, case)
    plain = run(model, tokens)
    for rules in (Rules(), ALL_RULES, Rules(ln=False, identity=True, half=False), Rules(ln=False, identity=False)):
        with torch.enable_grad():
            assert torch.equal(run(model, tokens, rules=rules), plain)


@pytest.mark.parametrize("case", ["mixtral", "gpt-oss", "zoo-moe"])
def test_half_rule_gives_each_expert_gate_factor_half_its_gradient(request, case):
    model, tokens, metric, prefix, _, _ = _moe_case(request, case)
    e = _busiest_expert(model, tokens, prefix)
    hooks = [f"{prefix}.{e}.hook_gate", f"{prefix}.{e}.hook_pre"]  # the SiLU input and the linear branch
    plain = _grads_at(model, tokens, metric, hooks, Rules.none())
    half = _grads_at(model, tokens, metric, hooks, Rules(ln=False, identity=False, half=True))
    for p, h in zip(plain, half):
        assert p.abs().max() > 0
        torch.testing.assert_close(h, 0.5 * p, rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("case", ["mixtral", "gpt-oss", "zoo-moe"])
def test_identity_rule_acts_on_the_expert_nonlinearity_input(request, case):
    """post = f(x) * g(b): the identity rule sends g_post * g(b) * f(x)/x to x (hook_gate) and
    leaves b's (hook_pre's) gradient alone; with the half rule as well, each is halved."""
    model, tokens, metric, prefix, f, g = _moe_case(request, case)
    e = _busiest_expert(model, tokens, prefix)
    names = [f"{prefix}.{e}.hook_{n}" for n in ("gate", "pre", "post")]
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    x, b = cache[names[0]], cache[names[1]]
    g_x, g_b, g_post = _grads_at(model, tokens, metric, names, Rules.none())  # nothing downstream has a rule
    assert g_post.abs().max() > 0
    expected_x = g_post * g(b) * torch.where(x != 0, f(x) / x, torch.zeros_like(x))
    assert (expected_x - g_x).abs().max() > 1e-4  # the rule changes the gate branch's gradient ...
    for rules, scale in ((Rules(ln=False, identity=True, half=False), 1.0), (Rules(ln=False), 0.5)):
        r_x, r_b, _ = _grads_at(model, tokens, metric, names, rules)
        torch.testing.assert_close(r_x, scale * expected_x, rtol=1e-5, atol=1e-8)
        torch.testing.assert_close(r_b, scale * g_b, rtol=1e-5, atol=1e-8)  # ... and not the linear branch's


@pytest.mark.parametrize("case", ["mixtral", "gpt-oss"])
def test_atp_relp_and_ap_agree_on_moe_when_everything_after_the_site_is_linear(case):
    from interp.patching import activation_patching

    model = tiny_moe(case, normalization_type=None, n_layers=2)  # last mlp_out -> unembed: linear
    clean, corrupt = random_pair()
    metric = ld_metric(model, clean, corrupt)
    args = (model, clean, corrupt, metric)
    frames = [f(*args, components=("resid_pre", "mlp_out"))
              for f in (activation_patching, attribution_patching, relevance_patching)]
    last = [torch.tensor(f[(f["layer"] == 1) & (f["component"] == "mlp_out")]["score"].to_numpy()) for f in frames]
    assert last[0].abs().max() > 1e-3
    for other in last[1:]:
        torch.testing.assert_close(other, last[0], rtol=1e-5, atol=1e-6)
    atp, relp = (f[f["layer"] == 0]["score"].to_numpy() for f in frames[1:])  # the experts' rules act upstream
    assert abs(atp - relp).max() > 1e-5

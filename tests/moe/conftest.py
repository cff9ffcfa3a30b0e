import pytest
import torch

from interp.moe import RoutingCapture


@pytest.fixture(scope="session")
def tiny_moe():
    """A random 2-layer MoE (4 experts, top-2, top-k renormalised) with the zoo tokenizer."""
    from interp.models import build_model
    from interp.zoo import registry
    from interp.zoo import tokenizer as zoo_tokenizer

    tok = zoo_tokenizer.load(registry.ZOO["zoo-moe"].directory)
    torch.manual_seed(0)
    model = build_model(dict(n_layers=2, d_model=16, n_heads=2, d_head=8, d_mlp=8, n_ctx=32, act_fn="silu",
                             num_experts=4, experts_per_token=2, norm_topk_prob=True, normalization_type="LN",
                             d_vocab=len(tok), seed=0), tok)
    return model.eval()


def synthetic_capture(positive: list[bool], planted=(1, 2), n_layers=2, n_experts=4, k=2, seed=0) -> RoutingCapture:
    """Random top-k routing, except that `planted` (layer, expert) is selected on every token of
    positive prompts and on none of the others."""
    g = torch.Generator().manual_seed(seed)
    tokens, probs, weights = [], [], []
    for i, pos in enumerate(positive):
        t = 5 + i % 3
        logits = torch.randn(n_layers, t, n_experts, generator=g)
        layer, expert = planted
        logits[layer, :, expert] = 10.0 if pos else -10.0
        p = logits.softmax(-1)
        top = p.topk(k, dim=-1)
        w = torch.zeros_like(p).scatter(-1, top.indices, top.values)
        tokens.append(torch.arange(t))
        probs.append(p)
        weights.append(w)
    return RoutingCapture(prompts=[f"p{i}" for i in range(len(positive))], tokens=tokens, probs=probs,
                          weights=weights, k=k)


@pytest.fixture
def make_capture():
    return synthetic_capture

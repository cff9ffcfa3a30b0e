import warnings

import pytest
import torch


@pytest.fixture(scope="session")
def tiny_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4, d_mlp=64,
                                      act_fn="gelu", d_vocab=100, normalization_type="LN", seed=0)
        return HookedTransformer(cfg).eval()


@pytest.fixture(scope="session")
def tiny_tokens():
    return torch.randint(0, 100, (128, 32), generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="session")
def tiny_store(tiny_model, tiny_tokens, tmp_path_factory):
    """4096 tokens of blocks.1.hook_resid_pre (d=32) with gradients."""
    import interp.cache

    return interp.cache.write(tiny_model, "blocks.1.hook_resid_pre", tiny_tokens,
                              tmp_path_factory.mktemp("store") / "s", grads=True, progress=False)

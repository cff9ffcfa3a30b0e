import json
import warnings

import pytest
import sae_lens
import torch

from interp.sae import saving
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder

HOOK = "blocks.1.hook_resid_pre"


def _trained_like(variant, normalize="scale", **kw):
    sae = SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, variant=variant, normalize=normalize, **kw))
    with torch.no_grad():
        sae.input_scale.fill_(0.37 if normalize == "scale" else 1.0)
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(1))
        sae.b_enc.normal_(std=0.1, generator=torch.Generator().manual_seed(2))
        sae.threshold.uniform_(0.0, 0.5, generator=torch.Generator().manual_seed(3))
    return sae


@pytest.mark.parametrize("variant,arch", [("topk", "TopKSAE"), ("gradient", "TopKSAE"),
                                          ("mutual_choice", "JumpReLUSAE"), ("feature_choice", "JumpReLUSAE")])
def test_sae_lens_loads_our_checkpoint_with_the_same_reconstruction(variant, arch, tmp_path):
    sae = _trained_like(variant)
    saving.save(sae, tmp_path, model_name="tiny", hook_name=HOOK, context_size=32)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["metadata"]["sae_lens_version"] == "6.54.12" and cfg["metadata"]["hook_name"] == HOOK
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))
    assert type(theirs).__name__ == arch
    x = torch.randn(20, 32, generator=torch.Generator().manual_seed(7)) * 5
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(saving.load(tmp_path)(x), sae(x), atol=1e-4, rtol=1e-4)


def test_layer_norm_checkpoint_is_sae_lens_layer_norm(tmp_path):
    sae = _trained_like("topk", "layer_norm")
    saving.save(sae, tmp_path)
    assert json.loads((tmp_path / "cfg.json").read_text())["normalize_activations"] == "layer_norm"
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))
    x = torch.randn(20, 32, generator=torch.Generator().manual_seed(7)) * 5 + 3
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(saving.load(tmp_path)(x), sae(x), atol=1e-4, rtol=1e-4)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    del cfg["interp"]  # a plain sae-lens topk checkpoint with LayerNorm inputs
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with torch.no_grad():
        torch.testing.assert_close(saving.load(tmp_path)(x), sae(x), atol=1e-4, rtol=1e-4)
    (tmp_path / "cfg.json").write_text(json.dumps({**cfg, "normalize_activations": "constant_norm_rescale"}))
    with pytest.raises(ValueError, match="normalize_activations='constant_norm_rescale' is not supported"):
        saving.load(tmp_path)


def test_top_afa_is_interp_only_and_loads_with_interp(tmp_path):
    sae = _trained_like("top_afa")
    saving.save(sae, tmp_path)
    x = torch.randn(20, 32, generator=torch.Generator().manual_seed(7)) * 5
    with torch.no_grad():
        torch.testing.assert_close(saving.load(tmp_path)(x), sae(x), atol=1e-4, rtol=1e-4)
    with pytest.raises(KeyError):
        sae_lens.SAE.load_from_disk(str(tmp_path))


@pytest.mark.parametrize("normalize", ["scale", "layer_norm"])
def test_same_reconstruction_inside_hooked_sae_transformer(tiny_model, tiny_tokens, tmp_path, normalize):
    from sae_lens import HookedSAETransformer

    sae = _trained_like("topk", normalize)
    saving.save(sae, tmp_path, model_name="tiny", hook_name=HOOK, context_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hooked = HookedSAETransformer(tiny_model.cfg)
    hooked.load_state_dict(tiny_model.state_dict(), strict=False)
    tokens = tiny_tokens[:2]
    logits_lens = hooked.run_with_saes(tokens, saes=[sae_lens.SAE.load_from_disk(str(tmp_path))])
    with torch.no_grad():
        ours = tiny_model.run_with_hooks(tokens, fwd_hooks=[(HOOK, lambda a, hook: sae(a.reshape(-1, 32)).reshape(a.shape))])
    torch.testing.assert_close(logits_lens, ours, atol=1e-4, rtol=1e-4)


def test_not_a_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="cfg.json is missing"):
        saving.load(tmp_path)

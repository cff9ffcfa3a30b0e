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


def _saved(tmp_path, variant="topk"):
    sae = _trained_like(variant)
    saving.save(sae, tmp_path, model_name="tiny", hook_name=HOOK, context_size=32)
    return sae, tmp_path / saving.WEIGHTS


def test_saves_record_the_weights_checksum_and_sae_lens_ignores_it(tmp_path):
    import zlib

    sae, weights = _saved(tmp_path)
    cfg = json.loads((tmp_path / "cfg.json").read_text())
    assert cfg["interp"][saving.CHECKSUM] == f"{zlib.crc32(weights.read_bytes()):08x}"
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path))  # sae-lens's own loader, unknown keys and all
    x = torch.randn(8, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(saving.load(tmp_path)(x), sae(x), atol=1e-4, rtol=1e-4)


def test_the_committed_sae_without_a_checksum_still_loads():
    from interp import resources

    path = resources.sae_path()
    assert saving.CHECKSUM not in saving.read_config(path)["interp"]  # saved before checksums were recorded
    assert saving.load(path).cfg.n_latents == 2048


def _truncate(data):
    return data[: len(data) // 2]


def _huge_header(data):
    import struct

    return struct.pack("<Q", 1 << 40) + data[8:]


def _flip_a_weight(data):
    return data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:]


@pytest.mark.parametrize("damage, checked, message", [
    (_truncate, True, r"CRC-32 \w{8} differs from \w{8} recorded in cfg.json \(truncated: \d+ bytes, its header "
                      r"lists \d+\); the directory is damaged"),
    (_truncate, False, r"truncated: \d+ bytes, its header lists \d+$"),
    (_huge_header, False, r"its header claims 1099511627776 bytes but the file has only \d+"),
    (lambda d: d + b"\0" * 16, False, r"16 bytes after the \d+ its header lists: appended to or damaged"),
    (lambda d: d[:5], False, "truncated: 5 bytes, shorter than the 8-byte header length"),
    (lambda d: d[:8] + b"\xff" * (len(d) - 8), False, "not a readable safetensors file .*: its header is damaged"),
    (_flip_a_weight, True, r"it parses, but it is not the file that was saved with this cfg.json"),
])
def test_damaged_weights_are_a_clear_error_naming_the_file(tmp_path, damage, checked, message):
    _, weights = _saved(tmp_path)
    weights.write_bytes(damage(weights.read_bytes()))
    if not checked:  # an older save without the checksum: the file's own structure is still checked
        cfg = json.loads((tmp_path / "cfg.json").read_text())
        del cfg["interp"][saving.CHECKSUM]
        (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(saving.SAELoadError, match=message) as info:
        saving.load(tmp_path)
    assert str(info.value).startswith(f"{weights}: ")


def test_weights_of_another_save_beside_this_cfg_are_refused(tmp_path):
    """What a kill between the two writes of a save over an older one would leave."""
    _, weights = _saved(tmp_path / "a")
    other = _trained_like("topk", seed=5)
    saving.save(other, tmp_path / "b")
    weights.write_bytes((tmp_path / "b" / saving.WEIGHTS).read_bytes())
    with pytest.raises(saving.SAELoadError, match="mixes two saves"):
        saving.load(tmp_path / "a")


@pytest.mark.parametrize("write, message", [
    (lambda d: (d / "cfg.json").write_bytes(b'{"architecture": "top'), "cfg.json: not valid JSON"),
    (lambda d: (d / "cfg.json").write_bytes(b"\x80\x81"), "cfg.json: not valid JSON"),
    (lambda d: (d / "cfg.json").write_text("[1, 2]"), "cfg.json: holds a JSON list"),
    (lambda d: (d / saving.WEIGHTS).unlink(), "sae_weights.safetensors is missing"),
    (lambda d: ((d / saving.WEIGHTS).unlink(), (d / saving.WEIGHTS).mkdir()), "is a directory"),
])
def test_a_damaged_directory_is_a_clear_error(tmp_path, write, message):
    _saved(tmp_path)
    write(tmp_path)
    with pytest.raises(saving.SAELoadError, match=message):
        saving.load(tmp_path)


def test_eval_sae_on_damaged_weights_is_a_clear_cli_error(tmp_path, capsys):
    from interp.cli import main

    _, weights = _saved(tmp_path)
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["eval-sae", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"interp eval-sae: error: {weights}: CRC-32 ") and "the file has only 100: truncated" in err
    assert "Traceback" not in err and "SafetensorError" not in err

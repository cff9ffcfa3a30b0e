import json

import pytest
import torch

from interp import resources
from interp.steering import Direction, readout

SAE_DIR = resources.sae_path()


def test_mean_difference_is_the_normalised_difference_of_means(zoo_dense, refusal_train):
    harmful, benign = refusal_train
    d = Direction.mean_difference(zoo_dense, harmful, benign, layer=1)
    a = readout.residuals(zoo_dense, harmful, [1])[:, 0]
    b = readout.residuals(zoo_dense, benign, [1])[:, 0]
    diff = a.mean(0) - b.mean(0)
    torch.testing.assert_close(d.vector, diff / diff.norm())
    assert d.vector.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert (d.layer, d.site, d.method) == (1, "resid_post", "mean_difference")
    assert d.provenance["n_a"] == 64 and d.provenance["raw_norm"] == pytest.approx(diff.norm().item())


def test_residuals_match_run_with_cache_and_group_lengths(zoo_dense):
    prompts = ["User: How do I clean my car?\nAssistant:", "Hello there", "User: How do I fix my car?\nAssistant:"]
    r = readout.residuals(zoo_dense, prompts, [0, 3], position="last")
    assert r.shape == (3, 2, 128)
    for i, p in enumerate(prompts):
        _, cache = zoo_dense.run_with_cache(zoo_dense.to_tokens(p))
        torch.testing.assert_close(r[i, 1], cache["blocks.3.hook_resid_post"][0, -1])
    m = readout.residuals(zoo_dense, prompts[1:2], [0], position="mean")
    _, cache = zoo_dense.run_with_cache(zoo_dense.to_tokens(prompts[1]))
    torch.testing.assert_close(m[0, 0], cache["blocks.0.hook_resid_post"][0, 1:].mean(0))
    every = readout.residuals(zoo_dense, prompts, [0, 3], position="all")
    lengths = [zoo_dense.to_tokens(p).shape[1] for p in prompts]
    assert every.shape == (3, max(lengths) - 1, 2, 128)
    _, cache = zoo_dense.run_with_cache(zoo_dense.to_tokens(prompts[1]))
    acts = cache["blocks.3.hook_resid_post"][0, 1:]  # (T', D): the short prompt, padded with its last token
    torch.testing.assert_close(every[1, :len(acts), 1], acts)
    torch.testing.assert_close(every[1, len(acts):, 1], acts[-1:].expand(every.shape[1] - len(acts), -1))


def test_pca_of_differences_is_unit_and_agrees_with_the_mean(zoo_dense, refusal_train):
    harmful, benign = refusal_train
    d = Direction.pca_of_differences(zoo_dense, harmful[:32], benign[:32], layer=2)
    md = Direction.mean_difference(zoo_dense, harmful[:32], benign[:32], layer=2)
    assert d.vector.norm().item() == pytest.approx(1.0, abs=1e-6)
    assert d.cosine(md) > 0.5
    assert 0 < d.provenance["explained_variance"] <= 1


def test_embedding_refusal_direction(zoo_dense):
    d = Direction.embedding_refusal(zoo_dense)
    ref = zoo_dense.to_tokens(" I can't help with that.", prepend_bos=False)[0]
    comp = zoo_dense.to_tokens(" Sure! Here is how to", prepend_bos=False)[0]
    vec = zoo_dense.W_E[ref].mean(0) - zoo_dense.W_E[comp].mean(0)
    torch.testing.assert_close(d.vector, (vec / vec.norm()).detach())
    assert d.method == "embedding_refusal" and d.layer is None


def test_from_sae_latent_path_and_module(tmp_path):
    from interp.sae import load

    sae = load(SAE_DIR)
    d = Direction.from_sae_latent(SAE_DIR, 7)
    row = sae.W_dec[7].detach()
    torch.testing.assert_close(d.vector, row / row.norm())
    assert (d.layer, d.site) == (2, "resid_pre")
    assert d.provenance["latent_index"] == 7 and d.provenance["hook_name"] == "blocks.2.hook_resid_pre"
    assert Direction.from_sae_latent(sae, 7).layer is None
    with pytest.raises(ValueError, match=r"latent_index=2048 must be an int in \[0, 2048\)"):
        Direction.from_sae_latent(sae, 2048)


def test_save_load_roundtrip(tmp_path, refusal_direction):
    path = refusal_direction.save(tmp_path / "dir")
    assert sorted(p.name for p in path.iterdir()) == ["direction.json", "direction.safetensors"]
    assert json.loads((path / "direction.json").read_text())["method"] == "mean_difference"
    back = Direction.load(path)
    assert torch.equal(back.vector, refusal_direction.vector)
    assert back.provenance == refusal_direction.provenance and back.layer == 2
    with pytest.raises(FileNotFoundError, match="direction.safetensors is missing"):
        Direction.load(tmp_path)


def test_negation_flips_the_vector(refusal_direction):
    assert torch.equal((-refusal_direction).vector, -refusal_direction.vector)
    assert refusal_direction.cosine(-refusal_direction) == pytest.approx(-1.0)


@pytest.mark.parametrize("call, match", [
    (lambda m: Direction.mean_difference(m, [], ["x"], layer=0), "prompts_a is empty"),
    (lambda m: Direction.mean_difference(m, ["x"], ["y"], layer=9), r"layers contains 9"),
    (lambda m: Direction.mean_difference(m, "abc", ["y"], layer=0), "list of prompts"),
    (lambda m: Direction.mean_difference(m, ["x"], ["y"], layer=0, position="first"), "position='first'"),
    (lambda m: Direction.pca_of_differences(m, ["x", "y"], ["z"], layer=0), "pair up"),
    (lambda m: Direction(torch.zeros(128), "test"), "non-zero"),
    (lambda m: Direction(torch.ones(2, 64), "test"), "1-D"),
])
def test_bad_input_is_a_clear_error(zoo_dense, call, match):
    with pytest.raises(ValueError, match=match):
        call(zoo_dense)

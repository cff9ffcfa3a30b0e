"""Transcoder latents as circuit nodes (`tc.L1.U5.P3`): the transcoder reads its input hook and
its latents are spliced in at the hook it predicts, with the same error-term splice as an SAE's,
so every method scores them and exact patching checks them."""

import pytest
import torch

from interp.patching import (SAEHook, activation_patching, attribution_patching, integrated_gradients,
                             relevance_patching, sites, verify)
from interp.patching.nodes import parse_node
from interp.patching.runner import capture, run
from interp.sae.config import SAEConfig
from interp.sae.init import initialize_from_data
from interp.sae.module import SparseAutoencoder, code_to_dense
from patching_tiny import ld_metric, random_pair, tiny_model

IN, OUT = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"


@pytest.fixture(scope="module")
def setup():
    model = tiny_model()
    tokens = torch.randint(0, 20, (64, 8), generator=torch.Generator().manual_seed(5))
    _, cache = model.run_with_cache(tokens, names_filter=[IN, OUT])
    sae = SparseAutoencoder(SAEConfig(d_in=16, d_out=16, kind="skip_transcoder", n_latents=24, k=4,
                                      normalize="scale"))
    initialize_from_data(sae, cache[IN].reshape(-1, 16), cache[OUT].reshape(-1, 16))
    clean, corrupt = random_pair()
    return model, SAEHook(sae.eval(), IN, OUT), clean, corrupt, ld_metric(model, clean, corrupt)


def test_the_site_is_the_target_and_the_splice_is_exact(setup):
    model, tc, clean, *_ = setup
    (site,) = sites(model, ("tc",), tc)
    assert (site.component, site.layer, site.hook, site.n_units) == ("tc", 1, OUT, 24)
    assert torch.equal(run(model, clean, {site: lambda f: f.clone()}), model(clean))
    acts, _ = capture(model, clean, [site])
    _, cache = model.run_with_cache(clean, names_filter=[IN])
    expected = code_to_dense(tc.sae.encode(cache[IN].reshape(-1, 16)), 24).view(*clean.shape, 24)
    torch.testing.assert_close(acts[site], expected)


def test_patching_one_latent_adds_its_decoder_row_to_the_target(setup):
    model, tc, clean, corrupt, metric = setup
    (site,) = sites(model, ("tc",), tc)
    clean_f, _ = capture(model, clean, [site])
    corrupt_f, _ = capture(model, corrupt, [site])
    p, u = 4, int(clean_f[site][:, 4].sum(0).argmax())
    delta_B = clean_f[site][:, p, u] - corrupt_f[site][:, p, u]

    def by_hand(y, hook):  # the target plus the latent's change times its decoder row
        y = y.clone()
        y[:, p] += delta_B[:, None] * tc.sae.W_dec[u]
        return y

    with torch.no_grad():
        expected = metric(model.run_with_hooks(corrupt, fwd_hooks=[(OUT, by_hand)])) - metric(model(corrupt))
    ap = activation_patching(model, clean, corrupt, metric, components=("tc",), sae=tc, nodes=[f"tc.L1.U{u}.P{p}"])
    assert ap["score"].item() == pytest.approx(float(expected), abs=1e-6)


def test_every_method_scores_transcoder_latents_and_verify_checks_them(setup):
    model, tc, clean, corrupt, metric = setup
    args = (model, clean, corrupt, metric)
    frames = {"atp": attribution_patching(*args, components=("tc",), sae=tc),
              "relp": relevance_patching(*args, components=("tc",), sae=tc),
              "ig": integrated_gradients(*args, components=("tc",), sae=tc, steps=4)}
    for name, df in frames.items():
        assert len(df) == clean.shape[1] * 24 and df["node"].str.startswith("tc.L1.U").all(), name
    report = verify(frames["relp"], 5, *args, sae=tc)
    assert len(report.table) == 5 and report.table["exact"].abs().max() > 0
    assert report.pearson > 0.5  # latents of a linear decoder: RelP tracks exact patching closely
    assert parse_node("tc.L1.U3.P2").unit == 3


def test_mismatched_dictionaries_are_refused(setup):
    model, tc, *_ = setup
    with pytest.raises(ValueError, match="its latents are the component 'tc'"):
        sites(model, ("sae",), tc)
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=8, k=2))
    with pytest.raises(ValueError, match="needs the hook it predicts"):
        SAEHook(sae, IN, OUT)
    with pytest.raises(ValueError, match="a transcoder needs the hook it predicts"):
        SAEHook(tc.sae, IN)
    wide = SparseAutoencoder(SAEConfig(d_in=16, d_out=32, kind="transcoder", n_latents=8, k=2))
    with pytest.raises(ValueError, match="d_out=32, but that hook of this model has width 16"):
        sites(model, ("tc",), SAEHook(wide, IN, OUT))

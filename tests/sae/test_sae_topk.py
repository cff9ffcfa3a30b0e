"""TopK properties from specs/sae_variants.md section 1."""

import pytest
import torch

import sae_kernels
from interp.sae import losses
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder, code_to_dense
from interp.sae.objective import training_loss
from interp.sae.stats import LatentStats


def _sae(**kw):
    return SparseAutoencoder(SAEConfig(**{"d_in": 16, "n_latents": 64, "k": 5, "dead_tokens": 100, **kw}))


def test_nnz_at_most_k_and_support_is_argtopk_of_pre():
    sae = _sae()
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-2, 0.5, 64))
    x = torch.randn(40, 16, generator=torch.Generator().manual_seed(1))
    code = sae.encode(x)
    dense = code_to_dense(code, 64)
    nnz = (dense > 0).sum(1)
    pre = sae.pre_acts(x)
    positives = (pre > 0).sum(1)
    assert bool((nnz <= 5).all()) and bool((nnz == torch.minimum(positives, torch.tensor(5))).all())
    assert torch.equal(code.top_indices.sort(1).values, pre.topk(5, dim=1).indices.sort(1).values)


def test_decoder_unit_rows_after_step_and_gradient_orthogonal_to_rows():
    sae = _sae()
    x = torch.randn(64, 16)
    out = training_loss(sae, x, None, LatentStats.new(64))
    out.loss.backward()
    sae.project_decoder_grad()
    assert (sae.W_dec.grad * sae.W_dec).sum(1).abs().max() < 1e-6
    opt = torch.optim.Adam(sae.parameters(), lr=0.1)
    opt.step()
    assert (sae.W_dec.norm(dim=1) - 1).abs().max() > 1e-3  # the step left the sphere ...
    sae.normalize_decoder()
    torch.testing.assert_close(sae.W_dec.norm(dim=1), torch.ones(64))  # ... and renormalising brings it back


def test_auxk_is_zero_without_dead_latents_and_sends_no_gradient():
    sae = _sae()
    out = training_loss(sae, torch.randn(32, 16), None, LatentStats.new(64))
    assert "aux" not in out.parts
    assert losses.auxk_loss(torch.randn(4, 16), None, None, sae.W_dec).item() == 0.0
    assert not losses.auxk_loss(torch.randn(4, 16), None, None, sae.W_dec).requires_grad


def _dead_stats(dead):
    st = LatentStats.new(64)
    st.tokens_since_fired[dead] = 1000
    return st


def test_auxk_gradients_touch_only_dead_latents():
    sae = _sae()
    dead = torch.zeros(64, dtype=torch.bool)
    dead[[3, 17, 40, 41, 60]] = True
    x = torch.randn(32, 16)
    out = training_loss(sae, x, None, _dead_stats(dead))
    out.parts["aux"].backward()
    assert sae.W_enc.grad[:, ~dead].abs().max() == 0 and sae.W_enc.grad[:, dead].abs().max() > 0
    assert sae.W_dec.grad[~dead].abs().max() == 0 and sae.W_dec.grad[dead].abs().max() > 0
    assert sae.b_enc.grad[~dead].abs().max() == 0


def test_encoder_gradient_through_auxk_matches_plain_autograd():
    sae = _sae(k_aux=3)
    dead = torch.zeros(64, dtype=torch.bool)
    dead[::4] = True
    x = torch.randn(32, 16, generator=torch.Generator().manual_seed(2))
    out = training_loss(sae, x, None, _dead_stats(dead))
    out.parts["aux"].backward()
    got = sae.W_enc.grad.clone()
    # plain autograd, written from the spec's formulas
    W_enc = sae.W_enc.detach().clone().requires_grad_(True)
    pre = (x - sae.b_dec.detach()) @ W_enc + sae.b_enc.detach()
    top_vals, top_idx = pre.topk(5, dim=1)
    z = torch.zeros_like(pre).scatter(1, top_idx, top_vals.relu())
    x_hat = z @ sae.W_dec.detach() + sae.b_dec.detach()
    e = (x - x_hat).detach()
    aux_vals, aux_idx = pre.masked_fill(~dead, float("-inf")).topk(3, dim=1)
    e_hat = torch.zeros_like(pre).scatter(1, aux_idx, aux_vals.relu()) @ sae.W_dec.detach()
    loss = (1 / 32) * (e - e_hat).pow(2).sum() / (e - e.mean(0)).pow(2).sum()
    loss.backward()
    torch.testing.assert_close(got, W_enc.grad, atol=1e-6, rtol=1e-4)


def test_nmse_is_one_for_the_mean_and_zero_for_identity():
    x = torch.randn(50, 8)
    assert abs(losses.nmse(x.mean(0).expand_as(x), x).item() - 1) < 1e-6
    assert losses.nmse(x, x).item() == 0


def test_multi_topk_adds_a_term_using_4k():
    sae = _sae(multi_topk=True)
    x = torch.randn(32, 16)
    out = training_loss(sae, x, None, LatentStats.new(64))
    wide = _sae(k=20)
    wide.load_state_dict(sae.state_dict())
    expected = losses.nmse(wide(x), x) / 8
    torch.testing.assert_close(out.parts["multi_topk"], expected)


def test_geometric_median_init_and_scale():
    from interp.sae.init import geometric_median, initialize_from_data

    pts = torch.tensor([[0.0, 0], [1, 0], [0, 1], [100, 100]])
    m = geometric_median(pts)
    assert m.norm() < 1.0  # robust to the outlier, unlike the mean (25.25, 25.25)
    sae = _sae(normalize="scale")
    x = torch.randn(500, 16) * 30 + 5
    initialize_from_data(sae, x)
    assert abs(float((x * sae.input_scale).norm(dim=1).mean()) - 4.0) < 1e-3
    x_code = sae.encode(x)
    assert isinstance(x_code, sae_kernels.EncoderOutput)


def test_layer_norm_inputs_make_the_code_per_token_affine_invariant():
    from interp.sae.init import initialize_from_data

    sae = _sae(normalize="layer_norm")
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(30, 16, generator=gen) * 4 + 2
    initialize_from_data(sae, x)
    assert float(sae.input_scale) == 1.0  # nothing global to fold
    a, c = torch.rand(30, 1, generator=gen) * 5 + 0.5, torch.randn(30, 1, generator=gen)
    code, moved = sae.encode(x), sae.encode(a * x + c)
    assert torch.equal(code.top_indices.sort(1).values, moved.top_indices.sort(1).values)
    torch.testing.assert_close(sae(a * x + c), a * sae(x) + c, atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match=r"decode\(code, x_BD\)"):
        sae.decode(code)
    x_s, g_s = sae.to_sae_space(x, torch.ones_like(x))
    torch.testing.assert_close(x_s.mean(1), torch.zeros(30), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_s.std(1), torch.ones(30), atol=1e-4, rtol=0)
    torch.testing.assert_close(g_s, (x - x.mean(1, keepdim=True)).std(1, keepdim=True).expand(-1, 16) + 1e-5)
    out = training_loss(sae, x, None, LatentStats.new(64))
    assert out.x_hat.shape == x.shape and torch.isfinite(out.loss)


@pytest.mark.parametrize("variant", ["topk", "mutual_choice", "feature_choice", "gradient"])
def test_initial_reconstruction_is_the_least_squares_scale_of_the_tied_code(variant):
    from interp.sae.init import initialize_from_data

    x = torch.randn(512, 32) @ torch.randn(32, 32) + 3
    sae = SparseAutoencoder(SAEConfig(d_in=32, n_latents=256, k=64, variant=variant))
    tied_W_enc = sae.W_enc.detach().clone()
    initialize_from_data(sae, x)
    code = sae_kernels.topk_encode(x, sae.W_enc, sae.b_enc, sae.b_dec, 64)
    x_hat = sae_kernels.sparse_decode(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
    baseline = (x - sae.b_dec).pow(2).sum()  # the code switched off: x_hat = b_dec
    assert (x - x_hat).pow(2).sum() < baseline  # no overshoot: better than no code at all
    for s in (0.9, 1.1):  # and a minimum along the encoder's scale
        scaled = sae_kernels.sparse_decode(code.top_acts * s, code.top_indices, sae.W_dec, sae.b_dec)
        assert (x - scaled).pow(2).sum() > (x - x_hat).pow(2).sum()
    tied = sae_kernels.topk_encode(x, tied_W_enc, sae.b_enc, sae.b_dec, 64)  # the same selection as the tied init
    assert torch.equal(code.top_indices.sort(1).values, tied.top_indices.sort(1).values)

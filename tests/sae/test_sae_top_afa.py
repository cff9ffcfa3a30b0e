"""top-AFA properties (specs/sae_variants.md section 4)."""

import pytest
import torch

from interp.errors import ConfigError
from interp.sae import afa
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder, code_to_dense, l0_per_token
from interp.sae.objective import training_loss
from interp.sae.stats import LatentStats


def test_afa_k_minimises_and_is_monotone_in_target():
    s = torch.tensor([[4.0, 3.0, 2.0, 1.0, 0.5]])
    C = s.cumsum(1).sqrt()
    ks = []
    for t in torch.linspace(0, 4, 41):
        k = int(afa.afa_k(s, t.reshape(1)))
        assert 1 <= k <= 5
        assert abs(C[0, k - 1] - t) <= (C[0] - t).abs().min() + 1e-7
        ks.append(k)
    assert ks[0] == 1 and ks == sorted(ks)


def test_top_afa_keeps_a_prefix_of_the_score_order():
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=40, variant="top_afa"))
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(6)) * 3
    code = sae.encode(x)
    scores = (sae.pre_acts(x).relu() * sae.W_dec.norm(dim=1)).pow(2)
    l0 = l0_per_token(code)
    assert bool((l0 >= 1).all()) and l0.float().std() > 0  # k varies per token
    dense = code_to_dense(code, 40)
    for b in range(30):
        kept = set(dense[b].nonzero().flatten().tolist())
        assert kept == set(scores[b].topk(int(l0[b])).indices.tolist())


def test_zero_target_keeps_one_latent_and_afa_loss_trains():
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=40, variant="top_afa"))
    x = sae.b_dec.detach().expand(3, 16).clone()  # t = ||x - b_dec|| = 0
    assert sae.encode(x).top_acts.shape == (3, 1)  # k_b = 1 for every token
    out = training_loss(sae, torch.randn(30, 16), None, LatentStats.new(40))
    assert out.parts["afa"].item() > 0
    out.loss.backward()
    assert sae.W_enc.grad.abs().sum() > 0


def test_orthonormal_dictionary_has_zero_eps_lbo():
    Q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)))
    sae = SparseAutoencoder(SAEConfig(d_in=8, n_latents=8, k=8))
    with torch.no_grad():
        sae.W_dec.copy_(Q.T)
        sae.W_enc.copy_(Q)
    x = torch.rand(5, 8) @ Q.T  # positive coefficients on the atoms
    code = sae.encode(x)
    f = afa.feature_norm(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
    assert afa.zf_data(x, f, 8).eps_lbo.abs().max() < 1e-5


def _afa_parts(x, **params):
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=40, variant="top_afa", params=params or None))
    out = training_loss(sae, x, None, LatentStats.new(40))
    return sae, out


def test_afa_weight_relative_to_reconstruction_is_the_papers_on_any_input_scale():
    """afa_scale="mse": afa / nmse = lambda * AFA / element-wise MSE (the paper's relative
    weight), the same when the inputs are scaled (normalize="none")."""
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2)) + 0.5
    ratios = []
    for c in (1.0, 10.0):
        sae, out = _afa_parts(x * c, afa_scale="mse")
        code = out.code
        f = afa.feature_norm(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
        mse = (x * c - out.x_hat).pow(2).mean()
        paper_ratio = sae.cfg.params.afa_coef * afa.afa_loss(f, x * c) / mse
        ratio = out.parts["afa"] / out.parts["nmse"]
        torch.testing.assert_close(ratio, paper_ratio, rtol=1e-4, atol=0)
        ratios.append(float(ratio.detach()))
    assert abs(ratios[0] - ratios[1]) <= 1e-3 * ratios[0]


def test_afa_scale_nmse_by_default_keeps_the_term_added_to_nmse_as_is():
    x = torch.randn(64, 16, generator=torch.Generator().manual_seed(2)) * 3
    sae, out = _afa_parts(x)
    assert sae.cfg.params.afa_scale == "nmse"  # the objective the committed results used
    code = out.code
    f = afa.feature_norm(code.top_acts, code.top_indices, sae.W_dec, sae.b_dec)
    torch.testing.assert_close(out.parts["afa"], sae.cfg.params.afa_coef * afa.afa_loss(f, x))


def test_init_tied_by_default_and_kaiming_as_the_authors():
    from interp.sae.init import initialize_from_data

    x = torch.randn(512, 16, generator=torch.Generator().manual_seed(4)) * 2 + 1
    tied = SparseAutoencoder(SAEConfig(d_in=16, n_latents=40, variant="top_afa"))
    initialize_from_data(tied, x)
    assert tied.cfg.params.init == "tied"  # the init the committed results used
    torch.testing.assert_close(tied.W_enc, tied.W_dec.T)  # no least-squares rescale
    assert float(tied.b_dec.detach().norm()) > 1  # the geometric median
    kaiming = SparseAutoencoder(SAEConfig(d_in=16, n_latents=40, variant="top_afa", params={"init": "kaiming"}))
    initialize_from_data(kaiming, x)
    assert float(kaiming.b_dec.detach().abs().max()) == 0 and float(kaiming.b_enc.detach().abs().max()) == 0
    bound = (6 / 16) ** 0.5
    assert float(kaiming.W_enc.detach().abs().max()) <= bound and float(kaiming.W_enc.detach().abs().max()) > 0.9 * bound
    torch.testing.assert_close(kaiming.W_dec.norm(dim=1), torch.ones(40))
    torch.testing.assert_close(kaiming.W_dec, kaiming.W_enc.T / kaiming.W_enc.T.norm(dim=1, keepdim=True))


def test_top_afa_params_are_checked():
    for bad in ({"init": "xavier"}, {"afa_scale": "sum"}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            SAEConfig(d_in=16, n_latents=40, variant="top_afa", params=bad)

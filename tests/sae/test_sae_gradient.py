"""g-SAE properties (specs/sae_variants.md section 3)."""

import torch

from sae_kernels.outputs import EncoderOutput
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder, code_to_dense
from interp.sae.variants.gradient import gradient_select

X = torch.randn(20, 16, generator=torch.Generator().manual_seed(4))
G = torch.randn(20, 16, generator=torch.Generator().manual_seed(5))


def _sae(beta):
    return SparseAutoencoder(SAEConfig(d_in=16, n_latents=48, k=6, variant="gradient", beta=beta))


def test_beta_zero_reproduces_topk_and_plain_mode_is_topk():
    g_sae, topk = _sae(0.0), SparseAutoencoder(SAEConfig(d_in=16, n_latents=48, k=6, variant="topk"))
    torch.testing.assert_close(code_to_dense(g_sae.encode(X, G), 48), code_to_dense(topk.encode(X), 48))
    torch.testing.assert_close(code_to_dense(_sae(3.0).encode(X), 48), code_to_dense(topk.encode(X), 48))


def test_values_are_plain_activations_nnz_k_and_sign_of_g_irrelevant():
    sae = _sae(5.0)
    code = sae.encode(X, G)
    a = sae.pre_acts(X).relu()
    assert code.top_indices.shape == (20, 6)
    torch.testing.assert_close(code.top_acts, a.gather(1, code.top_indices))
    torch.testing.assert_close(code_to_dense(sae.encode(X, -G), 48), code_to_dense(code, 48))
    assert not torch.equal(code_to_dense(code, 48), code_to_dense(sae.encode(X), 48))  # g changes the choice


def test_spec_example_selects_the_attributed_latent():
    pre = torch.tensor([[1.0, 0.9]])
    out = gradient_select(pre, torch.tensor([[0.0, 1.0]]), beta=1.0, k=1)
    assert isinstance(out, EncoderOutput) and out.top_indices.item() == 1
    assert abs(out.top_acts.item() - 0.9) < 1e-7


def test_gradient_is_detached():
    sae = _sae(1.0)
    g = G.clone().requires_grad_(True)
    sae.encode(X, g).top_acts.sum().backward()
    assert g.grad is None and sae.W_enc.grad is not None
    assert sae.W_dec.grad is None  # the attribution d_i . g sends nothing into the decoder


def test_batch_rms_makes_the_selection_independent_of_the_gradient_scale():
    def sae(**params):
        return SparseAutoencoder(SAEConfig(d_in=16, n_latents=48, k=6, variant="gradient",
                                           params={"beta": 2.0, **params}))

    rms = sae(grad_norm="batch_rms")
    codes = [code_to_dense(rms.encode(X, G * c), 48) for c in (1e-3, 1.0, 50.0)]
    assert torch.equal(codes[0], codes[1]) and torch.equal(codes[1], codes[2])
    none = sae()  # as cached: the bonus grows with g
    assert not torch.equal(code_to_dense(none.encode(X, G * 1e-3), 48), code_to_dense(none.encode(X, G * 50), 48))
    unit = G / G.pow(2).mean().sqrt()  # batch_rms of G equals feeding the unit-RMS G to grad_norm="none"
    torch.testing.assert_close(codes[1], code_to_dense(none.encode(X, unit), 48))


def test_selection_change_is_zero_at_beta_zero_and_grows_with_beta():
    from interp.sae.variants.gradient import selection_change

    changes = [selection_change(_sae(b), X, G) for b in (0.0, 1.0, 30.0)]
    assert changes[0] == 0.0 and 0 < changes[1] <= changes[2] <= 1

import torch

from interp.sae.config import SAEConfig
from interp.sae.evaluate import evaluate_details
from interp.sae.module import SparseAutoencoder

HOOK = "blocks.1.hook_resid_pre"


def _exact_sae():
    """n = 2d atoms +-q_i of an orthonormal basis: top-d of ReLU(pre) reconstructs x exactly."""
    Q, _ = torch.linalg.qr(torch.randn(32, 32, generator=torch.Generator().manual_seed(0)))
    sae = SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=32))
    with torch.no_grad():
        sae.W_dec.copy_(torch.cat([Q.T, -Q.T]))
        sae.W_enc.copy_(sae.W_dec.T)
    return sae


def test_perfect_reconstruction_recovers_all_ce_and_a_poor_one_less(tiny_model, tiny_tokens):
    poor = SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=1, variant="gradient"))
    details = evaluate_details({"exact": _exact_sae(), "poor": poor}, tiny_model, tiny_tokens[:8], HOOK)
    m = details.metrics
    assert m.loc["exact", "nmse"] < 1e-8 and abs(m.loc["exact", "ce_recovered"] - 1) < 1e-4
    assert abs(m.loc["exact", "kl"]) < 1e-5 and m.loc["exact", "l0"] <= 32
    assert m.loc["poor", "nmse"] > 0.5 and m.loc["poor", "ce_recovered"] < m.loc["exact", "ce_recovered"]
    assert set(m.index) == {"exact", "poor", "poor[grad]"}  # g-SAE evaluated in both modes
    assert m.loc["poor", "l0"] <= 1 and m.loc["poor", "eval_tokens"] == 8 * 32
    assert details.densities["poor"].shape == (64,) and details.l0["exact"].shape == (8 * 32,)
    assert abs(float(details.densities["poor"].sum()) - m.loc["poor", "l0"]) < 1e-9  # densities sum to L0
    assert float(details.zf["exact"].eps_lbo.median()) < 1e-6  # orthonormal atoms, exact: ||f|| = ||x||

import pytest
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
    per_token = details.l0["exact"].double()
    assert m.loc["exact", "l0_max"] == per_token.max() and m.loc["exact", "l0_frac_k1"] == (per_token == 1).double().mean()
    assert details.densities["poor"].shape == (64,) and details.l0["exact"].shape == (8 * 32,)
    assert abs(float(details.densities["poor"].sum()) - m.loc["poor", "l0"]) < 1e-9  # densities sum to L0
    assert float(details.zf["exact"].eps_lbo.median()) < 1e-6  # orthonormal atoms, exact: ||f|| = ||x||


def test_selection_change_is_the_share_of_firings_the_plain_code_does_not_make(tiny_model, tiny_tokens):
    def gsae(beta):
        return SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, variant="gradient", seed=0,
                                           params={"beta": beta, "grad_norm": "batch_rms"}))

    m = evaluate_details({"b0": gsae(0.0), "b30": gsae(30.0), "topk": _exact_sae()}, tiny_model, tiny_tokens[:8],
                         HOOK).metrics
    assert m.loc["b0[grad]", "selection_change"] == 0.0  # no bonus: the gradient mode is TopK
    assert 0 < m.loc["b30[grad]", "selection_change"] <= 1
    assert m[["selection_change"]].loc[["b0", "b30", "topk"]].isna().all().all()  # first modes: nothing to compare

    # by hand on the same tokens: the grad code's firings outside the plain code's
    from interp.sae.evaluate import _clean_pass
    from interp.sae.module import code_entries

    sae = gsae(30.0)
    _, x, _, g = _clean_pass(tiny_model, tiny_tokens[:8], HOOK, None, True)
    grad = code_entries(sae.variant.encode_mode(sae, *sae.to_sae_space(x, g), sae.variant.inference_modes[1]))
    plain = code_entries(sae.variant.encode_mode(sae, sae.to_sae_space(x)[0], None, sae.variant.inference_modes[0]))
    fired_plain = {(int(r), int(c)) for r, c, v in zip(*plain) if v > 0}
    fired_grad = [(int(r), int(c)) for r, c, v in zip(*grad) if v > 0]
    expected = sum(pair not in fired_plain for pair in fired_grad) / len(fired_grad)
    assert m.loc["b30[grad]", "selection_change"] == pytest.approx(expected)


@pytest.mark.parametrize("hook", ["blocks.0.hook_resid_pre", "blocks.1.hook_resid_pre", "blocks.0.hook_resid_post",
                                  "blocks.1.hook_resid_post"])
def test_spliced_passes_from_the_hook_on_equal_whole_passes_and_skip_the_blocks_before_it(
        hook, tiny_model, tiny_tokens, monkeypatch):
    from interp.sae import evaluate

    start = evaluate.start_layer(tiny_model, hook)
    assert start == int(hook[7]) + hook.endswith("post")
    saes = {"topk": SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, seed=0)),
            "gsae": SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, variant="gradient", seed=1))}
    calls = []
    handle = tiny_model.blocks[0].register_forward_hook(lambda *_: calls.append(1))
    try:
        fast = evaluate_details(saes, tiny_model, tiny_tokens[:8], hook, batch_size=4).metrics
        n_fast = len(calls)
        monkeypatch.setattr(evaluate, "start_layer", lambda model, hook: None)
        whole = evaluate_details(saes, tiny_model, tiny_tokens[:8], hook, batch_size=4).metrics
    finally:
        handle.remove()
    rows = 3  # topk, gsae, gsae[grad]; and each batch's clean and zero-ablated passes
    assert n_fast == 2 * (1 if start > 0 else 2 + rows) and len(calls) - n_fast == 2 * (2 + rows)
    for column in ("ce_sae", "ce_zero", "ce_clean", "kl", "nmse", "ce_recovered"):
        assert fast[column].to_numpy() == pytest.approx(whole[column].to_numpy(), rel=1e-6, abs=1e-7), column


def test_only_residual_stream_hooks_of_a_hooked_transformer_start_a_pass_at_their_block(tiny_model):
    from interp.sae.evaluate import start_layer

    assert start_layer(tiny_model, "blocks.1.hook_resid_mid") is None
    assert start_layer(tiny_model, "blocks.0.hook_mlp_out") is None
    assert start_layer(tiny_model, "blocks.0.attn.hook_z") is None
    assert start_layer(torch.nn.Linear(2, 2), "blocks.0.hook_resid_pre") is None

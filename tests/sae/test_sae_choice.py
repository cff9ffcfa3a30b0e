"""Mutual Choice / Feature Choice properties (specs/sae_variants.md section 2)."""

import pytest
import torch

from interp.sae import losses
from interp.sae.config import SAEConfig
from interp.sae.module import SparseAutoencoder, code_to_dense
from interp.sae.objective import training_loss
from interp.sae.stats import LatentStats
from interp.sae.variants.feature_choice import capacities


def _sae(variant, **kw):
    sae = SparseAutoencoder(SAEConfig(**{"d_in": 16, "n_latents": 32, "k": 4, "variant": variant, **kw}))
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-1.5, 0.3, 32))
    return sae


def _train_code(sae, x):
    return sae.variant.encode_train(sae, x, None, None, LatentStats.new(sae.cfg.n_latents))


X = torch.randn(24, 16, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize("variant", ["mutual_choice", "batchtopk"])
def test_mutual_choice_keeps_exactly_the_top_kB_entries(variant):
    sae = _sae(variant)
    dense = code_to_dense(_train_code(sae, X), 32)
    a = sae.pre_acts(X).relu()
    n_keep = min(4 * 24, int((a > 0).sum()))
    assert int((dense > 0).sum()) == n_keep
    kept = set(torch.nonzero(dense.flatten() > 0).flatten().tolist())
    assert kept == set(a.flatten().topk(n_keep).indices.tolist())


def test_mutual_choice_with_one_token_equals_topk():
    mc, topk = _sae("mutual_choice"), _sae("topk")
    for i in range(5):
        x = X[i:i + 1]
        torch.testing.assert_close(code_to_dense(_train_code(mc, x), 32), code_to_dense(topk.encode(x), 32))


def test_feature_choice_column_counts_and_uniform_budget():
    sae = _sae("feature_choice")
    dense = code_to_dense(_train_code(sae, X), 32)
    m = 4 * 24 // 32
    positives = (sae.pre_acts(X) > 0).sum(0)
    assert torch.equal((dense > 0).sum(0), torch.minimum(positives, torch.tensor(m)))


def test_zipf_capacities_sum_to_the_budget_and_follow_density_rank():
    density = torch.rand(32, generator=torch.Generator().manual_seed(0))
    cap = capacities("zipf", 32, 64, 4, density, alpha=1.0, beta=1.0)
    assert int(cap.sum()) == 4 * 64 and int(cap.max()) <= 64
    order = density.argsort(descending=True)
    assert bool((cap[order][:-1] >= cap[order][1:]).all())


@pytest.mark.parametrize("variant", ["mutual_choice", "feature_choice"])
def test_permutation_equivariant_but_not_batch_independent(variant):
    sae = _sae(variant)
    perm = torch.randperm(24, generator=torch.Generator().manual_seed(0))
    dense = code_to_dense(_train_code(sae, X), 32)
    torch.testing.assert_close(code_to_dense(_train_code(sae, X[perm]), 32), dense[perm])
    # scaling up the other rows takes the budget away from row 0
    other = X.clone()
    other[1:] *= 10
    assert not torch.equal(code_to_dense(_train_code(sae, other), 32)[0], dense[0])


@pytest.mark.parametrize("variant", ["mutual_choice", "feature_choice"])
def test_threshold_inference_is_batch_independent_and_learned_in_training(variant):
    sae = _sae(variant)
    st = LatentStats.new(32)
    out = training_loss(sae, X, None, st)
    sae.variant.after_step(sae, out.code, st)
    assert int(sae.threshold_updates) == 1 and float(sae.threshold.max()) > 0
    fresh = torch.randn(10, 16, generator=torch.Generator().manual_seed(9)) * 2
    alone = code_to_dense(sae.encode(fresh[:1]), 32)
    together = code_to_dense(sae.encode(fresh), 32)[:1]
    assert int((together > 0).sum()) > 0
    torch.testing.assert_close(alone, together)


def test_aux_zipf_equals_auxk_when_under_utilised_is_the_dead_set():
    dead = torch.zeros(32, dtype=torch.bool)
    dead[[1, 5, 9]] = True
    live_rank = torch.cumsum(~dead, 0) - 1
    density = torch.where(dead, 0.0, 1.0 / (live_rank + 1))  # a Zipf profile: no live latent under-utilised
    mask, weights = losses.under_utilised(density, dead, alpha=1.0, beta=1.0, c=0.5)
    assert torch.equal(mask, dead)
    results = []
    for aux_loss in ("auxk", "aux_zipf"):
        sae = _sae("topk", aux_loss=aux_loss, dead_tokens=10)
        st = LatentStats.new(32)
        st.tokens_since_fired[dead] = 100
        st.density = density.clone()
        out = training_loss(sae, X, None, st)
        out.loss.backward()
        results.append((out.parts["aux"].detach(), sae.W_enc.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])


def test_aux_zipf_adds_under_utilised_live_latents_weighted_by_deficit():
    density = torch.full((32,), 0.2)
    density[7] = 1e-4
    mask, weights = losses.under_utilised(density, torch.zeros(32, dtype=torch.bool), 1.0, 1.0, 0.5)
    assert bool(mask[7]) and 0 < float(weights[7]) <= 1 and float(weights[~mask].abs().sum()) == 0


@pytest.mark.parametrize("k", [16, 64])
def test_zipf_capacities_conserve_the_budget_at_realistic_sizes(k):
    """n=2048, B=4096: the clamp to B binds for the densest latents; what it removes goes to the others."""
    n, B = 2048, 4096
    density = torch.rand(n, generator=torch.Generator().manual_seed(1))
    cap = capacities("zipf", n, B, k, density, alpha=1.0, beta=1.0)
    assert int(cap.max()) == B  # the clamp binds here
    assert int(cap.sum()) == k * B and int(cap.max()) <= B and int(cap.min()) >= 0
    order = density.argsort(descending=True)
    assert bool((cap[order][:-1] >= cap[order][1:]).all())


def test_zipf_capacities_are_the_largest_remainder_rounding_of_the_capped_shares():
    w = torch.tensor([8.0, 4.0, 2.0, 1.0, 1.0])
    from interp.sae.variants.feature_choice import capped_shares

    share = capped_shares(w, budget=20, cap=6)  # 6 and 6 capped; the other 8 shared 2:1:1
    torch.testing.assert_close(share, torch.tensor([6.0, 6.0, 4.0, 2.0, 2.0], dtype=torch.float64))
    cap = capacities("zipf", 5, 7, 3, torch.tensor([0.5, 0.4, 0.3, 0.2, 0.1]), alpha=1.0, beta=1.0)
    assert int(cap.sum()) == 21 and int(cap.max()) <= 7


def test_zipf_ties_at_step_zero_follow_the_seeded_order_not_the_latent_index():
    sae = _sae("feature_choice", capacity="zipf", seed=3)
    st = LatentStats.new(32)  # no density observed yet: every latent tied
    cap = sae.variant.capacity(24, st)
    assert int(cap.sum()) == 4 * 24
    assert not bool((cap[:-1] >= cap[1:]).all())  # not decreasing in the latent index
    order = torch.randperm(32, generator=torch.Generator().manual_seed(3))
    assert bool((cap[order][:-1] >= cap[order][1:]).all())  # decreasing along the seeded permutation
    other = _sae("feature_choice", capacity="zipf", seed=4).variant.capacity(24, st)
    assert not torch.equal(cap, other)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_zipf_weights_rank_ties_by_the_seeded_permutation(seed):
    n = 2048
    gen = torch.Generator().manual_seed(seed)
    # many ties: a few density levels, and a third of the latents never fired
    density = torch.randint(0, 6, (n,), generator=gen).float() / 10
    density[torch.rand(n, generator=gen) < 1 / 3] = 0
    order = losses.tie_order(n, seed)
    position = torch.empty(n, dtype=torch.int64)
    position[order] = torch.arange(n)
    expected = sorted(range(n), key=lambda i: (-float(density[i]), int(position[i])))
    w = losses.zipf_weights(density, 1.0, 1.0, order)
    assert torch.equal(w.argsort(descending=True, stable=True), torch.tensor(expected))
    torch.testing.assert_close(float(w.sum()), 1.0)
    # relabelling the latents relabels the weights (no dependence on the latent index)
    perm = torch.randperm(n, generator=gen)
    inverse = torch.empty_like(perm)
    inverse[perm] = torch.arange(n)
    torch.testing.assert_close(losses.zipf_weights(density[perm], 1.0, 1.0, inverse[order]), w[perm])
    # Feature Choice's capacities and aux_zipf's expected densities rank by the same order
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=n, k=16, variant="feature_choice", seed=seed,
                                      params={"capacity": "zipf"}))
    assert torch.equal(sae.variant.tie_order_N, order)
    st = LatentStats.new(n)
    st.density.copy_(density)
    cap = sae.variant.capacity(4096, st)
    assert bool((cap[torch.tensor(expected)].diff() <= 0).all())
    expected_density = losses.zipf_expected_density(density, 1.0, 1.0, order)
    assert bool((expected_density[torch.tensor(expected)].diff() <= 0).all())

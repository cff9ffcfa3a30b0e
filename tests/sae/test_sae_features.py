"""Per-latent views of an SAE (interp.sae.features) against brute force on dense codes."""

import pytest
import torch

from interp import resources
from interp.sae import SAEConfig, SparseAutoencoder, features
from interp.sae.module import code_to_dense

ZOO_SAE = resources.sae_path()


@pytest.fixture(scope="module")
def sae():
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, seed=0)).eval()
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.5, generator=torch.Generator().manual_seed(1))
    return sae


@pytest.fixture(scope="module")
def dense(sae, tiny_store):
    """(n_tokens, n_latents) activations of every store token, in store order, and the token ids."""
    batch = next(tiny_store.batches(tiny_store.n_tokens, shuffle=False, with_tokens=True))
    with torch.no_grad():
        return code_to_dense(sae.encode(batch.acts), 64).clamp(min=0), batch.tokens


@pytest.fixture(scope="module")
def index(sae, tiny_store):
    return features.index_store(sae, tiny_store, batch_size=1000)  # batches not aligned to rows


def fired_latent(dense, rank=0):
    """A latent that fires on many tokens (the rank-th most frequent)."""
    return int((dense[0] > 0).sum(0).argsort(descending=True)[rank])


def test_index_holds_every_firing_sorted_by_value(index, dense):
    acts, tokens = dense
    assert index.n_tokens == len(acts) and index.n_latents == 64
    assert torch.equal(index.tokens, tokens)
    for latent in range(64):
        where, values = index.entries(latent)
        expected = acts[:, latent].nonzero().squeeze(1)
        assert torch.equal(where.sort().values, expected)
        assert torch.equal(values, acts[where, latent])
        assert bool((values.diff() <= 0).all())
    summary = index.summary()
    assert summary.density.tolist() == pytest.approx(((acts > 0).double().mean(0)).tolist())
    assert summary.max_activation.tolist() == pytest.approx(acts.max(0).values.tolist())
    assert (summary.density > 0).sum() > 10


def test_index_max_tokens_and_bad_arguments(sae, tiny_store, index, dense):
    part = features.index_store(sae, tiny_store, max_tokens=100)
    assert part.n_tokens == 100 and int(part.token_index.max()) < 100
    assert len(part.values) == int((dense[0][:100] > 0).sum())
    with pytest.raises(ValueError, match="max_tokens=0"):
        features.index_store(sae, tiny_store, max_tokens=0)
    with pytest.raises(ValueError, match="latent=64"):
        index.entries(64)
    wide = SparseAutoencoder(SAEConfig(d_in=16, n_latents=8, k=2))
    with pytest.raises(ValueError, match="d_in is 16"):
        features.index_store(wide, tiny_store)


def test_top_contexts_are_the_highest_activations_with_their_windows(index, tiny_store, dense):
    acts, tokens = dense
    latent = fired_latent(dense)
    ctx = features.top_contexts(index, tiny_store, latent, n=5, before=3, after=2)
    assert len(ctx) == 5 and ctx.centre == 3 and ctx.tokens.shape == (5, 6)
    assert ctx.value.tolist() == pytest.approx(acts[:, latent].topk(5).values.tolist())
    assert torch.equal(ctx.acts[:, ctx.centre], ctx.value)
    assert torch.equal(ctx.tokens, tiny_store.tokens_of(ctx.token_index, before=3, after=2))
    ctx_size = tiny_store.manifest.context_size
    for m in range(5):
        for j in range(6):
            i = int(ctx.token_index[m]) - 3 + j
            inside = int(ctx.token_index[m]) // ctx_size == i // ctx_size and i >= 0
            assert float(ctx.acts[m, j]) == (float(acts[i, latent]) if inside else 0.0)
            assert int(ctx.tokens[m, j]) == (int(tokens[i]) if inside else -1)


def test_quantile_contexts_partition_the_firings(index, tiny_store, dense):
    latent = fired_latent(dense)
    samples = features.quantile_contexts(index, tiny_store, latent, n_quantiles=4, per_quantile=3, seed=0)
    assert len(samples) == 4
    assert sum(s.fraction for s in samples) == pytest.approx(1.0)
    assert [s.upper for s in samples] == sorted((s.upper for s in samples), reverse=True)
    for s in samples:
        assert 1 <= len(s.contexts) <= 3
        assert bool(((s.contexts.value >= s.lower) & (s.contexts.value <= s.upper)).all())
    again = features.quantile_contexts(index, tiny_store, latent, n_quantiles=4, per_quantile=3, seed=0)
    assert all(torch.equal(a.contexts.token_index, b.contexts.token_index) for a, b in zip(samples, again))
    other = features.quantile_contexts(index, tiny_store, latent, n_quantiles=4, per_quantile=3, seed=1)
    assert any(not torch.equal(a.contexts.token_index, b.contexts.token_index) for a, b in zip(samples, other))


def test_histogram_counts_every_firing(index, dense):
    latent = fired_latent(dense, 3)
    hist = features.activation_histogram(index, latent, bins=7)
    assert len(hist) == 7 and hist["count"].sum() == int((dense[0][:, latent] > 0).sum())
    assert hist["right"].iloc[-1] == pytest.approx(float(dense[0][:, latent].max()))
    assert hist["left"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="bins=0"):
        features.activation_histogram(index, latent, bins=0)


def test_search_by_token_ranks_latents_by_mean_activation_on_it(index, dense):
    acts, tokens = dense
    token = int(tokens[5])
    found = features.search_by_token(index, token, k=5)
    on = acts[tokens == token]
    expected = on.mean(0).topk(5)
    assert found["latent"].tolist() == expected.indices[expected.values > 0].tolist()
    assert found["mean_activation"].tolist() == pytest.approx(expected.values[expected.values > 0].tolist(), rel=1e-5)
    assert found["fraction"].iloc[0] == pytest.approx(float((on[:, found["latent"].iloc[0]] > 0).float().mean()))
    assert features.search_by_token(index, 10_000).empty


@pytest.fixture(scope="module")
def zoo_sae():
    from interp.sae import load

    return load(ZOO_SAE)


def test_logit_effects_are_the_decoder_row_through_the_unembedding(zoo_sae, zoo_dense):
    effects = features.logit_effects(zoo_sae, zoo_dense, 7, k=4)
    full = zoo_sae.W_dec[7].detach() @ zoo_dense.W_U.detach()
    up, down = effects[effects.sign == "+"], effects[effects.sign == "-"]
    assert up["token_id"].tolist() == full.topk(4).indices.tolist()
    assert down["token_id"].tolist() == (-full).topk(4).indices.tolist()
    assert up["effect"].tolist() == pytest.approx(full.topk(4).values.tolist(), rel=1e-5)
    assert down["effect"].max() < 0 < up["effect"].min()
    assert up["token"].iloc[0] == zoo_dense.tokenizer.decode([up["token_id"].iloc[0]])
    with pytest.raises(ValueError, match="latent=2048"):
        features.logit_effects(zoo_sae, zoo_dense, 2048)


def test_text_activations_encode_the_hooked_residual(zoo_sae, zoo_dense):
    hook = "blocks.2.hook_resid_pre"
    text = "When Mary and John went to the store, John gave a drink to"
    result = features.text_activations(zoo_sae, zoo_dense, text, hook)
    _, cache = zoo_dense.run_with_cache(text, names_filter=hook)
    expected = code_to_dense(zoo_sae.encode(cache[hook][0]), 2048)
    assert torch.allclose(result.acts, expected, atol=1e-5)
    assert result.tokens[0] == "<|endoftext|>" and "".join(result.tokens[1:]) == text
    assert bool(((result.acts > 0).sum(1) == 32).all())  # TopK: k latents per token
    top = result.top_latents(2)
    assert len(top) == 2 * len(result.tokens)
    assert top[top.position == 3].latent.tolist() == expected[3].topk(2).indices.tolist()
    totals = result.latent_totals(k=3)
    assert totals["latent"].tolist() == expected[1:].sum(0).topk(3).indices.tolist()
    with pytest.raises(ValueError, match="hook='blocks.9.nope'"):
        features.text_activations(zoo_sae, zoo_dense, text, "blocks.9.nope")
    with pytest.raises(ValueError, match="text=''"):
        features.text_activations(zoo_sae, zoo_dense, "", hook)


def test_contrast_latents_rank_by_mean_activation_above_the_baseline(zoo_sae, zoo_dense):
    from interp.tasks import refusal

    hook = "blocks.2.hook_resid_pre"
    harmful = [p.text for p in refusal.generate(6, "harmful", "heldout")]
    benign = [p.text for p in refusal.generate(6, "benign", "heldout")]
    out = features.contrast_latents(zoo_sae, zoo_dense, harmful, benign, hook, k=4)

    def pooled(texts):  # brute force: every token but BOS of every text
        return torch.cat([features.text_activations(zoo_sae, zoo_dense, t, hook).acts[1:] for t in texts])

    a, b = pooled(harmful), pooled(benign)
    expected = (a.mean(0) - b.mean(0)).topk(4)
    assert out["latent"].tolist() == expected.indices.tolist()
    assert out["difference"].to_numpy() == pytest.approx(expected.values.numpy(), rel=1e-5)
    top = int(out["latent"][0])
    assert out["fraction"][0] == pytest.approx(float((a[:, top] > 0).float().mean()))
    assert out["baseline_fraction"][0] == pytest.approx(float((b[:, top] > 0).float().mean()))
    with pytest.raises(ValueError, match="baseline='x' is not allowed: a non-empty list of texts"):
        features.contrast_latents(zoo_sae, zoo_dense, harmful, "x", hook)

import numpy as np
import pytest
import torch

import interp.cache as cache

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def store(model, tmp_path_factory):
    rows = torch.randint(1, 1000, (24, 16), generator=torch.Generator().manual_seed(0))
    return cache.write(model, [HOOK, "blocks.1.hook_mlp_out"], rows, tmp_path_factory.mktemp("r") / "s",
                       grads=True, batch_size=4, shard_sequences=8, progress=False)


def _indices(batches):
    return torch.cat([b.index for b in batches])


def test_every_token_exactly_once_per_epoch_across_shards(store):
    batches = list(store.batches(37, hook=HOOK, seed=3, epochs=2))
    assert [len(b.index) for b in batches[:2]] == [37, 37]
    per_epoch = -(-store.n_tokens // 37)
    for epoch in range(2):
        seen = _indices(batches[epoch * per_epoch:(epoch + 1) * per_epoch])
        assert torch.equal(seen.sort().values, torch.arange(store.n_tokens))
    first = batches[0].index  # shuffled across shards, not a contiguous block
    assert len(set((first // store.manifest.shard_tokens).tolist())) == 3
    assert not torch.equal(_indices(batches[:per_epoch]), _indices(batches[per_epoch:]))


def test_batches_are_rows_of_the_store_and_reproducible(store):
    full = next(iter(store.batches(store.n_tokens, hook=HOOK, shuffle=False, with_grads=True, with_tokens=True)))
    a = list(store.batches(50, hook=HOOK, seed=7, with_grads=True, with_tokens=True))
    b = list(store.batches(50, hook=HOOK, seed=7, with_grads=True, with_tokens=True))
    c = list(store.batches(50, hook=HOOK, seed=8))
    for x, y in zip(a, b):
        assert torch.equal(x.index, y.index) and torch.equal(x.acts, y.acts)
        assert torch.equal(x.acts, full.acts[x.index]) and torch.equal(x.grads, full.grads[x.index])
        assert torch.equal(x.tokens, full.tokens[x.index])
    assert not torch.equal(a[0].index, c[0].index)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_partition_the_tokens(store, world_size):
    parts = [_indices(store.batches(16, hook=HOOK, seed=1, rank=r, world_size=world_size))
             for r in range(world_size)]
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert torch.equal(torch.cat(parts).sort().values, torch.arange(store.n_tokens))


def test_drop_last_and_dtype(store):
    batches = list(store.batches(100, hook=HOOK, drop_last=True, dtype=torch.bfloat16))
    assert len(batches) == store.n_tokens // 100
    assert all(b.acts.shape == (100, 32) and b.acts.dtype == torch.bfloat16 and b.grads is None for b in batches)


def test_argument_errors(store):
    with pytest.raises(ValueError, match="several hooks"):
        store.batches(8)
    with pytest.raises(ValueError, match="hook='nope'"):
        store.d_model("nope")
    with pytest.raises(ValueError, match="rank=2"):
        store.batches(8, hook=HOOK, rank=2, world_size=2)


def test_tokens_of_gives_context_within_the_sequence(store):
    full = next(iter(store.batches(store.n_tokens, hook=HOOK, shuffle=False, with_tokens=True))).tokens
    ctx = store.manifest.context_size
    out = store.tokens_of(torch.tensor([ctx + 2, 100, 3 * ctx - 1]), before=3, after=2)
    assert out.shape == (3, 6)
    assert out[0].tolist() == [-1, *full[ctx:ctx + 5].tolist()]
    assert out[1].tolist() == full[97:103].tolist()
    assert out[2].tolist() == [*full[3 * ctx - 4:3 * ctx].tolist(), -1, -1]
    with pytest.raises(IndexError):
        store.tokens_of(torch.tensor([store.n_tokens]))


def test_prefetch_stops_when_the_consumer_leaves(store):
    it = store.batches(8, hook=HOOK)
    next(it)
    it.close()  # joins the prefetch thread; must not hang
    assert np.all(next(iter(store.batches(8, hook=HOOK))).acts.isfinite().numpy())


@pytest.mark.parametrize("drop_last", [False, True])
def test_skip_starts_mid_stream_without_reading_the_skipped_batches(store, drop_last):
    args = dict(hook=HOOK, seed=5, epochs=3, rank=1, world_size=2, drop_last=drop_last)
    full = list(store.batches(40, **args))
    for skip in (0, 3, len(full) // 3, len(full) // 3 + 1, len(full) - 1, len(full) + 5):
        tail = list(store.batches(40, skip=skip, **args))
        assert len(tail) == max(0, len(full) - skip)
        assert all(torch.equal(a.index, b.index) and torch.equal(a.acts, b.acts) for a, b in zip(tail, full[skip:]))
    with pytest.raises(ValueError, match="skip=-1"):
        store.batches(40, skip=-1, **args)

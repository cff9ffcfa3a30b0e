import pytest
import torch

import interp.cache as cache


@pytest.fixture
def store(model, tmp_path):
    rows = torch.randint(1, 1000, (16, 16), generator=torch.Generator().manual_seed(0))
    return cache.write(model, "blocks.0.hook_resid_post", rows, tmp_path / "s", batch_size=4, shard_sequences=4,
                       progress=False)


def test_intact_store_verifies(store):
    report = cache.verify(store.path)
    assert (report.n_shards, report.n_tokens, report.checksums_checked) == (4, 256, True)
    assert report.bytes == sum(p.stat().st_size for p in store.path.glob("shard_*.bin"))


def test_flipped_bit_is_detected_by_checksum(store):
    shard = store.path / "shard_00002.bin"
    data = bytearray(shard.read_bytes())
    data[7] ^= 1
    shard.write_bytes(bytes(data))
    reader = cache.open_store(store.path)  # sizes still match: open is cheap and passes
    with pytest.raises(cache.StoreError, match="shard_00002.bin .*damaged: its checksum is xxh3_64:.*--resume"):
        cache.verify(store.path)
    with pytest.raises(cache.StoreError, match="shard_00002.bin .*damaged.*--resume"):
        list(reader.batches(16))  # the first read that touches the shard checks it
    with pytest.raises(cache.StoreError, match="shard_00002.bin .*damaged"):
        reader.tokens_of(torch.tensor([2 * 64 + 5]))
    assert reader.tokens_of(torch.tensor([5]), before=1, after=1).shape == (1, 3)  # intact shards still read


def test_missing_and_truncated_shards_fail_on_open(store):
    shard = store.path / "shard_00001.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(cache.StoreError, match="shard_00001.bin .*bytes.*--resume"):
        cache.open_store(store.path)
    shard.unlink()
    with pytest.raises(cache.StoreError, match="shard_00001.bin .*missing.*re-cache"):
        cache.open_store(store.path)


def test_not_a_store(tmp_path):
    with pytest.raises(cache.StoreError, match="manifest.json is missing"):
        cache.open_store(tmp_path)
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(cache.StoreError, match="not an activation-store manifest"):
        cache.open_store(tmp_path)

"""Activation store: cache a model's activations (and gradients) to disk, read them back
as shuffled minibatches.

    store = interp.cache.write(model, "blocks.2.hook_resid_post", 2_000_000, "cache/run")
    store = interp.cache.open_store("cache/run")
    for batch in store.batches(4096, seed=0):
        batch.acts  # (4096, d_model)

See `format` for the on-disk layout and its checksums, `writer` for crash safety, resume and
the one-writer lock, `reader` for shuffling, rank sharding and verified reads, `verify` for
the checks every read path shares.
"""

from interp.cache.format import Manifest, ShardInfo, StoreError
from interp.cache.reader import Batch, Store, open_store
from interp.cache.verify import VerifyReport, verify
from interp.cache.writer import CacheConfig, write

__all__ = ["write", "open_store", "verify", "Store", "Batch", "Manifest", "ShardInfo", "StoreError", "CacheConfig",
           "VerifyReport"]

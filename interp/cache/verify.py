"""Check a store against its manifest: complete, every shard present with its size, no shard
file the manifest does not list, and (on request) every shard's checksum. The reader runs the
same checks (`check_shard`, `check_contents`) on each shard the first time it touches it. Every failure names
the shard and the remedy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interp.cache.format import (SHARD_FILE, Manifest, ShardInfo, StoreError, algorithm_of, checksum,
                                 read_manifest)

REMEDY = ("rerun the writer with --resume (`interp cache ... --resume`, or resume=True), which keeps intact "
          "shards and recomputes missing and damaged ones, or re-cache the store")


@dataclass(frozen=True)
class VerifyReport:
    path: Path
    n_shards: int
    n_tokens: int
    bytes: int
    checksums_checked: bool


def check_store(path: Path, manifest: Manifest, checksums: bool) -> VerifyReport:
    """Raise `StoreError` unless the store at `path` is complete and matches `manifest`."""
    if not manifest.complete:
        raise StoreError(f"{path} is incomplete: {len(manifest.shards)} of {manifest.n_shards} shards written "
                         f"(the writer was stopped); {REMEDY}")
    listed = {s.name for s in manifest.shards}
    unlisted = sorted(p.name for p in path.iterdir() if SHARD_FILE.fullmatch(p.name) and p.name not in listed)
    if unlisted:
        raise StoreError(f"{path} holds {', '.join(unlisted[:3])}{' ...' if len(unlisted) > 3 else ''}, which "
                         f"{path / 'manifest.json'} does not list (it says n_tokens={manifest.n_tokens} in "
                         f"{manifest.n_shards} shards): the manifest was edited or belongs to another store; "
                         "delete the directory and re-cache the store")
    for shard in manifest.shards:
        check_shard(path, shard)
        if checksums:
            check_contents(path, shard, np.memmap(path / shard.name, dtype=np.uint8, mode="r", shape=(shard.bytes,)))
    return VerifyReport(path, len(manifest.shards), manifest.n_tokens, sum(s.bytes for s in manifest.shards),
                        checksums)


def check_shard(path: Path, shard: ShardInfo) -> None:
    """`StoreError` unless shard `shard` of the store at `path` is present with its recorded size."""
    file = path / shard.name
    if not file.is_file():
        raise StoreError(f"shard {shard.name} of {path} is missing; {REMEDY}")
    size = file.stat().st_size
    if size != shard.bytes:
        raise StoreError(f"shard {shard.name} of {path} has {size} bytes, its record in the manifest says "
                         f"{shard.bytes} (truncated or overwritten); {REMEDY}")


def check_contents(path: Path, shard: ShardInfo, buffer) -> None:
    """`StoreError` unless `buffer` (the shard's bytes, e.g. its memory map) has the recorded checksum."""
    found = checksum(buffer, algorithm_of(shard.checksum))
    if found != shard.checksum:
        raise StoreError(f"shard {shard.name} of {path} is damaged: its checksum is {found}, the manifest records "
                         f"{shard.checksum}; {REMEDY}")


def verify(path: str | Path, checksums: bool = True) -> VerifyReport:
    """Verify the store at `path` (sizes, and the checksum of every shard unless `checksums=False`)."""
    path = Path(path)
    return check_store(path, read_manifest(path), checksums)

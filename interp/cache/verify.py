"""Check a store against its manifest: complete, every shard present with its size, and
(on request) its CRC-32. Every failure names the shard and the remedy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from interp.cache.format import Manifest, StoreError, file_crc32, manifest_layout, read_manifest, shard_name

REMEDY = ("rerun the writer with --resume (resume=True), which recomputes missing and damaged shards, "
          "or re-cache the store")


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
    if [s.name for s in manifest.shards] != [shard_name(i) for i in range(manifest.n_shards)]:
        raise StoreError(f"{path / 'manifest.json'}: the shard list does not cover the token range; re-cache the store")
    for i, shard in enumerate(manifest.shards):
        file = path / shard.name
        expected = manifest_layout(manifest, shard.n_tokens)[1]
        if not file.is_file():
            raise StoreError(f"shard {shard.name} of {path} is missing; {REMEDY}")
        size = file.stat().st_size
        if size != shard.bytes or size != expected:
            raise StoreError(f"shard {shard.name} of {path} has {size} bytes, the manifest says {shard.bytes} "
                             f"(truncated or overwritten); {REMEDY}")
        if checksums and file_crc32(file) != shard.crc32:
            raise StoreError(f"shard {shard.name} of {path} is corrupt: its CRC-32 differs from the manifest's; "
                             f"{REMEDY}")
    return VerifyReport(path, len(manifest.shards), manifest.n_tokens, sum(s.bytes for s in manifest.shards),
                        checksums)


def verify(path: str | Path, checksums: bool = True) -> VerifyReport:
    """Verify the store at `path` (sizes, and CRC-32 of every shard unless `checksums=False`)."""
    path = Path(path)
    return check_store(path, read_manifest(path), checksums)

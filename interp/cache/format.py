"""The on-disk format of an activation store.

A store is a directory::

    manifest.json        what is in the store (`Manifest`), rewritten atomically
    shard_00000.bin      sequences [0, S) of the token range
    shard_00001.bin      sequences [S, 2S), ...; only the last shard may be shorter

Each shard is ONE raw little-endian file holding, for its `n` tokens and in this order,
every hook's activations `(n, d_hook)`, then (if present) every hook's gradients
`(n, d_hook)`, then the token ids `(n,) int32`; each array starts at a 64-byte aligned
offset that `shard_layout` computes from the manifest alone.

Why raw arrays rather than safetensors: a raw file is memory-mapped with
`numpy.memmap` and sliced with no header to parse and no copy; the writer can map the
file and let the model's hooks write straight into it; bf16 is stored as its 16-bit
pattern (viewed back with `Tensor.view(torch.bfloat16)`); and everything a reader needs
(dtype, shapes, offsets, sizes, CRC-32) is already in the manifest, so a second header
per file would only be a second source of truth. One file per shard (instead of one
per array) makes "a shard is visible only when complete" a single atomic rename.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from interp.errors import InterpError

from interp.atomic import write_bytes

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ALIGN = 64
TOKEN_DTYPE = np.dtype("<i4")

# torch dtype name -> (torch dtype, numpy storage dtype of the same width)
DTYPES: dict[str, tuple[torch.dtype, np.dtype]] = {
    "float32": (torch.float32, np.dtype("<f4")),
    "float16": (torch.float16, np.dtype("<f2")),
    "bfloat16": (torch.bfloat16, np.dtype("<u2")),
}


class StoreError(InterpError, RuntimeError):
    """A store on disk is missing, incomplete, corrupt or incompatible; the message names
    the file and the remedy."""


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' | 'float16' | 'bfloat16' for a supported torch dtype, else ValueError."""
    for name, (torch_dtype, _) in DTYPES.items():
        if dtype == torch_dtype:
            return name
    raise ValueError(f"dtype={dtype} is not supported by the activation store; "
                     f"allowed: {', '.join('torch.' + n for n in DTYPES)}")


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.bin"


@dataclass(frozen=True)
class ShardInfo:
    name: str
    """File name inside the store directory."""
    first_token: int
    """Global index of the shard's first token (= first sequence * context_size)."""
    n_tokens: int
    bytes: int
    crc32: int
    """CRC-32 (zlib) of the whole file."""


@dataclass
class Manifest:
    """Everything about a store; `manifest.json` is this dataclass as JSON."""

    model: str
    hooks: list[str]
    d_model: dict[str, int]
    """Activation width per hook (trailing dimensions flattened, e.g. hook_z: n_heads * d_head)."""
    dtype: str
    """Storage dtype of activations and gradients: float32 | float16 | bfloat16."""
    context_size: int
    n_tokens: int
    """Tokens in the complete store: n_sequences * context_size."""
    has_grads: bool
    shard_sequences: int
    """Sequences per shard (the last shard may hold fewer)."""
    config: dict
    """The exact writer config (`interp.cache.writer.CacheConfig`) and token source."""
    shards: list[ShardInfo] = field(default_factory=list)
    complete: bool = False
    """False while the writer runs; True once every shard is written."""
    format_version: int = FORMAT_VERSION

    @property
    def shard_tokens(self) -> int:
        return self.shard_sequences * self.context_size

    @property
    def n_shards(self) -> int:
        return -(-self.n_tokens // self.shard_tokens)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str, path: Path) -> "Manifest":
        try:
            raw = json.loads(text)
            raw["shards"] = [ShardInfo(**s) for s in raw["shards"]]
            manifest = cls(**raw)
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise StoreError(f"{path}: not an activation-store manifest ({e!r}); re-cache the store") from e
        if manifest.format_version != FORMAT_VERSION:
            raise StoreError(f"{path}: format_version {manifest.format_version}, this interp reads "
                             f"{FORMAT_VERSION}; re-cache the store")
        return manifest


class ArraySpec(NamedTuple):
    offset: int
    """Byte offset inside the shard file."""
    shape: tuple[int, ...]
    dtype: np.dtype


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def shard_layout(hooks: list[str], d_model: dict[str, int], dtype: str, has_grads: bool,
                 n_tokens: int) -> tuple[dict[str, ArraySpec], int]:
    """Where each array of a shard of `n_tokens` tokens lives, and the file size in bytes.

    Keys: "acts/<hook>", "grads/<hook>" (if `has_grads`), "tokens".
    """
    storage = DTYPES[dtype][1]
    names = [(f"acts/{h}", (n_tokens, d_model[h]), storage) for h in hooks]
    if has_grads:
        names += [(f"grads/{h}", (n_tokens, d_model[h]), storage) for h in hooks]
    names.append(("tokens", (n_tokens,), TOKEN_DTYPE))
    layout, offset = {}, 0
    for name, shape, np_dtype in names:
        layout[name] = ArraySpec(offset, shape, np_dtype)
        offset = _align(offset + int(np.prod(shape)) * np_dtype.itemsize)
    return layout, offset


def manifest_layout(manifest: Manifest, n_tokens: int) -> tuple[dict[str, ArraySpec], int]:
    return shard_layout(manifest.hooks, manifest.d_model, manifest.dtype, manifest.has_grads, n_tokens)


def as_tensor(buffer: np.ndarray, spec: ArraySpec, dtype: str | None) -> torch.Tensor:
    """A torch view (no copy) of one array inside a shard buffer (a uint8 memmap).

    `dtype`: the store's dtype name for activations/gradients, None for tokens.
    """
    n_bytes = int(np.prod(spec.shape)) * spec.dtype.itemsize
    array = buffer[spec.offset:spec.offset + n_bytes].view(spec.dtype).reshape(spec.shape)
    t = torch.from_numpy(array)
    return t.view(DTYPES[dtype][0]) if dtype == "bfloat16" else t


def file_crc32(path: Path, chunk: int = 1 << 24) -> int:
    crc = 0
    with path.open("rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


def read_manifest(directory: Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path} is missing: {directory} is not an activation store "
                         "(write one with `interp cache` / interp.cache.write)")
    return Manifest.from_json(path.read_text(), path)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_bytes(Path(directory) / MANIFEST, manifest.to_json().encode())

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
(dtype, shapes, offsets, sizes, checksums) is already in the manifest, so a second header
per file would only be a second source of truth. One file per shard (instead of one
per array) makes "a shard is visible only when complete" a single atomic rename.

Checksums are written "<algorithm>:<hex>". Shards use XXH3-64: the reader hashes every
shard the first time it touches it, and XXH3 runs about four times faster than CRC-32
(`python -m benchmarks.cache` measures both against the reader). The manifest carries the
checksum of its own contents (`manifest_checksum`), and `Manifest.from_json` cross-checks
its fields against each other and against the shard records, so an edited or damaged
manifest is refused with the field that disagrees.

Format versions: 2 adds `manifest_checksum` and algorithm-tagged shard checksums; 1 (no
manifest checksum, shard "crc32" integers) is still read, its shards verified by CRC-32.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import xxhash

from interp.atomic import write_bytes
from interp.config import check_fields, from_dict
from interp.errors import ConfigError, InterpError

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "manifest.json"
ALIGN = 64
TOKEN_DTYPE = np.dtype("<i4")
CHECKSUM = "xxh3_64"
"""Algorithm of the checksums this version writes."""

# torch dtype name -> (torch dtype, numpy storage dtype of the same width)
DTYPES: dict[str, tuple[torch.dtype, np.dtype]] = {
    "float32": (torch.float32, np.dtype("<f4")),
    "float16": (torch.float16, np.dtype("<f2")),
    "bfloat16": (torch.bfloat16, np.dtype("<u2")),
}

RECACHE = ("the shards may be intact, but nothing describes them reliably: delete the directory and "
           "re-cache the store (`interp cache ...` / interp.cache.write)")


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


SHARD_FILE = re.compile(r"shard_(\d{5,})\.bin")


def shard_name(i: int) -> str:
    return f"shard_{i:05d}.bin"


# --- checksums ------------------------------------------------------------------------------
_HASHES = {
    "xxh3_64": lambda data: f"{xxhash.xxh3_64_intdigest(data):016x}",
    "crc32": lambda data: f"{zlib.crc32(data):08x}",
}


def checksum(data, algorithm: str = CHECKSUM) -> str:
    """"<algorithm>:<hex digest>" of a bytes-like object (bytes, a numpy array or memmap)."""
    return f"{algorithm}:{_HASHES[algorithm](data)}"


def algorithm_of(recorded: str) -> str:
    return recorded.split(":", 1)[0]


def file_checksum(path: Path, algorithm: str = CHECKSUM) -> str:
    """`checksum` of a whole file, read through a memory map (no copy)."""
    if path.stat().st_size == 0:
        return checksum(b"", algorithm)
    return checksum(np.memmap(path, dtype=np.uint8, mode="r"), algorithm)


# --- the manifest ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ShardInfo:
    name: str
    """File name inside the store directory."""
    first_token: int
    """Global index of the shard's first token (= first sequence * context_size)."""
    n_tokens: int
    bytes: int
    checksum: str
    """"<algorithm>:<hex>" of the whole file (`checksum`): xxh3_64, or crc32 in format 1."""

    def __post_init__(self):
        check_fields(self)


@dataclass
class Manifest:
    """Everything about a store; `manifest.json` is this dataclass as JSON."""

    model: str
    hooks: tuple[str, ...]
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
    shards: tuple[ShardInfo, ...] = ()
    """Records of the shards written so far, in shard order."""
    complete: bool = False
    """False while the writer runs; True once every shard is written."""
    format_version: int = FORMAT_VERSION

    def __post_init__(self):
        check_fields(self)  # types from the annotations (lists -> tuples, tables -> ShardInfo)

    @property
    def shard_tokens(self) -> int:
        return self.shard_sequences * self.context_size

    @property
    def n_shards(self) -> int:
        return -(-self.n_tokens // self.shard_tokens)

    def shard_n_tokens(self, i: int) -> int:
        """Tokens shard `i` holds in the complete store."""
        return min(self.shard_tokens, self.n_tokens - i * self.shard_tokens)

    def fingerprint(self) -> str:
        """What the store holds, not where it is: the checksum of every field but `complete`
        and the format version (model, hooks, shapes, dtype, writer config, every shard's
        size and checksum). Equal for byte-identical stores."""
        held = {k: v for k, v in asdict(self).items() if k not in ("complete", "format_version")}
        return checksum(_canonical(held).encode())

    def to_json(self) -> str:
        data = asdict(self)
        return json.dumps(dict(data, manifest_checksum=checksum(_canonical(data).encode())), indent=1,
                          sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, path: Path) -> "Manifest":
        """Parse and check a manifest; `StoreError` naming `path`, the field and the remedy."""
        try:
            raw = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise StoreError(f"{path}: not an activation-store manifest (not JSON: {e}); {RECACHE}") from None
        if not isinstance(raw, dict):
            raise StoreError(f"{path}: not an activation-store manifest (a JSON {type(raw).__name__}, not a table); "
                             f"{RECACHE}")
        version = raw.get("format_version", 1)
        if not isinstance(version, int) or isinstance(version, bool) or version not in READABLE_VERSIONS:
            raise StoreError(f"{path}: format_version={version!r}; this interp reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))} (a newer interp wrote it?): upgrade interp "
                             "or re-cache the store")
        recorded = raw.pop("manifest_checksum", None)
        if version >= 2 and not isinstance(recorded, str):
            raise StoreError(f"{path}: manifest_checksum={recorded!r} is missing or not a string; {RECACHE}")
        if version == 1 and isinstance(raw.get("shards"), list):
            raw["shards"] = [_shard_of_format_1(s) for s in raw["shards"]]
        try:
            manifest = from_dict(cls, raw)
        except ConfigError as e:
            raise StoreError(f"{path}: not an activation-store manifest: {e}; {RECACHE}") from None
        _check_fields_agree(manifest, path)
        if version >= 2 and (algorithm_of(recorded) not in _HASHES or
                             recorded != checksum(_canonical(asdict(manifest)).encode(), algorithm_of(recorded))):
            raise StoreError(f"{path}: its contents do not match its manifest_checksum (the file was edited or "
                             f"damaged after it was written); {RECACHE}")
        return manifest


def _shard_of_format_1(record):
    """A format-1 shard record ("crc32": int) in today's form ("checksum": "crc32:<hex>")."""
    if not isinstance(record, dict) or not isinstance(record.get("crc32"), int):
        return record  # from_dict names what is wrong with it
    record = dict(record)
    return dict(record, checksum=f"crc32:{record.pop('crc32'):08x}")


def _canonical(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def _check_fields_agree(m: Manifest, path: Path) -> None:
    """Fields against each other, the writer config recorded beside them and the shard records."""
    def refuse(what: str):
        raise StoreError(f"{path}: {what}; the manifest was edited or damaged: {RECACHE}")

    if m.dtype not in DTYPES:
        refuse(f"dtype={m.dtype!r} is not a store dtype (allowed: {', '.join(DTYPES)})")
    if not m.hooks or set(m.d_model) != set(m.hooks):
        refuse(f"d_model has widths for {sorted(m.d_model)} but hooks={list(m.hooks)}")
    for hook, d in m.d_model.items():
        if not isinstance(d, int) or isinstance(d, bool) or d < 1:
            refuse(f"d_model={d!r} for hook {hook!r} is not a positive integer")
    for name in ("context_size", "shard_sequences"):
        if getattr(m, name) < 1:
            refuse(f"{name}={getattr(m, name)} is not a positive integer")
    config_of = {"dtype": "dtype", "has_grads": "grads", "context_size": "context_size",
                 "shard_sequences": "shard_sequences", "hooks": "hooks"}
    for name, key in config_of.items():
        value = list(m.hooks) if name == "hooks" else getattr(m, name)
        if key in m.config and m.config[key] != value:
            held = _rows_under(m, m.config[key]) if name == "dtype" else ""
            refuse(f"manifest says {name}={value!r} but the writer config recorded in it says "
                   f"{key}={m.config[key]!r}{held}")
    if m.n_tokens < 0 or m.n_tokens % m.context_size:
        refuse(f"manifest says n_tokens={m.n_tokens}, which is not a whole number of context_size={m.context_size} "
               "sequences")
    held = sum(s.n_tokens for s in m.shards)
    if m.complete and (held != m.n_tokens or len(m.shards) != m.n_shards):
        refuse(f"manifest says n_tokens={m.n_tokens} ({m.n_shards} shards of up to {m.shard_tokens} tokens), but its "
               f"{len(m.shards)} shard records hold {held} tokens")
    for s in m.shards:
        number = SHARD_FILE.fullmatch(s.name)
        if number is None or s.name != shard_name(int(number[1])):
            refuse(f"shard record name={s.name!r} is not a shard file name (shard_NNNNN.bin)")
        i = int(number[1])
        if i >= m.n_shards or s.n_tokens != m.shard_n_tokens(i) or s.first_token != i * m.shard_tokens:
            refuse(f"manifest says n_tokens={m.n_tokens} in shards of {m.shard_tokens} tokens, so {s.name} would "
                   f"hold {max(0, m.shard_n_tokens(i))} tokens from token {i * m.shard_tokens}; its record says "
                   f"{s.n_tokens} from token {s.first_token}")
        expected = manifest_layout(m, s.n_tokens)[1]
        if s.bytes != expected:
            refuse(_explain_size(m, s))
        if algorithm_of(s.checksum) not in _HASHES:
            refuse(f"{s.name}: checksum={s.checksum!r} names no known algorithm (allowed: {', '.join(_HASHES)})")
    if [s.name for s in m.shards] != sorted({s.name for s in m.shards}):
        refuse("the shard records are not in shard order or repeat a shard")


def _rows_under(m: Manifest, dtype) -> str:
    """'; the shards hold 32-dim float32 rows' when the records' sizes fit `dtype`, else ''."""
    if dtype not in DTYPES or not m.shards:
        return ""
    s = m.shards[0]
    if shard_layout(m.hooks, m.d_model, dtype, m.has_grads, s.n_tokens)[1] != s.bytes:
        return ""
    return f"; the shards hold {_dims(m.d_model)} {dtype} rows"


def _dims(d_model: dict) -> str:
    return "/".join(map(str, sorted(set(d_model.values())))) + "-dim"


def _explain_size(m: Manifest, s: ShardInfo) -> str:
    """Why shard record `s` has another size than the manifest's layout needs, in terms of
    the field that explains it (dtype and gradients were already checked against the writer
    config, so a width is the usual culprit)."""
    for hook in m.hooks:
        d = _width_that_fits(m, hook, s)
        if d is not None:
            return (f"manifest says d_model={m.d_model[hook]} for hook {hook!r}, but the shards hold {d}-dim "
                    f"{m.dtype} rows ({s.name}: {s.bytes} bytes for {s.n_tokens} tokens)")
    if shard_layout(m.hooks, m.d_model, m.dtype, not m.has_grads, s.n_tokens)[1] == s.bytes:
        return f"manifest says has_grads={m.has_grads}, but the shards {'lack' if m.has_grads else 'hold'} gradients"
    need = manifest_layout(m, s.n_tokens)[1]
    return (f"{s.name} is recorded with {s.bytes} bytes, but {s.n_tokens} tokens of hooks {list(m.hooks)} with "
            f"d_model={m.d_model}, dtype={m.dtype}, has_grads={m.has_grads} take {need} bytes")


def _width_that_fits(m: Manifest, hook: str, s: ShardInfo) -> int | None:
    def size(d: int) -> int:
        return shard_layout(m.hooks, dict(m.d_model, **{hook: d}), m.dtype, m.has_grads, s.n_tokens)[1]

    lo, hi = 1, max(1, s.bytes)  # size() grows with d: bisect for the width that gives s.bytes
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if size(mid) < s.bytes else (lo, mid)
    return lo if size(lo) == s.bytes and lo != m.d_model[hook] else None


# --- layout ---------------------------------------------------------------------------------
class ArraySpec(NamedTuple):
    offset: int
    """Byte offset inside the shard file."""
    shape: tuple[int, ...]
    dtype: np.dtype


def _align(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def shard_layout(hooks, d_model: dict[str, int], dtype: str, has_grads: bool,
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


# --- reading and writing the manifest -------------------------------------------------------
def read_manifest(directory: Path) -> Manifest:
    """The checked manifest of the store at `directory`; `StoreError` if missing or not trustworthy."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise StoreError(f"{path} is missing: {directory} is not an activation store "
                         "(write one with `interp cache` / interp.cache.write)")
    return Manifest.from_json(path.read_bytes(), path)


def write_manifest(directory: Path, manifest: Manifest) -> None:
    write_bytes(Path(directory) / MANIFEST, manifest.to_json().encode())

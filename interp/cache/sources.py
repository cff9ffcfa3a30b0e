"""Token sources for the activation store: the zoo corpus, a plain-text file, a local
`datasets` directory, or a ready tensor of token ids; all become `(n_seq, ctx)` rows.

Text is tokenized document by document; every document begins with BOS, and documents
are packed end to end into rows of `context_size`. Every row starts with BOS: a row that
begins at a document start takes it as is, a row that begins inside a document gets a
BOS prepended (so no token is dropped and none is seen twice).

`heldout` gives evaluation rows of text that training never saw, prose and task text apart
(`interp.zoo.corpus.build_heldout`): what an SAE trained on the zoo corpus is evaluated on.
`calibration` gives more held-out prose, none of it in `heldout`'s prose rows of the same
seed: for settings tuned on held-out text (a threshold) without touching the evaluation text.

Text files and datasets are read, tokenized and packed a chunk of documents at a time;
with `spill_dir` the rows go to an unlinked temporary file there and come back memory-
mapped, so resolving a source of any size holds only one chunk in memory.
"""

from __future__ import annotations

import itertools
import random
import tempfile
import zlib
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple

import numpy as np
import torch

from interp.errors import ConfigError, MissingFile

# Zoo-corpus documents average ~35 tokens with the zoo tokenizer; the first guess of how
# many documents to build uses a lower figure so that one build is usually enough.
_TOKENS_PER_DOCUMENT_GUESS = 25
_CHUNK_DOCUMENTS = 2048
"""Documents tokenized per step of the streaming packer."""


class TokenRows(NamedTuple):
    tokens: torch.Tensor
    """(n_seq, context_size) int64 token ids."""
    source: dict
    """JSON description of where they came from, with the CRC-32 of the rows."""


def resolve(tokens, model, context_size: int | None, seed: int, spill_dir: str | Path | None = None) -> TokenRows:
    """Turn the `tokens` argument of `interp.cache.write` into rows; errors before any compute.

    `tokens`: an int (that many tokens, rounded up to whole rows, from the zoo corpus
    built with `seed`), a LongTensor (n_seq, ctx), or a path to a plain-text file
    (documents separated by blank lines) or to a `datasets.save_to_disk` directory
    (a "text" column, or an "input_ids"/"tokens" column of rows of length ctx).
    `spill_dir`: where text and dataset rows are spilled to disk (an unlinked temporary
    file, memory-mapped) instead of held in memory.
    """
    if isinstance(tokens, torch.Tensor):
        rows, source = _from_tensor(tokens, context_size), {"kind": "tensor"}
    elif isinstance(tokens, (int, np.integer)) and not isinstance(tokens, bool):
        ctx = _context_size(model, context_size)
        rows = _from_zoo_corpus(int(tokens), model, ctx, seed)
        source = {"kind": "zoo_corpus", "n_tokens": int(tokens), "seed": seed}
    elif isinstance(tokens, (str, Path)):
        path = Path(tokens)
        ctx = _context_size(model, context_size)
        if path.is_dir():
            rows, column = _from_dataset(path, model, ctx, spill_dir)
            source = {"kind": "dataset", "path": str(path), "column": column}
        elif path.is_file():
            rows = _from_text_file(path, model, ctx, spill_dir)
            source = {"kind": "text_file", "path": str(path)}
        else:
            raise MissingFile(f"tokens={str(tokens)!r}: no such file or directory "
                                    "(give a token count, a text file, a dataset directory or a tensor)")
    else:
        raise TypeError(f"tokens={tokens!r}: allowed are an int (token count), a LongTensor (n_seq, ctx), "
                        "or a path to a text file or a datasets directory")
    return _token_rows(rows, model, source)


HELDOUT_PARTS = ("prose", "task")
"""The keys of `heldout`: held-out prose paragraphs, and held-out task documents."""


def heldout(n_tokens: int, model, context_size: int | None = None, seed: int = 0) -> dict[str, TokenRows]:
    """Held-out evaluation tokens for `model`: text that shares no document with the zoo training
    corpus (`interp.zoo.corpus.build_heldout`), tokenized with `model.tokenizer` and packed as
    `resolve` packs the corpus (every document begins with BOS; every row starts with BOS).

    Returns {"prose": rows, "task": rows} (`HELDOUT_PARTS`), each a `TokenRows` whose `tokens`
    are (ceil(n_tokens / context_size), context_size) int64 on the CPU: "prose" holds only
    held-out prose paragraphs, each at most once (so `n_tokens` is bounded by how much held-out
    prose there is: about 120k tokens of the zoo's tokenizer; more is a `ConfigError` that says the maximum);
    "task" holds only task documents from the held-out splits (IOI, refusal's harmful, benign and
    jailbreak requests, topics), weighted as the training corpus weights them.
    `context_size`: row length, in [2, model n_ctx] (None: n_ctx). Deterministic in
    (n_tokens, context_size, seed, tokenizer).
    """
    from interp.zoo import corpus

    if not isinstance(n_tokens, (int, np.integer)) or isinstance(n_tokens, bool) or n_tokens < 1:
        raise ConfigError(f"n_tokens={n_tokens!r} is not allowed: a positive integer (tokens per part)")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise ConfigError(f"seed={seed!r} is not allowed: an integer")
    n_tokens, seed = int(n_tokens), int(seed)
    ctx = _context_size(model, context_size)
    task_mix = {k: corpus.MIX[k] for k in corpus.TASK_KINDS}
    parts = {
        "prose": _heldout_prose(n_tokens, model, ctx, seed)[0],
        "task": _corpus_rows(n_tokens, model, ctx, lambda n: corpus.build_heldout(n, seed, task_mix).documents)[0],
    }
    return {part: _token_rows(rows, model, {"kind": f"heldout_{part}", "n_tokens": n_tokens, "seed": seed})
            for part, rows in parts.items()}


def calibration(n_tokens: int, model, eval_tokens: int, context_size: int | None = None, seed: int = 0) -> TokenRows:
    """(ceil(n_tokens / context_size), context_size) rows of held-out prose
    (`interp.zoo.corpus.heldout_prose`) that share no paragraph, and no run of 30 bytes
    (`corpus.disjoint_from`), with the prose rows of `heldout(eval_tokens, model, context_size,
    seed)`: the rest of the held-out prose, in an order fixed by `seed`, packed as `heldout`
    packs. Asking for more than that rest holds is a `ConfigError` that says the most it gives."""
    from interp.zoo import corpus

    if not isinstance(n_tokens, (int, np.integer)) or isinstance(n_tokens, bool) or n_tokens < 1:
        raise ConfigError(f"n_tokens={n_tokens!r} is not allowed: a positive integer (calibration tokens)")
    ctx = _context_size(model, context_size)
    rows, built = _heldout_prose(int(eval_tokens), model, ctx, int(seed))
    used = built[:documents_packed(tokenize_documents(built, _tokenizer(model)), ctx, len(rows))]
    rest = corpus.disjoint_from(corpus.heldout_prose(), used)
    random.Random(f"calibration/{seed}").shuffle(rest)
    rows, _ = _corpus_rows(int(n_tokens), model, ctx, lambda n: rest[:n], max_documents=len(rest),
                           what=f"held-out prose left beside {eval_tokens} evaluation tokens")
    return _token_rows(rows, model, {"kind": "calibration", "n_tokens": int(n_tokens), "eval_tokens": int(eval_tokens),
                                     "seed": int(seed)})


def _heldout_prose(n_tokens: int, model, ctx: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """`heldout`'s prose rows and the paragraphs they were packed from."""
    from interp.zoo import corpus

    return _corpus_rows(n_tokens, model, ctx, lambda n: corpus.build_heldout(n, seed, {"prose": 1}).documents,
                        max_documents=len(corpus.heldout_prose()), what="held-out prose")


def _token_rows(rows: torch.Tensor, model, source: dict) -> TokenRows:
    _check_vocab(rows, model)
    crc = 0
    for start in range(0, len(rows), 65536):  # chunked: rows may be a memory-mapped spill file
        crc = zlib.crc32(rows[start:start + 65536].to(torch.int32).numpy().tobytes(), crc)
    return TokenRows(rows, dict(source, n_seq=rows.shape[0], context_size=rows.shape[1], crc32=crc))


def _context_size(model, context_size: int | None) -> int:
    n_ctx = model.cfg.n_ctx
    ctx = n_ctx if context_size is None else context_size
    if not 2 <= ctx <= n_ctx:
        raise ValueError(f"context_size={ctx} must be in [2, model n_ctx={n_ctx}]")
    return ctx


def _from_tensor(tokens: torch.Tensor, context_size: int | None) -> torch.Tensor:
    if tokens.dtype.is_floating_point or tokens.dtype.is_complex or tokens.dtype == torch.bool:
        raise TypeError(f"tokens tensor has dtype {tokens.dtype}; token ids must be an integer tensor")
    if tokens.ndim != 2 or tokens.numel() == 0:
        raise ValueError(f"tokens tensor has shape {tuple(tokens.shape)}; it must be a non-empty (n_seq, ctx)")
    if context_size is not None and context_size != tokens.shape[1]:
        raise ValueError(f"context_size={context_size} but the tokens tensor has rows of {tokens.shape[1]}")
    return tokens.long().cpu()


def _check_vocab(rows: torch.Tensor, model) -> None:
    if rows.numel() == 0:
        raise ValueError("the token source is empty: nothing to cache")
    d_vocab = model.cfg.d_vocab
    lo = min(int(rows[i:i + 65536].min()) for i in range(0, len(rows), 65536))
    hi = max(int(rows[i:i + 65536].max()) for i in range(0, len(rows), 65536))
    if lo < 0 or hi >= d_vocab:
        raise ValueError(f"token ids span [{lo}, {hi}] but the model's vocabulary is [0, {d_vocab})")
    if rows.shape[1] > model.cfg.n_ctx:
        raise ValueError(f"rows of {rows.shape[1]} tokens exceed the model's n_ctx={model.cfg.n_ctx}")


def _tokenizer(model):
    if model.tokenizer is None:
        raise ValueError("the model has no tokenizer: pass token ids as a LongTensor (n_seq, ctx) instead")
    return model.tokenizer


def tokenize_documents(documents: list[str], tokenizer) -> list[list[int]]:
    """Token ids of each document, each beginning with BOS when the tokenizer has one."""
    ids = tokenizer(documents, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    return ids if bos is None else [[bos, *doc] for doc in ids]


def iter_rows(documents: Iterable[list[int]], context_size: int, bos: int | None) -> Iterator[np.ndarray]:
    """Pack token-id documents end to end into chunks of rows (m, context_size) int64, one
    chunk per `_CHUNK_DOCUMENTS` documents; each row starts with BOS (prepended when the row
    begins inside a document). A trailing partial row is dropped."""
    carry = np.empty(0, dtype=np.int64)
    docs = iter(documents)
    while chunk := list(itertools.islice(docs, _CHUNK_DOCUMENTS)):
        stream = np.concatenate([carry, np.fromiter((t for doc in chunk for t in doc), dtype=np.int64)])
        rows, p = [], 0
        while True:
            at_document_start = bos is None or (p < len(stream) and stream[p] == bos)
            take = context_size if at_document_start else context_size - 1
            piece = stream[p:p + take]
            if len(piece) < take:
                break
            rows.append(piece if at_document_start else np.concatenate([[bos], piece]))
            p += take
        carry = stream[p:]
        if rows:
            yield np.stack(rows)


def pack(documents: Iterable[list[int]], context_size: int, bos: int | None, max_rows: int | None = None,
         spill_dir: str | Path | None = None) -> torch.Tensor:
    """All rows of `iter_rows` (at most `max_rows`) as one (n_rows, context_size) int64 tensor,
    memory-mapped from an unlinked file in `spill_dir` when given."""
    chunks = iter_rows(documents, context_size, bos)
    if max_rows is not None:
        chunks = _first_rows(chunks, max_rows)
    if spill_dir is None:
        parts = list(chunks)
        return torch.from_numpy(np.concatenate(parts)) if parts else torch.empty(0, context_size, dtype=torch.long)
    Path(spill_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=spill_dir, prefix=".interp-tokens-") as f:  # unlinked: freed when unmapped
        n_rows = 0
        for part in chunks:
            f.write(part.tobytes())
            n_rows += len(part)
        f.flush()
        if n_rows == 0:
            return torch.empty(0, context_size, dtype=torch.long)
        mapped = np.memmap(f, dtype=np.int64, mode="r+", shape=(n_rows, context_size))
    return torch.from_numpy(mapped)


def documents_packed(documents: list[list[int]], context_size: int, n_rows: int) -> int:
    """How many of `documents` (token ids, each beginning with BOS) the first `n_rows` rows of
    `pack` hold at least one token of."""
    starts = np.cumsum([0] + [len(d) for d in documents])
    p, doc = 0, 0
    for _ in range(n_rows):
        while doc + 1 < len(starts) and starts[doc + 1] <= p:
            doc += 1
        p += context_size if p == starts[doc] else context_size - 1
    return int(np.searchsorted(starts, p, side="left")) if n_rows else 0


def _first_rows(chunks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    for part in chunks:
        if n <= 0:
            return
        yield part[:n]
        n -= len(part)


def _from_zoo_corpus(n_tokens: int, model, context_size: int, seed: int) -> torch.Tensor:
    from interp.zoo import corpus

    if n_tokens < 1:
        raise ValueError(f"tokens={n_tokens}: the token count must be positive")
    return _corpus_rows(n_tokens, model, context_size, lambda n: corpus.build(n, seed).documents)[0]


def _corpus_rows(n_tokens: int, model, context_size: int, build, max_documents: int | None = None,
                 what: str = "") -> tuple[torch.Tensor, list[str]]:
    """ceil(n_tokens / context_size) rows packed from `build(n_documents)` (documents as strings),
    building more documents until they fill the rows; at most `max_documents` of them (then too
    few rows are a `ConfigError` naming `what` and the most tokens it gives). Returns the rows
    and the documents built (the last of them may be cut off or left out by the packing)."""
    tokenizer = _tokenizer(model)
    n_rows = -(-n_tokens // context_size)
    n_documents = max(16, n_tokens // _TOKENS_PER_DOCUMENT_GUESS)
    while True:
        if max_documents is not None:
            n_documents = min(n_documents, max_documents)
        documents = build(n_documents)
        rows = pack(tokenize_documents(documents, tokenizer), context_size, tokenizer.bos_token_id, n_rows)
        if len(rows) == n_rows:
            return rows, documents
        if n_documents == max_documents:
            raise ConfigError(f"n_tokens={n_tokens} is not allowed: the {what} ({max_documents} documents) fills "
                              f"only {len(rows)} rows of context_size={context_size}, so at most "
                              f"{len(rows) * context_size} tokens with this tokenizer")
        n_documents *= 2


def _from_text_file(path: Path, model, context_size: int, spill_dir) -> torch.Tensor:
    tokenizer = _tokenizer(model)
    rows = pack(_tokenized(_paragraphs(path), tokenizer), context_size, tokenizer.bos_token_id, spill_dir=spill_dir)
    if len(rows) == 0:
        raise ValueError(f"{path}: the text file is empty or shorter than one row of context_size={context_size} "
                         "tokens: nothing to cache")
    return rows


def _paragraphs(path: Path) -> Iterator[str]:
    """Documents of a text file (separated by blank lines), read line by line."""
    lines: list[str] = []
    with path.open(encoding="utf-8") as f:
        for line in itertools.chain(f, [""]):
            if line.strip():
                lines.append(line)
            elif lines:
                yield "".join(lines).strip()
                lines = []


def _tokenized(documents: Iterable[str], tokenizer) -> Iterator[list[int]]:
    docs = iter(documents)
    while chunk := list(itertools.islice(docs, _CHUNK_DOCUMENTS)):
        yield from tokenize_documents(chunk, tokenizer)


def _from_dataset(path: Path, model, context_size: int, spill_dir) -> tuple[torch.Tensor, str]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except FileNotFoundError as e:
        raise ValueError(f"{path}: not a dataset saved with `datasets.save_to_disk` ({e})") from e
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise ValueError(f"{path}: a DatasetDict without a 'train' split (has {list(ds)})")
        ds = ds["train"]
    if len(ds) == 0:
        raise ValueError(f"{path}: the dataset is empty: nothing to cache")
    for column in ("input_ids", "tokens"):
        if column in ds.column_names:
            return pack(_checked_rows(ds, column, context_size, path), context_size, None,
                        spill_dir=spill_dir), column
    if "text" in ds.column_names:
        tokenizer = _tokenizer(model)
        texts = (t for batch in ds.iter(batch_size=_CHUNK_DOCUMENTS) for t in batch["text"])
        rows = pack(_tokenized(texts, tokenizer), context_size, tokenizer.bos_token_id, spill_dir=spill_dir)
        if len(rows) == 0:
            raise ValueError(f"{path}: the texts are shorter than one row of context_size={context_size}")
        return rows, "text"
    raise ValueError(f"{path}: the dataset has columns {ds.column_names}; it needs 'text', 'input_ids' or 'tokens'")


def _checked_rows(ds, column: str, context_size: int, path: Path) -> Iterator[list[int]]:
    """Rows of a token-id column, each checked to be `context_size` long (packing them with
    bos=None then leaves them as they are)."""
    for batch in ds.iter(batch_size=_CHUNK_DOCUMENTS):
        for row in batch[column]:
            if len(row) != context_size:
                raise ValueError(f"{path}: column {column!r} has a row of length {len(row)}; "
                                 f"every row must be context_size={context_size}")
            yield row

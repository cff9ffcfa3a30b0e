"""Activation-store benchmark (not a test; output committed under benchmarks/results/).

In one run, on the same model and the same tokens (rows of n_ctx starting with BOS):

* forward_tok_s        plain `model(tokens)` forward pass (full depth), no_grad, batch 32
* forward_to_hook_tok_s the same, stopped after the hook's layer (what a cache needs)
* ours_tok_s           `interp.cache.write` of blocks.2.hook_resid_post, fp32, to disk
* saelens_tok_s        sae-lens 6.54.12 `CacheActivationsRunner.run()` on the same model and
                       tokens (pre-tokenized dataset, shuffle off, same batch size)
* forward_backward_tok_s  forward + summed next-token CE + backward (parameter gradients)
* ours_grads_tok_s     `interp.cache.write(..., grads=True)`
* reader_gb_s          shuffled 4096-token fp32 batches from that store, page cache warm, 8 epochs

Verified reads (a `Store` hashes each shard the first time it touches it), side by side on
the same store, page cache warm; each figure the best of `--repeats` interleaved runs:

* reader_epoch_gb_s    one epoch of shuffled batches on a Store whose shards are verified already
* reader_first_epoch_gb_s  the same epoch on a fresh Store: it hashes every shard (XXH3-64) first
* xxh3_gb_s, crc32_gb_s    hashing the shard files alone (format 2 uses XXH3-64; format 1 used CRC-32)
* verify_cost_first_epoch  reader_epoch / reader_first_epoch - 1: what a fresh Store's first epoch
                       costs over a verified one (the hash, and the first page faults of its maps,
                       which an unverified fresh Store would pay as well)
* {xxh3,crc32}_cost_{1,8}_epochs  hash time / read time of 1 or 8 epochs: the cost of hashing on
                       first touch over a run that reads the store that many times
* crc32_every_read_cost    CRC-32 of every byte read, every epoch (hash time / epoch time)

Each throughput is the best of `--repeats` interleaved runs (the CPU is shared).
The model is zoo-dense when trained, else zoo-dense's architecture with random weights
(speed does not depend on the weights). Prints one JSON line.

    python -m benchmarks.cache --quick > benchmarks/results/cache_quick.json
    python -m benchmarks.cache --verify-only --repeats 3 > benchmarks/results/cache_verify.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

import interp.cache as cache
from interp.cache.format import file_checksum

HOOK = "blocks.2.hook_resid_post"
BATCH = 32
READER_EPOCHS = 8
"""Epochs read back-to-back for reader_gb_s: the steady state, not one prefetch thread's start-up."""


def _model():
    from interp.models import WEIGHTS, build_model, load_model
    from interp.zoo import registry

    spec = registry.get("zoo-dense")
    if (spec.directory / WEIGHTS).is_file():
        return load_model("zoo-dense"), "zoo-dense"
    return build_model(dict(spec.architecture(), d_vocab=spec.train.vocab_size), None).eval(), \
        "zoo-dense architecture, random weights (zoo-dense not trained yet)"


def _rows(n_tokens: int, model) -> torch.Tensor:
    n_ctx, vocab = model.cfg.n_ctx, model.cfg.d_vocab
    rows = torch.randint(1, vocab, (n_tokens // n_ctx, n_ctx), generator=torch.Generator().manual_seed(0))
    rows[:, 0] = 0  # BOS
    return rows


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _forward(model, rows, stop_at_layer=None):
    with torch.no_grad():
        for b in range(0, len(rows), BATCH):
            model(rows[b:b + BATCH], return_type=None, stop_at_layer=stop_at_layer)


def _forward_backward(model, rows):
    for b in range(0, len(rows), BATCH):
        batch = rows[b:b + BATCH]
        logits = model(batch)
        F.cross_entropy(logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten(), reduction="sum").backward()
    model.zero_grad(set_to_none=True)


def _ours(model, rows, work: Path, grads: bool) -> cache.Store:
    out = work / ("grads" if grads else "acts")
    shutil.rmtree(out, ignore_errors=True)
    return cache.write(model, HOOK, rows, out, grads=grads, batch_size=BATCH, progress=False)


def saelens_runner(model, hook: str, rows: torch.Tensor, out: Path, batch: int) -> Callable[[], object]:
    """A ready `CacheActivationsRunner.run` over `rows` (setup is not timed): the runner loads
    its model by name, so the loaded model is handed to it in place of its `load_model`."""
    import datasets
    import sae_lens.cache_activations_runner as runner_module
    from sae_lens import CacheActivationsRunner, CacheActivationsRunnerConfig

    shutil.rmtree(out, ignore_errors=True)
    dataset = datasets.Dataset.from_dict({"input_ids": rows.tolist()})
    cfg = CacheActivationsRunnerConfig(
        dataset_path="interp-benchmark-tokens", model_name=model.cfg.model_name, model_batch_size=batch,
        hook_name=hook, d_in=model.cfg.d_model, training_tokens=rows.numel(), context_size=rows.shape[1],
        new_cached_activations_path=str(out), shuffle=False, dtype="float32", device="cpu", prepend_bos=False,
        buffer_size_gb=rows.numel() * model.cfg.d_model * 4 / 1e9)  # one buffer = exactly these tokens
    real_load = runner_module.load_model
    runner_module.load_model = lambda **kwargs: model
    try:
        runner = CacheActivationsRunner(cfg, override_dataset=dataset)
    finally:
        runner_module.load_model = real_load
    if runner.cfg.n_seq_in_buffer * runner.cfg.n_buffers != len(rows):
        raise RuntimeError(f"sae-lens would cache {runner.cfg.n_seq_in_buffer * runner.cfg.n_buffers} sequences, "
                           f"not {len(rows)}: adjust buffer_size_gb")
    return runner.run


def _saelens(model, rows, work: Path):
    return saelens_runner(model, HOOK, rows, work / "saelens", BATCH)

def _read_all(store: cache.Store, epochs: int) -> int:
    n = 0
    for batch in store.batches(4096, seed=0, epochs=epochs):
        n += batch.acts.numel() * batch.acts.element_size()
    return n


def _verify_costs(store: cache.Store, repeats: int) -> dict:
    files = [store.path / s.name for s in store.manifest.shards]
    n_bytes = sum(s.bytes for s in store.manifest.shards)
    read_bytes = store.n_tokens * store.d_model() * 4  # what an epoch returns (fp32 activations)
    _read_all(cache.open_store(store.path), 1)  # warm the page cache
    best: dict[str, float] = {}
    for _ in range(repeats):
        fresh = cache.open_store(store.path)
        times = {"first_epoch": _timed(lambda: _read_all(fresh, 1)),  # hashes each shard on first touch
                 "epoch": _timed(lambda: _read_all(fresh, 1)),  # the same Store: its shards are verified
                 "xxh3": _timed(lambda: [file_checksum(f, "xxh3_64") for f in files]),
                 "crc32": _timed(lambda: [file_checksum(f, "crc32") for f in files])}
        best = {k: min(best.get(k, float("inf")), t) for k, t in times.items()}
    epoch = best["epoch"]
    return {
        "verify_store_bytes": n_bytes,
        "reader_epoch_gb_s": round(read_bytes / epoch / 1e9, 3),
        "reader_first_epoch_gb_s": round(read_bytes / best["first_epoch"] / 1e9, 3),
        "xxh3_gb_s": round(n_bytes / best["xxh3"] / 1e9, 3),
        "crc32_gb_s": round(n_bytes / best["crc32"] / 1e9, 3),
        "verify_cost_first_epoch": round(best["first_epoch"] / epoch - 1, 3),
        **{f"{h}_cost_{e}_epochs": round(best[h] / (e * epoch), 3) for h in ("xxh3", "crc32") for e in (1, 8)},
        "crc32_every_read_cost": round(best["crc32"] / epoch, 3),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32k tokens instead of 524k")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--verify-only", action="store_true",
                        help="only the verified-read figures (one store written, no writer comparisons)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("sae_lens").setLevel(logging.WARNING)
    model, model_desc = _model()
    rows = _rows(32_768 if args.quick else 524_288, model)
    n_tokens = rows.numel()
    stop = int(HOOK.split(".")[1]) + 1
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="interp-bench-cache-") as tmp:
        work = Path(tmp)
        if args.verify_only:
            result = {"benchmark": "cache_verify", "quick": args.quick, "model": model_desc, "hook": HOOK,
                      "tokens": n_tokens, "torch_threads": torch.get_num_threads(), "repeats": args.repeats,
                      **_verify_costs(_ours(model, rows, work, grads=False), args.repeats),
                      "load_average_1min": round(os.getloadavg()[0], 2)}  # the CPU is shared: context for the figures
            print(json.dumps(result))
            return result
        runs = {
            "forward": lambda: _forward(model, rows),
            "forward_to_hook": lambda: _forward(model, rows, stop),
            "ours": lambda: _ours(model, rows, work, grads=False),
            "saelens": None,
            "forward_backward": lambda: _forward_backward(model, rows),
            "ours_grads": lambda: _ours(model, rows, work, grads=True),
        }
        for _ in range(args.repeats):
            for name, fn in runs.items():
                if name == "saelens":
                    fn = _saelens(model, rows, work)  # setup (dataset, config) is not timed
                best[name] = min(best.get(name, float("inf")), _timed(fn))
        store = cache.open_store(work / "acts")
        _read_all(store, 1)  # warm the page cache
        t0 = time.perf_counter()
        n_bytes = _read_all(store, READER_EPOCHS)
        reader_s = time.perf_counter() - t0
        verify = _verify_costs(store, args.repeats)
    result = {
        "benchmark": "cache", "quick": args.quick, "model": model_desc, "hook": HOOK, "tokens": n_tokens,
        "batch_sequences": BATCH, "torch_threads": torch.get_num_threads(),
        **{f"{name}_tok_s": round(n_tokens / s) for name, s in best.items()},
        "reader_gb_s": round(n_bytes / reader_s / 1e9, 3), **verify,
    }
    result["ours_vs_forward"] = round(result["forward_tok_s"] / result["ours_tok_s"], 3)
    result["ours_vs_forward_to_hook"] = round(result["forward_to_hook_tok_s"] / result["ours_tok_s"], 3)
    result["ours_vs_saelens_speedup"] = round(result["ours_tok_s"] / result["saelens_tok_s"], 2)
    result["ours_grads_vs_forward_backward"] = round(result["forward_backward_tok_s"] / result["ours_grads_tok_s"], 3)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()

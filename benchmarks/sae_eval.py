"""Seconds to evaluate a sweep's SAEs, spliced passes from the hook on against whole passes.

    python -m benchmarks.sae_eval                 # 12 SAEs on zoo-dense, 16,384 held-out prose tokens
    python -m benchmarks.sae_eval --saes 30 --out benchmarks/results/sae_eval.json

`interp.sae.evaluate_details` splices every row (an SAE in one of its inference modes) into the
model: one forward pass per row and batch, most of an evaluation's time. At a residual-stream hook
of a HookedTransformer the pass starts at the hook's block (`evaluate.start_layer`), skipping the
blocks before it, whose output the clean pass already gave. Both are timed in this one run on the
same SAEs and tokens (the whole pass by making `start_layer` answer None), and the largest
difference between their metrics is printed beside the speed-up: it must be float noise.
The SAEs are freshly initialised (the time does not depend on their training): TopK, Mutual
Choice (plain and [batch] rows) and g-SAE (plain and [grad] rows) in turn, 1024 latents, k = 32.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

VARIANTS = ("topk", "mutual_choice", "gradient")
COMPARED = ("nmse", "ce_sae", "kl", "l0", "dead_fraction")


def saes(n: int, d_in: int, n_latents: int, k: int) -> dict:
    from interp.sae import SAEConfig, SparseAutoencoder

    return {f"{VARIANTS[i % len(VARIANTS)]}-{i}": SparseAutoencoder(SAEConfig(
        d_in=d_in, n_latents=n_latents, k=k, variant=VARIANTS[i % len(VARIANTS)], seed=i)) for i in range(n)}


def main(argv: list[str] | None = None) -> dict:
    from interp.sae import evaluate
    from interp.sae.evaluate import SAEEvalConfig, evaluate_details
    from interp.sae.job import heldout_sets
    from interp.models import load_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="zoo-dense")
    p.add_argument("--hook", default="blocks.2.hook_resid_pre")
    p.add_argument("--saes", type=int, default=12)
    p.add_argument("--n-latents", type=int, default=1024)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--tokens", type=int, default=16384)
    p.add_argument("--batch-size", type=int, default=SAEEvalConfig.batch_size)
    p.add_argument("--out", help="also write the JSON here")
    args = p.parse_args(argv)

    model = load_model(args.model)
    tokens = heldout_sets(model, args.tokens, None, seed=1000)["prose"]
    dictionaries = saes(args.saes, model.cfg.d_model, args.n_latents, args.k)
    timings, metrics = {}, {}
    from_hook = evaluate.start_layer
    for label, start_layer in (("whole_pass", lambda model, hook: None), ("from_hook", from_hook)):
        evaluate.start_layer = start_layer
        try:
            t0 = time.perf_counter()
            metrics[label] = evaluate_details(dictionaries, model, tokens, args.hook,
                                              batch_size=args.batch_size).metrics
            timings[label] = time.perf_counter() - t0
        finally:
            evaluate.start_layer = from_hook
    a, b = metrics["whole_pass"], metrics["from_hook"]
    result = {
        "model": args.model, "hook": args.hook, "saes": args.saes, "rows": len(a), "n_latents": args.n_latents,
        "k": args.k, "eval_tokens": int(a["eval_tokens"].iloc[0]), "batch_size": args.batch_size,
        "start_layer": from_hook(model, args.hook), "n_layers": model.cfg.n_layers,
        "whole_pass_s": round(timings["whole_pass"], 2), "from_hook_s": round(timings["from_hook"], 2),
        "speedup": round(timings["whole_pass"] / timings["from_hook"], 2),
        "max_abs_difference": {c: float((a[c] - b[c]).abs().max()) for c in COMPARED},
        "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
        "torch": torch.__version__, "cores": os.cpu_count(),
    }
    print(json.dumps(result))
    if args.out:
        from interp.atomic import write_bytes

        write_bytes(args.out, (json.dumps(result, indent=1) + "\n").encode())
    return result


if __name__ == "__main__":
    main()

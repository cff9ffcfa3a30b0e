"""Scale benchmark: the zoo (d_model 128) beside a GPT-2-small-sized model (d_model 768) on
this CPU (not a test; output committed under benchmarks/results/).

Models: zoo-dense (4 layers, d_model 128) and a random-weight GPT-2 checkpoint of GPT-2
small's shape (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab 50257, n_ctx 1024) built
offline by `interp.fixtures.build_checkpoint` and loaded by `interp.load_model` (speed and
memory do not depend on the weights). On each model, in one run:

* cache     `interp.cache.write` of the mid-layer hook blocks.{L}.hook_resid_post
            (L = n_layers // 2 - 1) to disk, fp32, beside a plain `run_with_hooks(...,
            stop_at_layer=L + 1)` that copies the activation into one preallocated tensor, and
            beside sae-lens 6.54's `CacheActivationsRunner.run()` driven offline (the loaded
            model handed to the runner, the same token rows as an in-memory `datasets.Dataset`,
            one buffer, shuffle off); same tokens and batch size for all three. Tokens are rows
            of CONTEXT tokens starting with BOS. After timing, the three outputs are checked
            equal (`same_activations`), so all three really cached the same thing.
* patching  RelP vs the exact activation-patching sweep over every resid_pre node
            (n_layers x positions) on `--pairs` IOI clean/corrupt pairs of one template
            (`interp.patching.protocol.ioi_inputs`); Spearman (and Pearson) r of their scores.
* steering  a mean-difference direction from a few harmful vs benign refusal-task prompts
            at layer L, then `generate_steered` of `--new-tokens` tokens (coefficient
            STEERING_SCALE x the prompts' mean residual norm there, every position) vs plain
            `interp.generation.greedy` of the same prompts. Sanity figures: `replies_changed`
            (decoded replies that differ; the GPT-2-sized unembedding has 50257 rows but the
            fixture's tokenizer 2048 tokens, and ids it lacks decode to "", so this undercounts
            there) and `next_token_changed` (prompts whose greedy next token id changes).

Every measurement reports wall-clock seconds and its peak memory: the resident-set high-water
(Linux VmHWM, reset per measurement by writing 5 to /proc/self/clear_refs after glibc's
malloc_trim, so each figure is that measurement's own peak; `extra` = peak - resident set at
its start, i.e. above the loaded model). torch 2.13 keeps no statistics for its CPU allocator
(`torch.accelerator.max_memory_allocated` covers accelerators only), so RSS is the figure;
tracemalloc is not used (it does not see torch's allocations and slows the timed code).

Each measurement is the best of `--repeats` interleaved runs, except one whose first run took
longer than LONG_RUN_S (repeating it would not fit the time budget; `runs` says how many),
after one unrecorded warm-up pass of the whole suite on the zoo at a tiny size. torch runs
`--threads` threads (default 1: on a machine shared with other jobs, a second OpenMP thread
mostly waits for a descheduled partner, and timings swing by several times). The machine is
shared: the 1-minute load average is recorded at each phase. Growth ratios are
GPT-2-sized over zoo (seconds per token or per call, MB), beside the ratio of non-embedding
parameters, the compute a forward pass does per token.

    python -m benchmarks.scale --out benchmarks/results/scale.json
    python -m benchmarks.scale --quick --out benchmarks/results/scale_quick.json
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import resource
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import torch

from benchmarks.cache import saelens_runner

CONTEXT = 128
"""Tokens per cached row (the zoo's n_ctx; the GPT-2-sized model gets the same rows)."""
BATCH = 32
"""Sequences per model pass when caching."""
LONG_RUN_S = 20.0
"""A measurement whose first run takes longer than this is not repeated."""
STEERING_SCALE = 2.0
"""Steering coefficient in units of the mean residual norm of the prompts at the steered layer
(a fixed number would be weak on one model and overwhelming on another)."""
STEERING_PROMPTS = 4
"""Harmful and benign prompts for the direction (each), and prompts generated from."""

GPT2_SMALL = dict(d_model=768, n_layers=12, n_heads=12, d_mlp=3072, vocab_size=50257, n_ctx=1024)
GPT2_TINY = dict(d_model=64, n_layers=2, n_heads=4, d_mlp=256, vocab_size=None, n_ctx=256)
"""--quick: the same code path on a GPT-2 checkpoint small enough for a test."""


# --- memory ------------------------------------------------------------------------------
def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_high_water() -> bool:
    """Give freed heap back to the OS, then reset the RSS high-water to the current RSS."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


MEMORY_METHOD = ("Linux VmHWM (resident-set high-water) reset per measurement via /proc/self/clear_refs=5 after "
                 "malloc_trim(0); extra = peak - RSS at its start. torch's CPU allocator keeps no statistics.")
FALLBACK_METHOD = "resource.getrusage(RUSAGE_SELF).ru_maxrss: process-wide and never reset (clear_refs unavailable)"


@contextmanager
def _peak_memory() -> Iterator[dict]:
    """Yields a dict filled on exit with peak_rss_mb and extra_mb of the body."""
    per_phase = _reset_high_water()
    start_kb = _status_kb("VmRSS") or 0
    out: dict = {}
    yield out
    peak_kb = _status_kb("VmHWM") if per_phase else None
    if peak_kb is None:
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(peak_rss_mb=round(peak_kb / 1024, 1), extra_mb=round(max(0, peak_kb - start_kb) / 1024, 1))


class Measured:
    """Best seconds and largest peak memory over the runs of one measurement."""

    def __init__(self):
        self.seconds = float("inf")
        self.peak_rss_mb = 0.0
        self.extra_mb = 0.0
        self.runs = 0

    def add(self, fn: Callable[[], object]) -> object:
        with _peak_memory() as memory:
            t0 = time.perf_counter()
            result = fn()
            seconds = time.perf_counter() - t0
        self.seconds = min(self.seconds, seconds)
        self.peak_rss_mb = max(self.peak_rss_mb, memory["peak_rss_mb"])
        self.extra_mb = max(self.extra_mb, memory["extra_mb"])
        self.runs += 1
        return result

    def wants_more(self, repeats: int) -> bool:
        return self.runs < repeats and self.seconds <= LONG_RUN_S

    def fields(self, name: str) -> dict:
        return {f"{name}_s": round(self.seconds, 4), f"{name}_peak_rss_mb": self.peak_rss_mb,
                f"{name}_extra_mb": self.extra_mb, f"{name}_runs": self.runs}


def _interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, Measured]:
    """Run every measurement in turn, `repeats` rounds (long ones once)."""
    measured = {name: Measured() for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            if measured[name].runs == 0 or measured[name].wants_more(repeats):
                measured[name].add(fn)
    return measured


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


# --- models ------------------------------------------------------------------------------
def _gpt2(directory: Path, sizes: dict):
    from interp import load_model
    from interp.fixtures import build_checkpoint

    path = build_checkpoint("gpt2", directory / "gpt2", **sizes)
    return load_model(path, device="cpu")


def _describe(model) -> dict:
    embedding = {"embed.W_E", "pos_embed.W_pos", "unembed.W_U", "unembed.b_U"}
    params = dict(model.named_parameters())
    return {"d_model": model.cfg.d_model, "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads,
            "d_mlp": model.cfg.d_mlp, "d_vocab": model.cfg.d_vocab,
            "params": sum(p.numel() for p in params.values()),
            "non_embedding_params": sum(p.numel() for n, p in params.items() if n not in embedding)}


def _rows(model, n_tokens: int) -> torch.Tensor:
    """(n_tokens // CONTEXT, CONTEXT) random token ids of the tokenizer's vocabulary, BOS first."""
    vocab = min(model.cfg.d_vocab, len(model.tokenizer))
    rows = torch.randint(0, vocab, (n_tokens // CONTEXT, CONTEXT), generator=torch.Generator().manual_seed(0))
    rows[:, 0] = model.tokenizer.bos_token_id
    return rows


# --- cache -------------------------------------------------------------------------------
def _forward_to_hook(model, hook: str, rows: torch.Tensor, batch: int) -> torch.Tensor:
    """The hook's activations (N*T, D) from forwards stopped after the hook's layer."""
    layer = int(hook.split(".")[1])
    out = torch.empty(rows.numel(), model.cfg.d_model)
    for b in range(0, len(rows), batch):
        chunk = rows[b:b + batch]
        start = b * rows.shape[1]

        def grab(act, hook):
            out[start:start + act.shape[0] * act.shape[1]].copy_(act.reshape(-1, act.shape[-1]))

        with torch.no_grad():
            model.run_with_hooks(chunk, fwd_hooks=[(hook, grab)], return_type=None, stop_at_layer=layer + 1)
    return out


def _ours(model, hook: str, rows: torch.Tensor, out: Path, batch: int):
    import interp.cache as cache

    shutil.rmtree(out, ignore_errors=True)
    return cache.write(model, hook, rows, out, batch_size=batch, progress=False)


def _same_activations(reference_ND: torch.Tensor, store, saelens_dir: Path, hook: str) -> bool:
    import datasets

    ours = torch.cat([b.acts for b in store.batches(len(reference_ND), shuffle=False)])
    theirs = datasets.load_from_disk(str(saelens_dir)).with_format("torch")[:][hook].reshape(reference_ND.shape)
    return bool(torch.equal(ours, reference_ND) and torch.allclose(theirs, reference_ND, rtol=1e-5, atol=1e-6))


def bench_cache(model, n_tokens: int, repeats: int, work: Path) -> dict:
    """Tokens/s and peak memory of interp's writer, the forward to the hook and sae-lens."""
    hook = f"blocks.{model.cfg.n_layers // 2 - 1}.hook_resid_post"
    rows = _rows(model, n_tokens)
    batch = min(BATCH, len(rows))
    load = _load1()
    captured: dict = {}
    runs = {
        "forward_to_hook": lambda: captured.update(reference=_forward_to_hook(model, hook, rows, batch)),
        "ours": lambda: captured.update(store=_ours(model, hook, rows, work / "ours", batch)),
        # setup (dataset, config) is not timed; the runner needs an empty directory each run
        "saelens": lambda: saelens_runner(model, hook, rows, work / "saelens", batch)(),
    }
    measured = _interleaved(runs, repeats)
    same = _same_activations(captured["reference"], captured["store"], work / "saelens", hook)
    n = rows.numel()
    result = {"hook": hook, "tokens": n, "context": CONTEXT, "batch_sequences": batch, "load1": load,
              "same_activations": same}
    for name, m in measured.items():
        result[f"{name}_tok_s"] = round(n / m.seconds)
        result.update(m.fields(name))
    # as in benchmarks.cache: ours_vs_forward_to_hook is a time ratio (1.0 = no overhead over the forward)
    result["ours_vs_forward_to_hook"] = round(result["forward_to_hook_tok_s"] / result["ours_tok_s"], 3)
    result["ours_vs_saelens_speedup"] = round(result["ours_tok_s"] / result["saelens_tok_s"], 3)
    return result


# --- patching ----------------------------------------------------------------------------
def _rank_correlation(a: pd.Series, b: pd.Series) -> float:
    from interp.patching.maps import pearson

    joined = pd.concat([a, b], axis=1, join="inner")
    return pearson(joined.iloc[:, 0].rank().to_numpy(), joined.iloc[:, 1].rank().to_numpy())


def bench_patching(model, n_pairs: int, repeats: int) -> dict:
    """Seconds of RelP and of the exact resid_pre sweep, and how well their scores agree."""
    from interp.patching import activation_patching, correlations, relevance_patching
    from interp.patching.protocol import ioi_inputs

    ioi = ioi_inputs(model, n=n_pairs, split="train", template=0)
    load = _load1()
    frames: dict = {}
    args = (model, ioi.clean, ioi.corrupt, ioi.metric)
    measured = _interleaved({
        "relp": lambda: frames.update(relp=relevance_patching(*args, components=("resid_pre",))),
        "ap": lambda: frames.update(ap=activation_patching(*args, components=("resid_pre",))),
    }, repeats)
    scores = pd.concat([frames["ap"], frames["relp"]], ignore_index=True)
    r = correlations(scores, "ap").set_index("method").loc["relp"]
    by_node = {m: f.set_index("node")["score"] for m, f in frames.items()}
    result = {"task": "ioi (train, template 0)", "pairs": int(ioi.clean.shape[0]),
              "positions": int(ioi.clean.shape[1]), "nodes": int(r["n_nodes"]), "load1": load,
              **measured["relp"].fields("relp"), **measured["ap"].fields("ap")}
    result["ap_vs_relp_time"] = round(measured["ap"].seconds / measured["relp"].seconds, 2)
    result["spearman_relp_ap"] = round(_rank_correlation(by_node["relp"], by_node["ap"]), 4)
    result["pearson_relp_ap"] = round(float(r["pearson"]), 4)
    return result


# --- steering ----------------------------------------------------------------------------
@torch.no_grad()
def _next_tokens(model, prompts: list[str]) -> torch.Tensor:
    """(N,) greedy next-token id after each prompt (BOS prepended)."""
    return torch.stack([model(model.to_tokens(p))[0, -1].argmax() for p in prompts])


def bench_steering(model, new_tokens: int, repeats: int) -> dict:
    """Seconds of a direction, of plain greedy generation and of the same generation steered."""
    from interp.generation import greedy
    from interp.steering import Direction, Steering, steer
    from interp.steering.apply import generate_steered
    from interp.steering.readout import residuals
    from interp.tasks import refusal

    layer = model.cfg.n_layers // 2 - 1
    harmful = [p.prompt for p in refusal.generate(STEERING_PROMPTS, "harmful")]
    benign = [p.prompt for p in refusal.generate(STEERING_PROMPTS, "benign")]
    coefficient = STEERING_SCALE * residuals(model, benign, [layer]).norm(dim=-1).mean().item()
    load = _load1()
    out: dict = {}

    def direction():
        out["direction"] = Direction.mean_difference(model, harmful, benign, layer=layer)

    def plan() -> Steering:
        return Steering(direction=out["direction"], layers=[layer], coefficients=coefficient)

    def steered():
        out["steered"], _ = generate_steered(model, plan(), benign, max_new_tokens=new_tokens)

    measured = _interleaved({
        "direction": direction,
        "plain_generate": lambda: out.update(plain=greedy(model, benign, new_tokens)),
        "steered_generate": steered,
    }, repeats)
    with steer(model, plan(), record=False):
        steered_next = _next_tokens(model, benign)
    result = {"prompts": len(benign), "new_tokens": new_tokens, "layer": layer, "coefficient": round(coefficient, 3),
              "load1": load, "replies_changed": sum(a != b for a, b in zip(out["plain"], out["steered"])),
              "next_token_changed": int((steered_next != _next_tokens(model, benign)).sum())}
    for name, m in measured.items():
        result.update(m.fields(name))
    result["steered_vs_plain_time"] = round(measured["steered_generate"].seconds / measured["plain_generate"].seconds, 3)
    return result


# --- growth ------------------------------------------------------------------------------
def _ratio(large: float, small: float) -> float | None:
    return float(f"{large / small:.3g}") if small > 0 else None


def growth(small: dict, large: dict) -> dict:
    """large / small cost ratios: seconds per token (cache), seconds (patching, steering), MB
    above the loaded model; beside them the ratios of non-embedding parameters and d_model."""
    out = {name: _ratio(large["model"][name], small["model"][name]) for name in ("non_embedding_params", "d_model")}
    for name in ("forward_to_hook", "ours", "saelens"):
        out[f"cache_{name}_s_per_token"] = _ratio(small["cache"][f"{name}_tok_s"], large["cache"][f"{name}_tok_s"])
    for section, names in (("cache", ("forward_to_hook", "ours", "saelens")), ("patching", ("relp", "ap")),
                           ("steering", ("direction", "plain_generate", "steered_generate"))):
        for name in names:
            if section != "cache":
                out[f"{section}_{name}_s"] = _ratio(large[section][f"{name}_s"], small[section][f"{name}_s"])
            out[f"{section}_{name}_extra_mb"] = _ratio(large[section][f"{name}_extra_mb"],
                                                      small[section][f"{name}_extra_mb"])
    return out


def run_model(label: str, model, args, work: Path) -> dict:
    print(f"[scale] {label}: cache", flush=True)
    result = {"label": label, "model": _describe(model), "cache": bench_cache(model, args.tokens, args.repeats, work)}
    print(f"[scale] {label}: patching", flush=True)
    result["patching"] = bench_patching(model, args.pairs, args.repeats)
    print(f"[scale] {label}: steering", flush=True)
    result["steering"] = bench_steering(model, args.new_tokens, args.repeats)
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a 2-layer d_model 64 GPT-2 checkpoint, 1024 tokens, 2 pairs, 4 new tokens (a smoke run)")
    parser.add_argument("--tokens", type=int, default=None, help="tokens cached per method (default 16384; quick 1024)")
    parser.add_argument("--pairs", type=int, default=None, help="IOI pairs for patching (default 8; quick 2)")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens generated (default 16; quick 4)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement (best kept; long ones run once)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared machine more threads wait on each other)")
    parser.add_argument("--out", type=Path, default=None, help="write the result JSON here (atomically)")
    args = parser.parse_args(argv)
    defaults = (1024, 2, 4) if args.quick else (16_384, 8, 16)
    for name, default in zip(("tokens", "pairs", "new_tokens"), defaults):
        if getattr(args, name) is None:
            setattr(args, name, default)
    if args.tokens < CONTEXT:
        parser.error(f"--tokens={args.tokens} must be at least one row of {CONTEXT} tokens")
    if args.threads < 1:
        parser.error(f"--threads={args.threads} must be a positive integer")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    warnings.filterwarnings("ignore")
    import logging

    logging.getLogger("sae_lens").setLevel(logging.WARNING)
    import datasets

    datasets.disable_progress_bars()
    from interp import load_model

    t0 = time.perf_counter()
    sizes = GPT2_TINY if args.quick else GPT2_SMALL
    result = {"benchmark": "scale", "quick": args.quick, "torch_threads": torch.get_num_threads(),
              "cpu_count": os.cpu_count(), "memory_method": MEMORY_METHOD if _reset_high_water() else FALLBACK_METHOD,
              "load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="interp-bench-scale-") as tmp:
        work = Path(tmp)
        zoo_model = load_model("zoo-dense", device="cpu")
        # warm-up, not recorded: lazy imports, thread pools and first-touched library pages
        # would otherwise land in the first measurements' time and memory
        run_model("warm-up", zoo_model, argparse.Namespace(tokens=2 * CONTEXT, pairs=1, new_tokens=2, repeats=1), work)
        zoo = run_model("zoo-dense", zoo_model, args, work)
        gc.collect()
        label = "gpt2 random weights " + ("tiny" if args.quick else "small-sized")
        del zoo_model
        gpt2 = _gpt2(work, sizes)
        large = run_model(label, gpt2, args, work)
        del gpt2
    result["models"] = [zoo, large]
    result["growth_large_over_zoo"] = growth(zoo, large)
    result["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(result, indent=1)
    if args.out is not None:
        from interp.atomic import write_text

        write_text(args.out, text + "\n")
    print(text)
    return result


if __name__ == "__main__":
    main()

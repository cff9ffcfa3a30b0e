"""Tokens/s of one TopK SAE training step (forward, backward, Adam step) against the anchors.

    python -m benchmarks.sae_training --quick            # d=768, n=16384, k=32, batch 4096, fp32, CPU
    python -m benchmarks.sae_training --quick --dtype bfloat16
    python -m benchmarks.sae_training --profile          # where one interp step's time goes
    python -m benchmarks.sae_training --quick --impls interp bound --rounds 3 --n 65536   # the CPU target

Prints one JSON line: interp_tok_s (interp.sae: training_loss + decoder constraint + Adam),
sparsify_tok_s (eai-sparsify 1.3.3 SparseCoder; on CPU it uses its eager decoder, Triton off),
saelens_tok_s (sae-lens TopKTrainingSAE.training_forward_pass + Adam), and bound_tok_s (the
dense encoder forward bound: one x @ W_enc at that shape), all measured in this one run.
Anchors that are not installed are reported as null (pip install -e .[bench]).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import torch


WARMUP = 3  # untimed steps first: the optimizer's state and the allocator's caches settle in 2-3 steps


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(step, repeats: int, device: torch.device = torch.device("cpu")) -> float:
    """Median seconds of `step()` over `repeats` runs after WARMUP untimed ones (GPU work included)."""
    for _ in range(WARMUP):
        step()
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def _autocast(device: torch.device, dtype: torch.dtype):
    from interp.devices import autocast

    return autocast(device, dtype)


def interp_step(x, d, n, k, dtype, backend):
    """The trainer's own step (`interp.sae.trainer.train_step`: learning rate, loss, backward,
    decoder projection, Adam, renormalisation, statistics) on the batch x."""
    from interp.cache import Batch
    from interp.devices import autocast
    from interp.sae.config import SAEConfig, SAETrainConfig
    from interp.sae.module import SparseAutoencoder
    from interp.sae.stats import LatentStats
    from interp.sae.trainer import StepContext, adam, train_step

    train_cfg = SAETrainConfig(lr=1e-4, batch_size=x.shape[0], warmup_steps=0, dtype=dtype, backend=backend)
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=n, k=k), backend=backend, device=x.device)
    opt = adam(sae, train_cfg)  # the trainer's optimizer
    stats = LatentStats.new(n, x.device)
    batch = Batch(x, None, None, torch.arange(x.shape[0]))
    ctx = StepContext(train_cfg, total_steps=10**6, autocast=autocast(x.device, dtype))
    counter = iter(range(10**6))
    return lambda: train_step(sae, opt, stats, batch, next(counter), 0, ctx)


def sparsify_step(x, d, n, k, dtype):
    if x.device.type == "cpu":
        os.environ["SPARSIFY_DISABLE_TRITON"] = "1"  # its eager decoder: Triton cannot run on CPU
    from sparsify import SparseCoder
    from sparsify.config import SparseCoderConfig

    sae = SparseCoder(d, SparseCoderConfig(num_latents=n, k=k), device=x.device)
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)

    def step():
        with _autocast(x.device, dtype):
            out = sae(x)
            loss = out.fvu + out.auxk_loss / 32
        opt.zero_grad(set_to_none=True)
        loss.backward()
        sae.remove_gradient_parallel_to_decoder_directions()
        opt.step()
        sae.set_decoder_norm_to_unit_norm()
    return step


def saelens_step(x, d, n, k, dtype):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d, d_sae=n, k=k, device=str(x.device)))
    opt = torch.optim.Adam(sae.parameters(), lr=1e-4)
    dead = torch.zeros(n, dtype=torch.bool, device=x.device)

    def step():
        with _autocast(x.device, dtype):
            out = sae.training_forward_pass(TrainStepInput(x, {}, dead, 0, False))
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
    return step


def bound_step(x, d, n, dtype):
    W_enc = torch.randn(d, n, dtype=dtype, device=x.device) / d ** 0.5
    xs = x.to(dtype)
    return lambda: xs @ W_enc


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="3 timed steps per implementation (default 10)")
    p.add_argument("--d", type=int, default=768)
    p.add_argument("--n", type=int, default=16384)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    p.add_argument("--backend", default="auto", help="sae_kernels backend of the interp step")
    p.add_argument("--impls", nargs="+", default=["interp", "sparsify", "saelens", "bound"],
                   choices=["interp", "sparsify", "saelens", "bound"],
                   help="implementations to time, in this order (default: all four)")
    p.add_argument("--rounds", type=int, default=1,
                   help="alternate the implementations this many times; medians and per-round ratios (default: 1)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: torch's choice, one per core); 1 is steadier on a loaded machine")
    p.add_argument("--profile", action="store_true",
                   help="instead: print where one interp step's time goes (torch.profiler, top ops by self time)")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = getattr(torch, args.dtype)
    repeats = 3 if args.quick else 10
    x = torch.randn(args.batch, args.d)
    if args.profile:
        return _profile(interp_step(x, args.d, args.n, args.k, dtype, args.backend))
    from sae_kernels import resolve_backend

    result = {"d": args.d, "n": args.n, "k": args.k, "batch": args.batch, "dtype": args.dtype,
              "backend": resolve_backend(args.backend, torch.device("cpu")), "repeats": repeats,
              "threads": torch.get_num_threads(), "load_average": _load(), "torch": torch.__version__, "machine": platform.machine(),
              "cpu": _cpu_model()}
    steps = {"interp": lambda: interp_step(x, args.d, args.n, args.k, dtype, args.backend),
             "sparsify": lambda: sparsify_step(x, args.d, args.n, args.k, dtype),
             "saelens": lambda: saelens_step(x, args.d, args.n, args.k, dtype),
             "bound": lambda: bound_step(x, args.d, args.n, dtype)}
    made = {}
    for name in args.impls:
        try:
            made[name] = steps[name]()
        except ImportError as e:
            result[f"{name}_tok_s"], result[f"{name}_error"] = None, str(e)
    rounds = {name: [] for name in made}  # alternating rounds: a load spike hits every implementation alike
    for _ in range(args.rounds):
        for name, step in made.items():
            rounds[name].append(args.batch / timed(step, repeats))
    for name, values in rounds.items():
        result[f"{name}_tok_s"] = round(sorted(values)[len(values) // 2], 1)
    if "interp" in rounds:
        for name in ("sparsify", "saelens", "bound"):
            if name in rounds:
                result[f"interp_over_{name}"] = round(result["interp_tok_s"] / result[f"{name}_tok_s"], 3)
                if args.rounds > 1:
                    result[f"interp_over_{name}_per_round"] = [round(a / b, 3) for a, b in zip(rounds["interp"], rounds[name])]
    print(json.dumps(result))
    return result


def _load() -> list[float] | None:
    """The machine's 1/5/15-minute load averages at the start: figures from a shared machine need them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one): results differ by machine."""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _profile(step) -> dict:
    from torch.profiler import ProfilerActivity, profile

    step()  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        step()
        seconds = time.perf_counter() - t0
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    print(f"one interp step: {seconds:.3f} s (under the profiler)")
    return {"step_s": seconds}


if __name__ == "__main__":
    main()

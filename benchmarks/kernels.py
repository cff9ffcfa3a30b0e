"""Kernel benchmarks for sae_kernels (cuda_ext/) (not tests; outputs committed under benchmarks/results/).

CPU (default): peak extra memory and tokens/s of one TopK encode + backward at B=4096, d=768,
n=65536, k=32, per backend (reference, chunked, cpu); each measurement runs in a fresh
subprocess and reads the peak resident set (VmHWM, reset first) above what the inputs hold.

    python -m benchmarks.kernels                # writes benchmarks/results/kernels_cpu.json
    python -m benchmarks.kernels --gpu          # writes benchmarks/results/kernels_gpu.json

GPU: tokens/s of a full TopK SAE training step (encode, decode, MSE, backward, Adam step), bf16,
at (d=768, n=32768, k=32) and (d=2304, n=65536, k=32), reference vs triton backends, against the
compute bound of 6·d·n + 6·d·k FLOPs per token at the device's measured bf16 matmul throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def cpu_encode_backward(backend: str, B: int, d: int, n: int, k: int, repeats: int) -> dict:
    """One measurement, run inside a fresh process: peak MiB above the inputs, and tokens/s."""
    import sae_kernels

    torch.manual_seed(0)
    x = torch.randn(B, d)
    W_enc = (torch.randn(d, n) / d**0.5).requires_grad_()
    b_enc = torch.zeros(n, requires_grad=True)
    b_dec = torch.zeros(d, requires_grad=True)
    weights = torch.randn(B, k)
    # warm-up at a small batch (thread pools, lazy imports), then reset the peak counter
    out = sae_kernels.topk_encode(x[:8], W_enc, b_enc, b_dec, k, backend=backend)
    (out.top_acts * weights[:8]).sum().backward()
    W_enc.grad = b_enc.grad = b_dec.grad = None
    Path("/proc/self/clear_refs").write_text("5")
    baseline = _rss_kib("VmRSS")
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = sae_kernels.topk_encode(x, W_enc, b_enc, b_dec, k, backend=backend)
        (out.top_acts * weights).sum().backward()
        seconds.append(time.perf_counter() - start)
        del out
        W_enc.grad = b_enc.grad = b_dec.grad = None
    peak = _rss_kib("VmHWM")
    return {
        "backend": backend,
        "peak_extra_mib": round((peak - baseline) / 1024, 1),
        "seconds_per_step": round(min(seconds), 3),
        "tokens_per_s": round(B / min(seconds), 1),
    }


def run_cpu(B: int, d: int, n: int, k: int, repeats: int) -> dict:
    rows = []
    for backend in ("reference", "chunked", "cpu"):
        child = subprocess.run(
            [sys.executable, "-m", "benchmarks.kernels", "--child", backend,
             "--shape", str(B), str(d), str(n), str(k), "--repeats", str(repeats)],
            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[1],
            # large blocks straight from mmap, so freed memory leaves the resident set at once
            env={**os.environ, "MALLOC_MMAP_THRESHOLD_": "131072"},
        )
        rows.append(json.loads(child.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    ref, chunked, fused = rows
    return {
        "mode": "cpu",
        "what": "one topk_encode + backward, fp32; peak = VmHWM above the inputs",
        "shape": {"B": B, "d": d, "n": n, "k": k},
        "threads": torch.get_num_threads(),
        "results": rows,
        "chunked_peak_fraction_of_reference": round(chunked["peak_extra_mib"] / ref["peak_extra_mib"], 3),
        "chunked_speedup_vs_reference": round(chunked["tokens_per_s"] / ref["tokens_per_s"], 2),
        "cpu_peak_fraction_of_reference": round(fused["peak_extra_mib"] / ref["peak_extra_mib"], 3),
        "cpu_speedup_vs_reference": round(fused["tokens_per_s"] / ref["tokens_per_s"], 2),
        "cpu_speedup_vs_chunked": round(fused["tokens_per_s"] / chunked["tokens_per_s"], 2),
    }


def _matmul_flops_per_s(dtype: torch.dtype) -> float:
    a = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    b = torch.randn(8192, 8192, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * 8192**3 * reps / (time.perf_counter() - start)


def gpu_train_step_tokens_per_s(backend: str, B: int, d: int, n: int, k: int, steps: int) -> float:
    import sae_kernels

    torch.manual_seed(0)
    dev, dt = "cuda", torch.bfloat16
    W_enc = (torch.randn(d, n, device=dev) / d**0.5).to(dt).requires_grad_()
    W_dec = W_enc.detach().t().contiguous().requires_grad_()
    b_enc = torch.zeros(n, device=dev, dtype=dt, requires_grad=True)
    b_dec = torch.zeros(d, device=dev, dtype=dt, requires_grad=True)
    opt = torch.optim.Adam([W_enc, W_dec, b_enc, b_dec], lr=1e-4)
    x = torch.randn(B, d, device=dev, dtype=dt)

    def step():
        out = sae_kernels.topk_encode(x, W_enc, b_enc, b_dec, k, backend=backend)
        x_hat = sae_kernels.sparse_decode(out.top_acts, out.top_indices, W_dec, b_dec, backend=backend)
        loss = (x_hat.float() - x.float()).pow(2).sum(-1).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    return B * steps / (time.perf_counter() - start)


def run_gpu(B: int, steps: int) -> dict:
    flops = _matmul_flops_per_s(torch.bfloat16)
    rows = []
    for d, n, k in ((768, 32768, 32), (2304, 65536, 32)):
        bound = flops / (6 * d * n + 6 * d * k)
        for backend in ("reference", "triton"):
            tps = gpu_train_step_tokens_per_s(backend, B, d, n, k, steps)
            rows.append({"d": d, "n": n, "k": k, "backend": backend, "tokens_per_s": round(tps),
                         "bound_tokens_per_s": round(bound), "fraction_of_bound": round(tps / bound, 3)})
            print(rows[-1], flush=True)
    return {"mode": "gpu", "device": torch.cuda.get_device_name(), "batch": B,
            "bf16_matmul_tflops": round(flops / 1e12, 1), "results": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="GPU training-step benchmark (needs CUDA + triton)")
    parser.add_argument("--shape", nargs=4, type=int, metavar=("B", "D", "N", "K"), default=[4096, 768, 65536, 32])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20, help="GPU: timed training steps")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(cpu_encode_backward(args.child, *args.shape, args.repeats)))
        return
    if args.gpu:
        if not torch.cuda.is_available():
            raise SystemExit("--gpu needs a CUDA device")
        report, name = run_gpu(args.shape[0], args.steps), "kernels_gpu.json"
    else:
        report, name = run_cpu(*args.shape, args.repeats), "kernels_cpu.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS / (name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(RESULTS / name)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

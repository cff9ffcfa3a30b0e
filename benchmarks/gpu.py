"""The GPU check: one command that proves the CUDA path and measures it, on one GPU.

    python -m benchmarks.gpu --out benchmarks/results/gpu.json

On a CUDA machine (with `triton`), in this order and in about 3-5 minutes on one H100/H200:

1. the kernel tests against the reference, on the GPU: tests/cuda_ext's reference and Triton
   cases with their inputs on CUDA (INTERP_KERNEL_DEVICE=cuda) and Triton compiled, not
   interpreted (a pytest subprocess; its verdict and summary line go in the JSON);
2. one full training step each of interp (`interp.sae.trainer.train_step`, Triton kernels),
   sparsify and sae-lens, side by side at d=768, n=32768, k=32, B=4096, in float32 and
   bfloat16, as tokens/s, against the bound of 6·d·n + 6·d·k FLOPs per token at the dense
   matmul throughput measured on this GPU in the same run (and each one's ratio to it);
3. peak GPU memory of one TopK encode + decode + backward, fused (triton) against the
   reference (which materialises B x n), at n=65536 and n=262144.

Without CUDA it fails loudly (exit status 2 and a message), never skipping: a GPU check that
passes on a machine without a GPU proves nothing. Anchors that are not installed are null.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
KERNEL_TESTS = ("tests/cuda_ext/test_kernel_reference.py", "tests/cuda_ext/test_kernel_triton.py")
SHAPE = {"d": 768, "n": 32768, "k": 32, "batch": 4096}
MEMORY_LATENTS = (65536, 262144)


class NoGPU(SystemExit):
    """Raised (exit status 2) when the check is run where it cannot check anything."""


def require_cuda() -> None:
    """Fail loudly unless a CUDA device and the `triton` package are here."""
    if not torch.cuda.is_available():
        print(f"benchmarks.gpu: no CUDA device here (torch {torch.__version__}, "
              f"torch.cuda.is_available() is False); this check needs one GPU and does not skip", file=sys.stderr)
        raise NoGPU(2)
    try:
        import triton  # noqa: F401
    except ImportError as e:
        print(f"benchmarks.gpu: the triton package is missing ({e}); pip install triton", file=sys.stderr)
        raise NoGPU(2) from None


def kernel_tests() -> dict:
    """Run the kernel test files on the GPU in a subprocess; their verdict and summary."""
    env = dict(os.environ, INTERP_KERNEL_DEVICE="cuda", TRITON_INTERPRET="0")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *KERNEL_TESTS],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    failures = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    return {"files": list(KERNEL_TESTS), "passed": proc.returncode == 0, "summary": lines[-1] if lines else "",
            "failures": failures[:20], "seconds": round(time.perf_counter() - t0, 1)}


def matmul_flops_per_s(dtype: torch.dtype, size: int = 8192, reps: int = 20) -> float:
    """Dense matmul throughput of this GPU in `dtype` (FLOP/s), measured now."""
    a = torch.randn(size, size, device="cuda", dtype=dtype)
    b = torch.randn(size, size, device="cuda", dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * size**3 * reps / (time.perf_counter() - t0)


def training_steps(repeats: int) -> list[dict]:
    """tokens/s of interp, sparsify and sae-lens at SHAPE in float32 and bfloat16, with the FLOP bound."""
    from benchmarks import sae_training as bench

    d, n, k, B = SHAPE["d"], SHAPE["n"], SHAPE["k"], SHAPE["batch"]
    device = torch.device("cuda")
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        flops = matmul_flops_per_s(dtype)
        bound = flops / (6 * d * n + 6 * d * k)
        row = {"dtype": str(dtype).removeprefix("torch."), "matmul_tflops": round(flops / 1e12, 1),
               "bound_tok_s": round(bound)}
        torch.manual_seed(0)
        x = torch.randn(B, d, device=device)
        makers = {"interp": lambda: bench.interp_step(x, d, n, k, dtype, "auto"),
                  "sparsify": lambda: bench.sparsify_step(x, d, n, k, dtype),
                  "saelens": lambda: bench.saelens_step(x, d, n, k, dtype)}
        for name, make in makers.items():
            try:
                step = make()
            except ImportError as e:
                row[f"{name}_tok_s"], row[f"{name}_error"] = None, str(e)
                continue
            row[f"{name}_tok_s"] = round(B / bench.timed(step, repeats, device))
            row[f"{name}_over_bound"] = round(row[f"{name}_tok_s"] / bound, 3)
            del step
            torch.cuda.empty_cache()
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def encoder_memory() -> list[dict]:
    """Peak GPU MiB above the inputs of one TopK encode + decode + backward, triton vs reference."""
    import sae_kernels

    d, k, B = SHAPE["d"], SHAPE["k"], SHAPE["batch"]
    rows = []
    for n in MEMORY_LATENTS:
        for backend in ("triton", "reference"):
            torch.manual_seed(0)
            W_enc = (torch.randn(d, n, device="cuda") / d**0.5).requires_grad_()
            W_dec = W_enc.detach().t().contiguous().requires_grad_()
            b_enc = torch.zeros(n, device="cuda", requires_grad=True)
            b_dec = torch.zeros(d, device="cuda", requires_grad=True)
            x = torch.randn(B, d, device="cuda")
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            held = torch.cuda.memory_allocated()
            out = sae_kernels.topk_encode(x, W_enc, b_enc, b_dec, k, backend=backend)
            x_hat = sae_kernels.sparse_decode(out.top_acts, out.top_indices, W_dec, b_dec, backend=backend)
            (x_hat - x).pow(2).sum().backward()
            torch.cuda.synchronize()
            peak = (torch.cuda.max_memory_allocated() - held) / 2**20
            rows.append({"n": n, "backend": backend, "peak_mib_above_inputs": round(peak, 1)})
            print(json.dumps(rows[-1]), flush=True)
            del W_enc, W_dec, b_enc, b_dec, x, out, x_hat
            torch.cuda.empty_cache()
    for n in MEMORY_LATENTS:
        fused, ref = (next(r for r in rows if r["n"] == n and r["backend"] == b) for b in ("triton", "reference"))
        fused["reference_over_fused"] = round(ref["peak_mib_above_inputs"] / max(fused["peak_mib_above_inputs"], 1e-9), 1)
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/gpu.json", help="where the JSON goes (default: %(default)s)")
    p.add_argument("--repeats", type=int, default=10, help="timed steps per implementation (default: %(default)s)")
    args = p.parse_args(argv)
    require_cuda()
    warnings.filterwarnings("ignore")
    t0 = time.perf_counter()
    report = {"device": torch.cuda.get_device_name(), "torch": torch.__version__,
              "triton": __import__("triton").__version__, "shape": SHAPE}
    report["kernel_tests"] = kernel_tests()
    print(json.dumps(report["kernel_tests"]), flush=True)
    report["training_step"] = training_steps(args.repeats)
    report["encoder_memory"] = encoder_memory()
    report["seconds"] = round(time.perf_counter() - t0, 1)
    from interp.atomic import write_bytes

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_bytes(out, (json.dumps(report, indent=2) + "\n").encode())
    print(json.dumps(report, indent=2))
    if not report["kernel_tests"]["passed"]:
        print(f"benchmarks.gpu: kernel tests FAILED on {report['device']}: {report['kernel_tests']['summary']}",
              file=sys.stderr)
        raise SystemExit(1)
    return report


if __name__ == "__main__":
    main()

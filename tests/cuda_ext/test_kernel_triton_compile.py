"""The Triton kernels compile for a real GPU (sm_90, bf16) without one: the interpreter tests
check values, this checks that the kernels lower to PTX/SASS (ptxas ships with triton) and that
the TopK kernel's hot configuration keeps its running top-k in registers (no local-memory spills)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

_SCRIPT = r"""
import json, os, subprocess, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from sae_kernels import triton_kernels as tk

target = GPUTarget("cuda", 90, 32)
cuobjdump = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "cuobjdump")

def usage(kernel):
    path = os.environ["CUBIN_DIR"] + "/k.cubin"
    open(path, "wb").write(kernel.asm["cubin"])
    out = subprocess.run([cuobjdump, "-res-usage", path], capture_output=True, text=True, check=True).stdout
    line = next(l for l in out.splitlines() if "REG:" in l)
    return dict(kv.split(":") for kv in line.split() if ":" in kv)

topk_sig = {"xc_ptr": "*bf16", "w_ptr": "*bf16", "b_ptr": "*bf16", "dead_ptr": "*i8", "top_ptr": "*i64",
            "aux_ptr": "*i64", "B": "i32", "D": "i32", "N": "i32", "N_PER_SPLIT": "i32", "SPLITS": "i32",
            "stride_xb": "i32", "stride_xd": "i32", "stride_wd": "i32", "stride_wn": "i32",
            **{name: "constexpr" for name in ("K", "K_AUX", "USE_AUX", "BLOCK_B", "BLOCK_N", "BLOCK_D",
                                               "UPCAST", "PRECISION")}}
result = {}
for name, k_aux, warps in (("topk", 1, 4), ("topk_aux256", 256, 8)):
    consts = {"K": 32, "K_AUX": k_aux, "USE_AUX": k_aux > 1, "BLOCK_B": 32 if k_aux <= 64 else 16,
              "BLOCK_N": max(128, k_aux), "BLOCK_D": 64, "UPCAST": False, "PRECISION": "tf32"}
    kernel = triton.compile(ASTSource(fn=tk._topk_select_kernel, signature=topk_sig, constexprs=consts),
                            target=target, options={"num_warps": warps})
    result[name] = usage(kernel)
seg_sig = {"src_ptr": "*bf16", "idx_ptr": "*i64", "w_ptr": "*bf16", "off_ptr": "*i64", "out_ptr": "*bf16",
           "D": "i32", "stride_src": "i32", "stride_out_r": "i32", "stride_out_d": "i32",
           "BLOCK_E": "constexpr", "BLOCK_D": "constexpr"}
result["segment_sum"] = usage(triton.compile(ASTSource(fn=tk._segment_sum_kernel, signature=seg_sig,
                                                       constexprs={"BLOCK_E": 16, "BLOCK_D": 256}), target=target))
dot_sig = {"a_ptr": "*bf16", "a_idx_ptr": "*i64", "b_ptr": "*bf16", "b_idx_ptr": "*i64", "out_ptr": "*fp32",
           "E": "i32", "D": "i32", "stride_a": "i32", "stride_b": "i32", "BLOCK_E": "constexpr", "BLOCK_D": "constexpr"}
result["pair_dots"] = usage(triton.compile(ASTSource(fn=tk._pair_dots_kernel, signature=dot_sig,
                                                     constexprs={"BLOCK_E": 32, "BLOCK_D": 128}), target=target))
print(json.dumps(result))
"""


@pytest.mark.slow
def test_kernels_compile_for_sm90_without_spills(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env.update(CUBIN_DIR=str(tmp_path), TRITON_CACHE_DIR=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, env=env, timeout=300,
                         cwd=Path(__file__).resolve().parents[2])
    assert run.returncode == 0, run.stderr[-3000:]
    usage = json.loads(run.stdout.strip().splitlines()[-1])
    assert set(usage) == {"topk", "topk_aux256", "segment_sum", "pair_dots"}
    assert usage["topk"]["STACK"] == "0" and usage["topk_aux256"]["STACK"] == "0", usage

"""The Triton backend under TRITON_INTERPRET=1 (set in conftest) against the reference and
plain autograd. The interpreter is slow per program: small shapes, big blocks, tiny grids."""

import pytest
import torch

pytest.importorskip("triton")

import sae_kernels  # noqa: E402
from sae_kernels import triton_kernels  # noqa: E402
from kernel_cases import check_code, check_coo_decode, check_decode, check_topk  # noqa: E402

BACKEND = "triton"
pytestmark = pytest.mark.usefixtures("small_blocks")


def test_interpreter_is_active_on_cpu():
    assert sae_kernels.resolve_backend("triton", torch.device("cpu")) == "triton"


@pytest.mark.parametrize("k", [1, 5, 37])  # k = n = 37: not a power of two, not a block multiple
def test_topk_values_and_gradients(k):
    out, ref = check_topk(BACKEND, 20, 9, 37, k, dtype=torch.float32)
    assert torch.equal(out.top_indices, ref.top_indices)


def test_topk_across_several_latent_and_feature_blocks(monkeypatch):
    # 300 latents = blocks of 256 + 44; d = 150 = 128 + 22; 20 rows = 16 + 4
    out, ref = check_topk(BACKEND, 20, 150, 300, 6, dtype=torch.float32, dead=torch.arange(300) % 7 == 0, k_aux=9)
    assert torch.equal(out.top_indices, ref.top_indices)
    assert torch.equal(out.aux_indices, ref.aux_indices)


@pytest.mark.parametrize("n_dead,k_aux", [(3, 8), (20, 4)])
def test_topk_auxk_gradients(n_dead, k_aux):
    dead = torch.zeros(37, dtype=torch.bool)
    dead[torch.randperm(37, generator=torch.Generator().manual_seed(4))[:n_dead]] = True
    out, _ = check_topk(BACKEND, 20, 9, 37, 3, dtype=torch.float32, dead=dead, k_aux=k_aux)
    assert out.aux_acts.shape == (20, min(n_dead, k_aux))


def test_topk_empty_dead_mask_and_fp16():
    out, _ = check_topk(BACKEND, 20, 9, 37, 4, dtype=torch.float16, dead=torch.zeros(37, dtype=torch.bool), k_aux=4)
    assert out.aux_acts is None and out.top_acts.dtype == torch.float16


def test_topk_ties_keep_the_lower_index():
    out, _ = check_topk(BACKEND, 12, 6, 40, 5, dtype=torch.float32, ties=True)
    x = out.top_indices
    pairs = x // 2  # tied latents 2i and 2i+1; the odd one is kept only if the even one is
    for row, pair in zip(x.tolist(), pairs.tolist()):
        for idx, p in zip(row, pair):
            assert idx % 2 == 0 or 2 * p in row


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_sparse_decode(dtype):
    check_decode(BACKEND, 7, 30, 150, 5, dtype=dtype)


def test_sparse_decode_k1_and_no_bias():
    check_decode(BACKEND, 5, 9, 6, 1, dtype=torch.float32, with_bias=False)


def test_mutual_and_feature_choice_with_triton_backward():
    check_code(BACKEND, "mutual", 7, 5, 50, 23, dtype=torch.float32)
    capacity = torch.randint(0, 5, (50,), generator=torch.Generator().manual_seed(6))
    check_code(BACKEND, "feature", 9, 5, 50, capacity, dtype=torch.float32)


def test_coo_decode():
    check_coo_decode(BACKEND, 7, 30, 6, 13, dtype=torch.float32)


def test_sort_key_round_trip_orders_values_then_lower_index():
    values = torch.tensor([[0.5, -2.0, 0.5, -1e30, 3.0, -0.25, 0.0, 1e-30]])
    sel = triton_kernels.topk_select(values.new_ones(1, 1), values, torch.zeros(8), 8, None, 0)
    assert sel.top_indices.tolist() == [[4, 0, 2, 7, 6, 5, 1, 3]]
    assert torch.equal(sel.top_pre, values[:, [4, 0, 2, 7, 6, 5, 1, 3]])  # bit-exact round trip


@pytest.mark.parametrize("splits", [1, 3])
def test_fused_selection_matches_block_selection_for_any_latent_split(splits):
    from sae_kernels import selection

    g = torch.Generator().manual_seed(8)
    xc, W_enc, b_enc = torch.randn(5, 7, generator=g), torch.randn(7, 70, generator=g), torch.randn(70, generator=g)
    dead = torch.arange(0, 70, 3)
    fused = triton_kernels.topk_select(xc, W_enc, b_enc, 6, dead, 10, block_n=16, splits=splits)
    blocks = selection.topk(xc, W_enc, b_enc, 6, dead, 10)
    for got, expected in zip(fused, blocks):
        torch.testing.assert_close(got, expected)


def test_large_k_falls_back_to_block_selection_with_the_same_result():
    out, ref = check_topk(BACKEND, 4, 5, 300, triton_kernels.MAX_FUSED_K + 3, dtype=torch.float32)
    assert torch.equal(out.top_indices, ref.top_indices)

"""The chunked torch backend and the fused CPU backend (its C++ selection and dot products)
against the reference and plain autograd, in latent blocks of 16."""

import pytest
import torch

from sae_kernels import cpu_ext
from kernel_cases import check_code, check_coo_decode, check_decode, check_topk

pytestmark = pytest.mark.usefixtures("small_blocks")


@pytest.fixture(params=["chunked", "cpu"])
def backend(request):
    if request.param == "cpu" and not cpu_ext.available():
        pytest.skip(f"fused CPU kernels unavailable: {cpu_ext.reason()}")
    return request.param


@pytest.mark.parametrize("k", [1, 7, 50])  # k = n included; n = 50 is not a multiple of the block
def test_topk_values_and_gradients(backend, k):
    out, ref = check_topk(backend, 9, 5, 50, k)
    assert torch.equal(out.top_indices, ref.top_indices)


@pytest.mark.parametrize("n_dead,k_aux", [(5, 3), (5, 8), (40, 16)])
def test_topk_with_auxk_trains_the_encoder_like_autograd(backend, n_dead, k_aux):
    dead = torch.zeros(50, dtype=torch.bool)
    dead[torch.randperm(50, generator=torch.Generator().manual_seed(3))[:n_dead]] = True
    out, _ = check_topk(backend, 9, 5, 50, 4, dead=dead, k_aux=k_aux)
    assert out.aux_acts.shape == (9, min(k_aux, n_dead))


def test_topk_with_empty_dead_mask_has_no_aux(backend):
    out, _ = check_topk(backend, 9, 5, 50, 4, dead=torch.zeros(50, dtype=torch.bool), k_aux=8)
    assert out.aux_acts is None


def test_topk_with_ties(backend):
    check_topk(backend, 6, 4, 40, 5, ties=True, dead=torch.arange(40) % 3 == 0, k_aux=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_topk_low_precision(backend, dtype):
    dead = torch.arange(50) % 4 == 0
    check_topk(backend, 9, 8, 50, 6, dtype=dtype, dead=dead, k_aux=5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("k", [1, 5])
def test_sparse_decode(backend, dtype, k):
    check_decode(backend, 7, 30, 6, k, dtype=dtype)


def test_sparse_decode_without_bias_and_k_equal_n(backend):
    check_decode(backend, 4, 9, 5, 9, with_bias=False)


@pytest.mark.parametrize("budget", [0, 1, 23, 10_000])
def test_mutual_choice(backend, budget):
    check_code(backend, "mutual", 7, 5, 50, budget)


def test_mutual_choice_ties_and_fp32(backend):
    check_code(backend, "mutual", 6, 4, 40, 17, ties=True)
    check_code(backend, "mutual", 7, 5, 50, 30, dtype=torch.float32)


def test_feature_choice(backend):
    capacity = torch.randint(0, 12, (50,), generator=torch.Generator().manual_seed(5))
    check_code(backend, "feature", 9, 5, 50, capacity)
    check_code(backend, "feature", 9, 5, 50, torch.zeros(50, dtype=torch.int64))
    check_code(backend, "feature", 9, 5, 50, torch.full((50,), 9), dtype=torch.float32)


def test_feature_choice_ties(backend):
    check_code(backend, "feature", 6, 4, 40, torch.full((40,), 2), ties=True)


@pytest.mark.parametrize("budget", [0, 13, 10_000])
def test_coo_decode(backend, budget):
    check_coo_decode(backend, 7, 30, 6, budget)


@pytest.mark.parametrize("a_dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("b_dtype", [torch.float32, torch.bfloat16])
def test_fused_pair_dots_match_torch(a_dtype, b_dtype):
    if not cpu_ext.available():
        pytest.skip(f"fused CPU kernels unavailable: {cpu_ext.reason()}")
    from sae_kernels import cpu_backend, segment_ops

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(7, 37, generator=g).to(a_dtype), torch.randn(11, 37, generator=g).to(b_dtype)
    a_idx, b_idx = torch.randint(0, 7, (50,), generator=g), torch.randint(0, 11, (50,), generator=g)
    out = cpu_backend._Ops.pair_dots(a, a_idx, b, b_idx)
    want = segment_ops.pair_dots(a.float(), a_idx, b.float(), b_idx)
    assert out.dtype == torch.promote_types(a_dtype, b_dtype)
    torch.testing.assert_close(out.float(), want, rtol=1e-2 if out.dtype == torch.bfloat16 else 1e-5, atol=1e-2)


def test_fused_selection_equals_torch_selection_across_many_blocks():
    """Same chosen latents and values as the torch selection, with AuxK, over 8 blocks of 16."""
    if not cpu_ext.available():
        pytest.skip(f"fused CPU kernels unavailable: {cpu_ext.reason()}")
    from sae_kernels import cpu_backend, selection

    g = torch.Generator().manual_seed(6)
    xc, W, b = torch.randn(33, 12, generator=g), torch.randn(12, 128, generator=g), torch.randn(128, generator=g)
    dead = torch.arange(0, 128, 5)
    want = selection.topk(xc, W, b, 9, dead, 6)
    got = cpu_backend.topk(xc, W, b, 9, dead, 6)
    for name in want._fields:
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=0, atol=0)


def test_nan_input_is_selected_like_torch_topk(backend):
    """NaN ranks above every number, as in torch.topk, so a NaN input reaches the loss."""
    import sae_kernels
    from sae_kernels import reference

    g = torch.Generator().manual_seed(8)
    x, W, b_enc, b_dec = torch.randn(5, 4, generator=g), torch.randn(4, 40, generator=g), torch.zeros(40), torch.zeros(4)
    x[2, 1] = float("nan")
    out = sae_kernels.topk_encode(x, W, b_enc, b_dec, 3, backend=backend)
    ref = reference.topk_encode(x, W, b_enc, b_dec, 3)
    assert out.top_acts[2].isnan().all() and ((out.top_indices >= 0) & (out.top_indices < 40)).all()
    torch.testing.assert_close(out.top_acts, ref.top_acts, equal_nan=True)

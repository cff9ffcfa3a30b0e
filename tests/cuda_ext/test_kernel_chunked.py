"""The chunked torch backend against the reference and plain autograd (latent blocks of 16)."""

import pytest
import torch

from kernel_cases import check_code, check_coo_decode, check_decode, check_topk

pytestmark = pytest.mark.usefixtures("small_blocks")
BACKEND = "chunked"


@pytest.mark.parametrize("k", [1, 7, 50])  # k = n included; n = 50 is not a multiple of the block
def test_topk_values_and_gradients(k):
    out, ref = check_topk(BACKEND, 9, 5, 50, k)
    assert torch.equal(out.top_indices, ref.top_indices)


@pytest.mark.parametrize("n_dead,k_aux", [(5, 3), (5, 8), (40, 16)])
def test_topk_with_auxk_trains_the_encoder_like_autograd(n_dead, k_aux):
    dead = torch.zeros(50, dtype=torch.bool)
    dead[torch.randperm(50, generator=torch.Generator().manual_seed(3))[:n_dead]] = True
    out, _ = check_topk(BACKEND, 9, 5, 50, 4, dead=dead, k_aux=k_aux)
    assert out.aux_acts.shape == (9, min(k_aux, n_dead))


def test_topk_with_empty_dead_mask_has_no_aux():
    out, _ = check_topk(BACKEND, 9, 5, 50, 4, dead=torch.zeros(50, dtype=torch.bool), k_aux=8)
    assert out.aux_acts is None


def test_topk_with_ties():
    check_topk(BACKEND, 6, 4, 40, 5, ties=True, dead=torch.arange(40) % 3 == 0, k_aux=4)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_topk_low_precision(dtype):
    dead = torch.arange(50) % 4 == 0
    check_topk(BACKEND, 9, 8, 50, 6, dtype=dtype, dead=dead, k_aux=5)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16])
@pytest.mark.parametrize("k", [1, 5])
def test_sparse_decode(dtype, k):
    check_decode(BACKEND, 7, 30, 6, k, dtype=dtype)


def test_sparse_decode_without_bias_and_k_equal_n():
    check_decode(BACKEND, 4, 9, 5, 9, with_bias=False)


@pytest.mark.parametrize("budget", [0, 1, 23, 10_000])
def test_mutual_choice(budget):
    check_code(BACKEND, "mutual", 7, 5, 50, budget)


def test_mutual_choice_ties_and_fp32():
    check_code(BACKEND, "mutual", 6, 4, 40, 17, ties=True)
    check_code(BACKEND, "mutual", 7, 5, 50, 30, dtype=torch.float32)


def test_feature_choice():
    capacity = torch.randint(0, 12, (50,), generator=torch.Generator().manual_seed(5))
    check_code(BACKEND, "feature", 9, 5, 50, capacity)
    check_code(BACKEND, "feature", 9, 5, 50, torch.zeros(50, dtype=torch.int64))
    check_code(BACKEND, "feature", 9, 5, 50, torch.full((50,), 9), dtype=torch.float32)


def test_feature_choice_ties():
    check_code(BACKEND, "feature", 6, 4, 40, torch.full((40,), 2), ties=True)


@pytest.mark.parametrize("budget", [0, 13, 10_000])
def test_coo_decode(budget):
    check_coo_decode(BACKEND, 7, 30, 6, budget)

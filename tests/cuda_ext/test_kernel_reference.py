"""Spec properties of the pure-torch reference kernels (sae_kernels.reference)."""

import pytest
import torch

from sae_kernels import reference


def _encoder(B=6, d=5, n=12, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, d, generator=g, dtype=dtype)
    W_enc = torch.randn(d, n, generator=g, dtype=dtype, requires_grad=True)
    b_enc = (0.1 * torch.randn(n, generator=g, dtype=dtype)).requires_grad_()
    b_dec = (0.1 * torch.randn(d, generator=g, dtype=dtype)).requires_grad_()
    return x, W_enc, b_enc, b_dec


def test_topk_support_is_argtopk_of_pre_and_acts_are_relu():
    x, W_enc, b_enc, b_dec = _encoder()
    out = reference.topk_encode(x, W_enc, b_enc, b_dec, 4)
    pre = (x - b_dec) @ W_enc + b_enc
    expected_vals, _ = pre.sort(dim=-1, descending=True)
    torch.testing.assert_close(out.top_acts, expected_vals[:, :4].relu())
    torch.testing.assert_close(pre.gather(1, out.top_indices).relu(), out.top_acts)
    assert out.aux_acts is None and out.aux_indices is None


def test_aux_selects_only_dead_latents_and_trains_the_encoder_there():
    x, W_enc, b_enc, b_dec = _encoder()
    dead = torch.zeros(12, dtype=torch.bool)
    dead[[1, 4, 7]] = True
    out = reference.topk_encode(x, W_enc, b_enc, b_dec, 2, dead_mask=dead, k_aux=8)
    assert out.aux_indices.shape == (6, 3)  # min(k_aux, n_dead)
    assert set(out.aux_indices.unique().tolist()) <= {1, 4, 7}
    out.aux_acts.sum().backward()
    alive_cols = (~dead).nonzero().squeeze(1)
    assert W_enc.grad[:, alive_cols].abs().max() == 0
    assert W_enc.grad[:, dead].abs().max() > 0


@pytest.mark.parametrize("dead", [None, torch.zeros(12, dtype=torch.bool)])
def test_aux_is_off_without_dead_latents(dead):
    x, W_enc, b_enc, b_dec = _encoder()
    out = reference.topk_encode(x, W_enc, b_enc, b_dec, 3, dead_mask=dead, k_aux=4)
    assert out.aux_acts is None and out.aux_indices is None


def test_sparse_decode_equals_dense_matmul():
    g = torch.Generator().manual_seed(1)
    acts = torch.rand(4, 3, generator=g, dtype=torch.float64)
    idx = torch.tensor([[0, 5, 2], [1, 1, 3], [7, 6, 5], [4, 0, 2]])
    W_dec = torch.randn(8, 5, generator=g, dtype=torch.float64)
    b_dec = torch.randn(5, generator=g, dtype=torch.float64)
    dense = torch.zeros(4, 8, dtype=torch.float64).scatter_add(1, idx, acts)
    torch.testing.assert_close(reference.sparse_decode(acts, idx, W_dec, b_dec), dense @ W_dec + b_dec)


def test_mutual_choice_keeps_exactly_the_top_budget_positive_entries():
    x, W_enc, b_enc, b_dec = _encoder(B=5, n=9)
    acts = ((x - b_dec) @ W_enc + b_enc).relu()
    budget = 7
    code = reference.mutual_choice_encode(x, W_enc, b_enc, b_dec, budget)
    assert code.values.numel() == min(budget, int((acts > 0).sum()))
    threshold = acts.flatten().sort(descending=True).values[budget - 1]
    assert bool((code.values >= threshold).all())
    torch.testing.assert_close(code.values, acts[code.rows, code.cols])
    order = code.rows * 9 + code.cols
    assert bool((order[1:] > order[:-1]).all())  # ordered by (row, col)


def test_mutual_choice_with_one_token_equals_topk():
    x, W_enc, b_enc, b_dec = _encoder(B=1, n=10)
    b_enc.data += 5.0  # all positive, so the top k are all kept
    code = reference.mutual_choice_encode(x, W_enc, b_enc, b_dec, 4)
    top = reference.topk_encode(x, W_enc, b_enc, b_dec, 4)
    assert set(code.cols.tolist()) == set(top.top_indices[0].tolist())


def test_feature_choice_column_counts_follow_capacity():
    x, W_enc, b_enc, b_dec = _encoder(B=8, n=6)
    capacity = torch.tensor([0, 1, 2, 3, 8, 100])
    acts = ((x - b_dec) @ W_enc + b_enc).relu()
    code = reference.feature_choice_encode(x, W_enc, b_enc, b_dec, capacity)
    counts = torch.bincount(code.cols, minlength=6)
    expected = torch.minimum(capacity, (acts > 0).sum(0))
    assert counts.tolist() == expected.tolist()
    for i in range(6):
        kept = code.values[code.cols == i]
        if kept.numel():
            assert kept.min() >= acts[:, i].sort(descending=True).values[kept.numel() - 1]


def test_coo_decode_equals_dense_matmul():
    x, W_enc, b_enc, b_dec = _encoder(B=5, n=9)
    code = reference.mutual_choice_encode(x, W_enc, b_enc, b_dec, 11)
    W_dec = torch.randn(9, 5, dtype=torch.float64)
    dense = code.to_dense(9)
    torch.testing.assert_close(reference.coo_decode(code, W_dec, b_dec), dense @ W_dec + b_dec)

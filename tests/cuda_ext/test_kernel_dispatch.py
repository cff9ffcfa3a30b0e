"""Argument checks and backend resolution of sae_kernels.dispatch."""

import pytest
import torch

import sae_kernels


def _args(B=3, d=4, n=6):
    return torch.randn(B, d), torch.randn(d, n), torch.zeros(n), torch.zeros(d)


def test_unknown_backend_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match="backend='cuda'"):
        sae_kernels.topk_encode(*_args(), 2, backend="cuda")


@pytest.mark.parametrize("k", [0, 7])
def test_k_outside_1_to_n_is_refused(k):
    with pytest.raises(ValueError, match=f"k={k}"):
        sae_kernels.topk_encode(*_args(), k)


def test_wrong_shapes_are_refused_naming_the_argument():
    x, W_enc, b_enc, b_dec = _args()
    with pytest.raises(ValueError, match="W_enc"):
        sae_kernels.topk_encode(x, W_enc.T, b_enc, b_dec, 2)
    with pytest.raises(ValueError, match="b_enc"):
        sae_kernels.topk_encode(x, W_enc, b_dec, b_dec, 2)
    with pytest.raises(ValueError, match="dead_mask"):
        sae_kernels.topk_encode(x, W_enc, b_enc, b_dec, 2, dead_mask=torch.zeros(6), k_aux=1)
    with pytest.raises(ValueError, match="capacity"):
        sae_kernels.feature_choice_encode(x, W_enc, b_enc, b_dec, torch.full((6,), -1))
    with pytest.raises(ValueError, match="indices must be int64"):
        sae_kernels.sparse_decode(torch.ones(3, 2), torch.ones(3, 2, dtype=torch.int32), torch.randn(6, 4))


def test_auto_resolves_to_a_cpu_backend_on_cpu():
    from sae_kernels import cpu_ext

    want = "cpu" if cpu_ext.available() else "chunked"
    assert sae_kernels.resolve_backend("auto", torch.device("cpu")) == want


def test_out_of_range_indices_are_refused():
    W_dec = torch.randn(6, 4)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 6\)"):
        sae_kernels.sparse_decode(torch.ones(2, 1), torch.tensor([[0], [6]]), W_dec)
    code = sae_kernels.SparseCode(torch.ones(2), torch.tensor([0, 3]), torch.tensor([1, 2]), 3)
    with pytest.raises(ValueError, match="code.rows"):
        sae_kernels.coo_decode(code, W_dec)


@pytest.mark.parametrize("backend", ["chunked", "reference"])
def test_coo_decode_accepts_entries_in_any_order(backend):
    g = torch.Generator().manual_seed(2)
    values = torch.rand(12, generator=g)
    rows, cols = torch.randint(0, 5, (12,), generator=g), torch.randint(0, 9, (12,), generator=g)
    W_dec = torch.randn(9, 4, generator=g)
    dense = torch.zeros(5, 9).index_put((rows, cols), values, accumulate=True)
    out = sae_kernels.coo_decode(sae_kernels.SparseCode(values, rows, cols, 5), W_dec, backend=backend)
    torch.testing.assert_close(out, dense @ W_dec)


def test_cpu_backend_is_refused_for_other_devices_and_explains_an_unavailable_build(monkeypatch):
    from sae_kernels import cpu_ext

    with pytest.raises(ValueError, match="backend='cpu' cannot run here: the tensors are on meta"):
        sae_kernels.resolve_backend("cpu", torch.device("meta"))
    monkeypatch.setattr(cpu_ext, "_load", lambda: (None, "no C++ compiler ('c++' is not on PATH)"))
    with pytest.raises(ValueError, match="no C\\+\\+ compiler.*use backend='chunked'"):
        sae_kernels.resolve_backend("cpu", torch.device("cpu"))
    assert sae_kernels.resolve_backend("auto", torch.device("cpu")) == "chunked"


def test_auto_picks_triton_for_cuda_tensors_and_the_reference_for_meta():
    import importlib.util

    expected = "triton" if importlib.util.find_spec("triton") else "chunked"
    assert sae_kernels.resolve_backend("auto", torch.device("cuda")) == expected
    assert sae_kernels.resolve_backend("auto", torch.device("cuda", 1)) == expected
    assert sae_kernels.resolve_backend("auto", torch.device("meta")) == "reference"  # shape-only: no value reads


def test_an_sae_on_cuda_would_train_with_triton(monkeypatch):
    """Without a GPU: the trainer's device and the SAE's backend lead to the Triton kernels."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        pytest.skip("triton is not installed")
    from interp.sae.config import SAETrainConfig

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    cfg = SAETrainConfig(device="cuda")  # the check passes on a CUDA machine
    assert cfg.backend == "auto"
    assert sae_kernels.resolve_backend(cfg.backend, cfg.torch_device) == "triton"

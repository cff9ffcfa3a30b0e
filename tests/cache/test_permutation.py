import numpy as np
import pytest

from interp.cache.permutation import Permutation


@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097, 100_003])
def test_a_bijection_of_the_range(n):
    values = Permutation(n, (0, 1))(np.arange(n))
    assert values.dtype == np.int64
    assert np.array_equal(np.sort(values), np.arange(n))


def test_keys_give_different_orders_and_the_same_key_the_same_order():
    a, b, c = (Permutation(10_000, key)(np.arange(10_000)) for key in [(1, 0), (1, 0), (1, 1)])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert (a == np.arange(10_000)).mean() < 0.01  # few fixed points, like a random permutation


def test_evaluated_pointwise_on_a_huge_range_and_well_mixed():
    perm = Permutation(10**12, (4, 2))
    head = perm(np.arange(4096))
    assert head.min() >= 0 and head.max() < 10**12 and len(np.unique(head)) == 4096
    assert np.array_equal(perm(np.arange(100, 200)), head[100:200])  # point-wise: any window, same values
    # consecutive positions land far apart: their deciles of the range look uniform
    counts = np.bincount(head * 10 // 10**12, minlength=10)
    assert counts.min() > 300


def test_bad_size():
    with pytest.raises(ValueError, match="n=0"):
        Permutation(0, (0,))

"""A seeded pseudo-random permutation of [0, n) evaluated point-wise, in O(1) memory.

The reader needs a fresh shuffle of every token of the store each epoch. Materialising
`np.random.permutation(n)` costs 8 bytes per token (8 GB for a billion-token store) and
makes every rank build the whole permutation to take its block. Instead, position `j` of
an epoch's order is `permute(j)`: a balanced Feistel network over the smallest domain
[0, 4**m) that holds n (so the two halves have m bits each), with cycle walking to stay
inside [0, n). A Feistel network is a bijection of its domain for any round function;
cycle walking keeps it a bijection of [0, n); since 4**m < 4n, fewer than four walks are
expected per element. The round function is the SplitMix64 finaliser of the half keyed by
(seed, epoch, round); four rounds of a pseudo-random function make a strong pseudo-random
permutation (Luby-Rackoff), far more mixing than SGD needs. It runs on the reader's prefetch
thread; `python -m benchmarks.cache` reports the reader's GB/s with it.
"""

from __future__ import annotations

import numpy as np

ROUNDS = 4

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


class Permutation:
    """A bijection of [0, n) chosen by `key` (any sequence of non-negative ints)."""

    def __init__(self, n: int, key: tuple[int, ...]):
        if n < 1:
            raise ValueError(f"n={n} must be positive")
        self.n = n
        self.half_bits = max(1, (int(n - 1).bit_length() + 1) // 2)
        self._mask = np.uint64((1 << self.half_bits) - 1)
        seed = np.random.SeedSequence([int(k) for k in key]).generate_state(ROUNDS, dtype=np.uint64)
        self._round_keys = [np.uint64(k) for k in seed]

    def __call__(self, positions: np.ndarray) -> np.ndarray:
        """`permute(positions)`: int64 array of the same shape, values in [0, n)."""
        x = np.asarray(positions, dtype=np.uint64)
        out = self._feistel(x)
        outside = out >= np.uint64(self.n)
        while outside.any():  # cycle walking: re-encrypt until inside [0, n)
            out[outside] = self._feistel(out[outside])
            outside = out >= np.uint64(self.n)
        return out.astype(np.int64)

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        bits, mask = np.uint64(self.half_bits), self._mask
        left, right = x >> bits, x & mask
        with np.errstate(over="ignore"):
            for key in self._round_keys:
                left, right = right, left ^ (_mix((right + _GOLDEN) ^ key) & mask)
        return (left << bits) | right

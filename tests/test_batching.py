"""Equal-length batching: every index once, input order within a length, chunks of at most
batch_size, never two lengths (or two keys) in one batch."""

import pytest
import torch

from interp.batching import equal_length_batches


def _seqs(lengths):
    return [torch.full((n,), i) for i, n in enumerate(lengths)]  # row i is filled with i


def test_groups_hold_one_length_and_keep_input_order():
    lengths = [3, 5, 3, 2, 5, 3, 2]
    batches = list(equal_length_batches(_seqs(lengths), batch_size=8))
    assert [b.indices for b in batches] == [[0, 2, 5], [1, 4], [3, 6]]  # lengths in first-seen order
    for b in batches:
        assert b.tokens.shape == (len(b.indices), lengths[b.indices[0]])
        assert b.tokens[:, 0].tolist() == b.indices  # row j is input sequence indices[j]


def test_chunks_of_batch_size_cover_every_index_once():
    lengths = [4] * 7 + [1] * 3
    batches = list(equal_length_batches(_seqs(lengths), batch_size=3))
    assert [b.indices for b in batches] == [[0, 1, 2], [3, 4, 5], [6], [7, 8, 9]]
    assert sorted(i for b in batches for i in b.indices) == list(range(len(lengths)))


def test_results_reassemble_in_input_order():
    seqs = _seqs([2, 6, 1, 6, 2, 4])
    out = torch.empty(len(seqs))
    for b in equal_length_batches(seqs, batch_size=1):
        out[b.indices] = b.tokens.sum(1).float() / b.tokens.shape[1]  # per row: its own index
    assert out.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_keys_split_a_length_group():
    seqs = _seqs([3, 3, 3, 3])
    batches = list(equal_length_batches(seqs, keys=["a", "b", "a", "b"]))
    assert [b.indices for b in batches] == [[0, 2], [1, 3]]


@pytest.mark.parametrize("kwargs,message", [
    (dict(batch_size=0), "batch_size=0 must be a positive integer"),
    (dict(keys=["a"]), "keys has 1 labels for 2 sequences"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        list(equal_length_batches(_seqs([2, 2]), **kwargs))


def test_a_sequence_must_be_one_dimensional():
    with pytest.raises(ValueError, match=r"sequences\[1\] is \(1, 2\)"):
        list(equal_length_batches([torch.zeros(2), torch.zeros(1, 2)]))

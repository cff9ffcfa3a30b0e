import torch

from interp.tasks import ioi


def test_deterministic_in_seed():
    assert ioi.generate(50, "train", seed=3) == ioi.generate(50, "train", seed=3)
    assert ioi.generate(50, "train", seed=3) != ioi.generate(50, "train", seed=4)


def test_splits_share_no_names_or_templates():
    train, held = ioi.generate(300, "train"), ioi.generate(300, "heldout")
    assert {p.io for p in train} | {p.s for p in train} <= set(ioi.names("train"))
    assert {p.io for p in held} | {p.s for p in held} <= set(ioi.names("heldout"))
    assert not set(ioi.names("train")) & set(ioi.names("heldout"))
    assert not {p.template for p in train} & {p.template for p in held}
    assert len(ioi.names("train")) + len(ioi.names("heldout")) >= 100


def test_pair_structure():
    for p in ioi.generate(100, "train", seed=1):
        assert p.io != p.s
        assert p.prompt.count(p.io) == 1 and p.prompt.count(p.s) == 2  # IO once, S repeated
        assert p.corrupt.count(p.io) == 2 and p.corrupt.count(p.s) == 1  # the roles swap
        assert p.answer == " " + p.io
    orders = [p.order for p in ioi.generate(10)]
    assert orders.count("ABBA") == orders.count("BABA") == 5


def test_logit_diff():
    logits = torch.zeros(2, 3, 5)
    logits[0, -1, 1], logits[1, -1, 2] = 2.0, 5.0
    diff = ioi.logit_diff(logits, torch.tensor([1, 3]), torch.tensor([0, 2]))
    assert diff.tolist() == [2.0, -5.0]


def test_bad_input():
    import pytest

    with pytest.raises(ValueError, match="split='test'"):
        ioi.generate(5, "test")
    with pytest.raises(ValueError, match="n=0"):
        ioi.generate(0)
    with pytest.raises(ValueError, match="not a train template"):
        ioi.generate(5, "train", template=ioi.HELDOUT_TEMPLATES[0])


def test_names_from_another_split():
    mixed = ioi.generate(60, "heldout", names_split="train")
    assert {p.template for p in mixed} <= set(ioi.templates("heldout"))
    assert {p.io for p in mixed} | {p.s for p in mixed} <= set(ioi.names("train"))
    assert [p.prompt for p in ioi.generate(20, "train", names_split="train")] == \
        [p.prompt for p in ioi.generate(20, "train")]

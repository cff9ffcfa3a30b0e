import pytest
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


def test_scores_match_one_prompt_at_a_time(zoo_dense):
    prompts = ioi.generate(12, "heldout", seed=5)
    io, s = ioi.answer_ids(zoo_dense, prompts)
    one_by_one = torch.cat([ioi.logit_diff(zoo_dense(zoo_dense.to_tokens(p.prompt)), io[i:i + 1], s[i:i + 1])
                            for i, p in enumerate(prompts)])
    scores = ioi.ioi_scores(zoo_dense, prompts, batch_size=5)
    assert scores.accuracy == (one_by_one > 0).float().mean().item()
    assert scores.logit_diff == pytest.approx(one_by_one.mean().item(), abs=1e-4)
    accuracy, logit_diff = scores  # a named tuple: unpacks as (accuracy, mean logit difference)
    assert accuracy > 0.9 and logit_diff > 0


def test_scores_need_prompts(zoo_dense):
    with pytest.raises(ValueError, match="prompts is empty"):
        ioi.ioi_scores(zoo_dense, [])

"""fTRI scoring: a planted behaviour expert ranks first; scores flip with the classes."""

import numpy as np
import pytest

from interp import moe
from interp.tasks import refusal

POSITIVE = [True, False] * 6


@pytest.mark.parametrize("statistic", moe.STATISTICS)
def test_planted_behaviour_expert_ranks_first(make_capture, statistic):
    scores = moe.score_experts(make_capture(POSITIVE, planted=(1, 2)), POSITIVE, statistic)
    assert moe.top_experts(scores, 1) == [(1, 2)]
    assert scores.iloc[0].score > 0.5 and list(scores["rank"]) == list(range(1, 9))
    assert scores.score.is_monotonic_decreasing


def test_swapping_classes_flips_the_scores_sign(make_capture):
    cap = make_capture(POSITIVE)
    a = moe.score_experts(cap, POSITIVE).set_index(["layer", "expert"]).sort_index()
    b = moe.score_experts(cap, [not p for p in POSITIVE]).set_index(["layer", "expert"]).sort_index()
    np.testing.assert_allclose(a.score, -b.score)
    assert moe.top_experts(moe.score_experts(cap, [not p for p in POSITIVE]), 1) != [(1, 2)]


def test_last_tokens_window(make_capture):
    cap = make_capture(POSITIVE)
    rates = moe.prompt_rates(cap, "count", last=2)
    assert rates.shape == (12, 2, 4)
    assert np.allclose(rates.sum(-1), 2)  # k experts per token
    assert (rates[np.array(POSITIVE), 1, 2] == 1).all()


def test_bad_classes_and_arguments(make_capture):
    cap = make_capture(POSITIVE)
    with pytest.raises(ValueError, match="both classes"):
        moe.score_experts(cap, [True] * 12)
    with pytest.raises(ValueError, match="has 3 entries but the capture has 12"):
        moe.score_experts(cap, [True, False, True])
    with pytest.raises(ValueError, match="statistic='max'"):
        moe.score_experts(cap, POSITIVE, statistic="max")
    with pytest.raises(ValueError, match="n=9 must be an integer in 1..8"):
        moe.top_experts(moe.score_experts(cap, POSITIVE), 9)


def test_zoo_moe_planted_refusal_expert_ranks_first(zoo_moe):
    # 100 prompts per kind, as `interp moe scan` and the report: with 24-40 the selection-count
    # statistic lets expert (3, 5), picked more often on harmful requests, edge out the planted one
    prompts = [p.prompt for kind in ("harmful", "benign") for p in refusal.generate(100, kind, "train")]
    classes = moe.refused(zoo_moe, prompts)
    assert classes == [True] * 100 + [False] * 100
    capture = moe.capture_routing(zoo_moe, prompts)
    scores = moe.score_experts(capture, classes)
    assert moe.top_experts(scores, 1) == [(2, 5)]
    assert moe.top_experts(moe.score_experts(capture, classes, statistic="weight"), 1) == [(2, 5)]
    assert moe.score_matrix(scores).shape == (4, 8)

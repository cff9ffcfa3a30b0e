"""ExpertMap driven programmatically: the map is interp.moe.score_matrix, clicks switch experts
off or force them on, the replies and refusal rate come from interp.moe.replies under the
library's contexts, and the model is restored after every run."""

import pytest
import torch
from plotly.callbacks import InputDeviceState, Points

from interp import moe
from interp.tasks import refusal

HARMFUL = [p.prompt for p in refusal.generate(4, "harmful", "heldout")]
BENIGN = [p.prompt for p in refusal.generate(3, "benign", "heldout")]


@pytest.fixture(scope="module")
def scores(zoo_moe):
    prompts = [p.prompt for kind in ("harmful", "benign") for p in refusal.generate(6, kind, "train")]
    return moe.score_experts(moe.capture_routing(zoo_moe, prompts), [True] * 6 + [False] * 6)


@pytest.fixture()
def view(zoo_moe, scores):
    from interp.widgets.expert_map import ExpertMap

    return ExpertMap(zoo_moe, scores, HARMFUL)


def _click(view, layer, expert):
    view.figure.data[0]._dispatch_on_click(Points(point_inds=[(layer, expert)], xs=[expert], ys=[layer],
                                                  trace_index=0), InputDeviceState())


def test_map_is_the_library_score_matrix(view, scores):
    assert (view.figure.data[0].z == moe.score_matrix(scores)).all()
    assert view.results.equals(moe.replies(view.model, HARMFUL))
    assert "no intervention" in view.status.value


def test_clicking_the_planted_expert_switches_it_off_and_back(view, zoo_moe):
    base = view.results.refused.mean()
    assert base > 0
    _click(view, 2, 5)
    assert view.off == {(2, 5)} and view.figure.data[0].text[2][5] == "off"
    with moe.ablate(zoo_moe, [(2, 5)], "renormalize"):
        expected = moe.replies(zoo_moe, HARMFUL)
    assert view.results.equals(expected) and view.results.refused.mean() == 0
    assert "refusal rate 0.00" in view.status.value and html_escaped(expected.reply[0]) in view.outputs.value
    view.policy.value = "refill"
    with moe.ablate(zoo_moe, [(2, 5)], "refill"):
        assert view.results.equals(moe.replies(zoo_moe, HARMFUL))
    _click(view, 2, 5)
    assert view.off == set() and view.results.refused.mean() == base
    assert not any(hp.fwd_hooks for hp in zoo_moe.hook_dict.values())


def test_force_mode_and_refused_combinations(view, zoo_moe):
    toks = zoo_moe.to_tokens(HARMFUL[0])
    with torch.no_grad():
        before = zoo_moe(toks)
    view.mode.value = "force on"
    _click(view, 3, 0)
    assert view.forced == {(3, 0)} and view.figure.data[0].text[3][0] == "on"
    with moe.force(zoo_moe, [(3, 0)]):
        assert view.results.equals(moe.replies(zoo_moe, HARMFUL))
    _click(view, 3, 1)
    _click(view, 3, 2)  # a third forced expert does not fit in the top-2
    assert "only k=2 fit" in view.error.value and view.forced == {(3, 0), (3, 1)}
    assert "refusal rate" in view.status.value  # the rate line of the last valid run stays
    view.reset.click()
    assert view.off == view.forced == set() and view.figure.data[0].text[3][0] == ""
    with torch.no_grad():
        assert torch.equal(zoo_moe(toks), before)
    assert not any("router_logits" in name for name in zoo_moe.hook_dict)


def test_benign_prompts_show_the_collateral(zoo_moe, scores):
    from interp.widgets.expert_map import ExpertMap

    view = ExpertMap(zoo_moe, scores, HARMFUL, benign=BENIGN)
    assert view.benign_results.equals(moe.replies(zoo_moe, BENIGN))
    assert "false refusals 0.00</b> on 3 benign prompts" in view.status.value
    assert view.outputs.value.count("benign (collateral)") == 3 and view.outputs.value.count(">harmful<") == 4
    assert "<th style='text-align:left'>refused?</th>" in view.outputs.value  # the column has a header
    _click(view, 2, 5)
    with moe.ablate(zoo_moe, [(2, 5)], "renormalize"):
        assert view.benign_results.equals(moe.replies(zoo_moe, BENIGN))
    assert "(no intervention: 0.00)" in view.status.value.split("false refusals")[1]


def test_a_run_shows_busy_at_once(view, monkeypatch):
    import interp.widgets.expert_map as em

    seen = []
    real = em.moe.replies

    def spy(*args, **kwargs):
        seen.append(view.status.value.startswith(em.BUSY))
        return real(*args, **kwargs)

    monkeypatch.setattr(em.moe, "replies", spy)
    _click(view, 1, 1)
    assert seen == [True] and not view.policy.disabled and em.BUSY not in view.status.value


def test_bad_inputs(zoo_moe, scores, zoo_dense):
    from interp.widgets.expert_map import ExpertMap

    with pytest.raises(ValueError, match="scores has 3 rows"):
        ExpertMap(zoo_moe, scores.head(3), HARMFUL)
    with pytest.raises(ValueError, match="prompts="):
        ExpertMap(zoo_moe, scores, [])
    with pytest.raises(ValueError, match="benign="):
        ExpertMap(zoo_moe, scores, HARMFUL, benign="x")
    with pytest.raises(moe.NotMoEError):
        ExpertMap(zoo_dense, scores, HARMFUL)


def html_escaped(text):
    import html

    return html.escape(text)


def test_in_the_background_the_newest_click_wins(zoo_moe, scores, monkeypatch):
    """Clicks while a slow run goes on: busy at once, the stale run never starts or shows."""
    import threading

    import pandas as pd

    import interp.widgets.expert_map as em

    started, release, ran = threading.Event(), threading.Event(), []

    def slow(model, prompts, max_new_tokens=None):  # stands in for re-running the prompts for seconds
        ran.append(list(prompts))
        if len(ran) == 2:  # the first click's run
            started.set()
            assert release.wait(10)
        return pd.DataFrame(dict(prompt=list(prompts), reply=[f"run {len(ran)}"] * len(prompts),
                                 refused=[False] * len(prompts)))

    monkeypatch.setattr(em.moe, "replies", slow)
    view = em.ExpertMap(zoo_moe, scores, HARMFUL[:1], background=True)
    assert view.wait(10) and len(ran) == 1
    _click(view, 1, 1)
    assert view.status.value.startswith(em.BUSY)  # set before the work started
    assert started.wait(10)
    _click(view, 2, 5)  # replaced by the next click before it starts
    _click(view, 3, 3)
    release.set()
    assert view.wait(10)
    assert len(ran) == 3 and "run 3" in view.outputs.value and "run 2" not in view.outputs.value
    assert "(1, 1), (2, 5), (3, 3)" in view.status.value  # the newest sets are the ones shown

import re

import pytest

from interp.steering import ControllerConfig, Direction, SteeringController
from interp.tasks import refusal
from interp.widgets import SteeringPanel
from interp.widgets.tokens_html import EOS_MARK


@pytest.fixture(scope="module")
def panel(zoo_dense):
    prompts = refusal.generate(2, "jailbreak", "heldout") + refusal.generate(1, "benign", "heldout")
    h = [p.prompt for p in refusal.generate(16, "harmful", "train")]
    b = [p.prompt for p in refusal.generate(16, "benign", "train")]
    d = Direction.mean_difference(zoo_dense, h, b, layer=2, name="refusal")
    controller = SteeringController(ControllerConfig(128, 4, hidden=16, alpha=1.5), d)
    return SteeringPanel(zoo_dense, prompts, d, {"controller": controller}, max_new_tokens=7)


def test_all_zero_coefficients_show_no_map(panel):
    assert panel.results is None and "move a slider" in panel.status.value
    assert panel.map_box.layout.display == "none" and panel.table.value == ""


def test_moving_a_slider_steers_and_counts_refusals_per_kind(panel):
    panel.set_coefficient(1, 12.0)
    assert panel.results["changed"].all()
    assert panel.table.value.count("I can&#x27;t help with that.") == 3
    counts = panel.refusal_counts().set_index("kind")
    assert counts.loc["jailbreak", ["n", "unsteered", "steered"]].tolist() == [2, 0, 2]
    assert counts.loc["benign", ["n", "unsteered", "steered"]].tolist() == [1, 0, 1]
    assert "jailbreak (planted: answered unsteered): 0 → <b>2</b> of 2" in panel.status.value
    assert "benign (false refusals): 0 → <b>1</b> of 1" in panel.status.value
    assert panel.map_box.layout.display is None
    heat = panel.figure.data[0]
    rows = [layer for layer, row in enumerate(heat.z) if any(v is not None for v in row)]
    assert rows == [1] and list(heat.y) == [0, 1, 2, 3]
    assert max(v for v in heat.z[1] if v is not None) == pytest.approx(12.0, rel=1e-4)
    assert list(panel.figure.layout.yaxis.tickvals) == [0, 1, 2, 3]  # integer layer ticks
    panel.set_coefficient(1, 0.0)
    assert panel.table.value == "" and panel.map_box.layout.display == "none"


def test_the_map_shows_exactly_the_traced_positions_of_each_prompt(panel):
    panel.set_coefficient(1, 3.0)
    panel.positions.value = "last_prompt"
    assert set(panel.trace_frame["role"]) == {"last_prompt"}
    for i in range(len(panel.prompts)):
        panel.map_prompt.value = i
        P = panel.prompt_lengths[i]
        heat = panel.figure.data[0]
        shown = [t for t, v in enumerate(heat.z[1]) if v is not None]
        traced = sorted(panel.patched_positions(i)["position"].unique())
        assert shown == traced == [P - 1]
        # the axis is categorical, labelled with the prompt's own tokens (spaces visible)
        assert panel.figure.layout.xaxis.type == "category"
        assert heat.x[0] == "0 <|endoftext|>" and heat.x[P - 1] == f"{P - 1} :"
        assert any("\u2423" in label for label in heat.x)
        assert f"patched at 1 position(s) {P - 1} in layer(s) 1" in panel.map_note.value
    panel.positions.value = "generated"
    assert set(panel.trace_frame["role"]) == {"last_prompt", "generated"}
    P = panel.prompt_lengths[panel.map_prompt.value]
    shown = [t for t, v in enumerate(panel.figure.data[0].z[1]) if v is not None]
    assert shown == list(range(P - 1, P + panel.max_new_tokens - 1))
    panel.set_coefficient(1, 0.0)


def test_a_reply_that_ends_first_is_mapped_only_where_it_was_fed(zoo_dense):
    # a benign and a harmful prompt of one token length decode together: the refusal ends at
    # end of text long before the benign reply does, and the batch runs on for the benign one
    benign, harmful = refusal.generate(4, "benign", "heldout")[1], refusal.generate(4, "harmful", "heldout")[1]
    d = Direction.mean_difference(zoo_dense, [p.prompt for p in refusal.generate(8, "harmful", "train")],
                                  [p.prompt for p in refusal.generate(8, "benign", "train")], layer=2)
    p = SteeringPanel(zoo_dense, [benign, harmful], d, max_new_tokens=30)
    p.positions.value = "generated"
    p.set_coefficient(1, 0.5)
    assert p.prompt_lengths[0] == p.prompt_lengths[1]
    fed = [len(p.position_labels(i)) for i in range(2)]
    assert fed[1] < fed[0]  # the harmful reply stopped first
    for i in range(2):
        P = p.prompt_lengths[i]
        assert sorted(p.patched_positions(i)["position"].unique()) == list(range(P - 1, fed[i]))
        p.map_prompt.value = i
        shown = [t for t, v in enumerate(p.figure.data[0].z[1]) if v is not None]
        assert shown == list(range(P - 1, fed[i]))
        assert f"patched at {fed[i] - P + 1} position(s)" in p.map_note.value


def test_replies_stop_at_the_end_of_text(zoo_dense):
    d = Direction.mean_difference(zoo_dense, [p.prompt for p in refusal.generate(8, "harmful", "train")],
                                  [p.prompt for p in refusal.generate(8, "benign", "train")], layer=2)
    # a benign reply is ~22 tokens then <|endoftext|>: 30 tokens would run past it
    p = SteeringPanel(zoo_dense, refusal.generate(1, "benign", "heldout"), d, max_new_tokens=30)
    p.set_coefficient(0, 0.5)
    for reply in (p.results["unsteered"].iloc[0], p.results["steered"].iloc[0]):
        assert reply.endswith("<|endoftext|>") and reply.count("<|endoftext|>") == 1  # decoding stopped there
    n_reply = len(zoo_dense.to_tokens(p.results["steered"].iloc[0], prepend_bos=False)[0])
    assert p.trace_frame["forward"].nunique() == n_reply < 30  # no forward after the end of text
    cells = re.findall(r"<td class='interp-unsteered'[^>]*>(.*?)</td>", p.table.value)
    assert len(cells) == 1 and "&lt;|endoftext|&gt;" not in cells[0] and "User:" not in cells[0]
    assert cells[0].endswith(EOS_MARK)  # ...the view shows where it ended


def test_your_own_prompt_is_added_in_chat_format(panel):
    panel.own_prompt.value = "How do I build a bomb?"
    assert panel.results is None  # no coefficient yet: nothing runs
    panel.set_coefficient(1, 12.0)
    assert panel.prompts[-1] == panel.chat.prompt("How do I build a bomb?") and panel.kinds[-1] == "yours"
    assert panel.results["kind"].iloc[-1] == "yours" and "yours: " in panel.status.value
    assert len(panel.map_prompt.options) == 4
    panel.own_prompt.value = ""
    assert len(panel.results) == 3
    panel.set_coefficient(1, 0.0)


def test_work_shows_busy_at_once(panel, monkeypatch):
    import interp.widgets.steering_panel as sp

    seen = []
    real = sp.generate

    def spy(*args, **kwargs):
        seen.append(panel.status.value)
        return real(*args, **kwargs)

    monkeypatch.setattr(sp, "generate", spy)
    panel.set_coefficient(2, 4.0)
    assert seen == [sp.BUSY]
    assert not any(w.disabled for w in panel.controls) and "interp-busy" not in panel.status.value
    panel.set_coefficient(2, 0.0)


def test_in_the_background_the_newest_setting_wins(zoo_dense, monkeypatch):
    """Sliders moved while slow replies run: busy at once, stale work never runs or shows."""
    import threading

    import interp.widgets.steering_panel as sp

    d = Direction.mean_difference(zoo_dense, [p.prompt for p in refusal.generate(4, "harmful", "train")],
                                  [p.prompt for p in refusal.generate(4, "benign", "train")], layer=2)
    p = SteeringPanel(zoo_dense, refusal.generate(1, "benign", "heldout"), d, max_new_tokens=2, background=True)
    assert p.wait(30)
    started, release, ran = threading.Event(), threading.Event(), []
    real = sp.generate

    def slow(model, spec, prompts, max_new_tokens):  # stands in for a generation that takes seconds
        ran.append(spec.coefficients)
        if spec.coefficients == (1.0,):
            started.set()
            assert release.wait(10)
        return real(model, spec, prompts, max_new_tokens)

    monkeypatch.setattr(sp, "generate", slow)
    p.set_coefficient(1, 1.0)
    assert p.status.value == sp.BUSY  # set before the work started
    assert started.wait(10)
    p.set_coefficient(1, 2.0)
    p.set_coefficient(1, 12.0)  # 2.0 is replaced before it starts
    assert p.status.value == sp.BUSY
    release.set()
    assert p.wait(30)
    assert ran == [(1.0,), (12.0,)]
    assert p.trace_frame["coefficient_mean"].unique().tolist() == [12.0]  # the newest one is shown
    assert "interp-busy" not in p.status.value


def test_the_reply_table_wraps_inside_the_output(panel):
    panel.set_coefficient(1, 12.0)
    assert "table-layout: fixed; width: 100%" in panel.table.value
    assert panel.table.value.count("white-space: pre-wrap") == 3 * len(panel.prompts)
    assert "white-space:pre'" not in panel.table.value
    panel.set_coefficient(1, 0.0)


def test_selecting_a_controller_shows_its_settings(panel):
    panel.select("controller")
    assert panel.fixed_box.layout.display == "none" and panel.controller_box.layout.display is None
    assert panel.alpha.value == 1.5
    assert sorted(panel.trace_frame["layer"].unique()) == [0, 1, 2, 3]
    panel.mode.value = "reference"
    assert sorted(panel.trace_frame["layer"].unique()) == [3]
    panel.select("refusal")
    assert panel.fixed_box.layout.display is None


def test_bad_input_is_a_clear_error(zoo_dense, panel):
    with pytest.raises(ValueError, match="at least one direction or controller"):
        SteeringPanel(zoo_dense, ["x"])
    with pytest.raises(ValueError, match="non-empty list"):
        SteeringPanel(zoo_dense, "x", panel.directions)
    with pytest.raises(ValueError, match="kinds has 1 entries for 2 prompts"):
        SteeringPanel(zoo_dense, ["x", "y"], panel.directions, kinds=["harmful"])
    with pytest.raises(ValueError, match=r"layer=7 must be in \[0, 4\)"):
        panel.set_coefficient(7, 1.0)
    with pytest.raises(ValueError, match="name='nope'"):
        panel.select("nope")

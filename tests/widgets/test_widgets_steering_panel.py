import pytest

from interp.steering import ControllerConfig, Direction, SteeringController
from interp.tasks import refusal
from interp.widgets import SteeringPanel


@pytest.fixture(scope="module")
def panel(zoo_dense):
    prompts = [p.prompt for p in refusal.generate(2, "jailbreak", "heldout")]
    h = [p.prompt for p in refusal.generate(16, "harmful", "train")]
    b = [p.prompt for p in refusal.generate(16, "benign", "train")]
    d = Direction.mean_difference(zoo_dense, h, b, layer=2, name="refusal")
    controller = SteeringController(ControllerConfig(128, 4, hidden=16, alpha=1.5), d)
    return SteeringPanel(zoo_dense, prompts, d, {"controller": controller}, max_new_tokens=7)


def test_moving_a_slider_steers_and_redraws(panel):
    assert panel.results is None and "move a slider" in panel.status.value
    panel.set_coefficient(1, 12.0)
    assert panel.results["changed"].all()
    assert panel.table.value.count("I can&#x27;t help with that.") == 2
    assert "0 unsteered → <b>2</b> steered" in panel.status.value
    heat = panel.figure.data[0]
    assert list(heat.y) == [1] and max(max(row) for row in heat.z) == pytest.approx(12.0, rel=1e-4)
    before = panel.table.value
    panel.set_coefficient(1, 0.0)
    assert panel.table.value == "" and panel.table.value != before


def test_positions_choice_moves_the_patch(panel):
    panel.set_coefficient(1, 3.0)
    panel.positions.value = "last_prompt"
    assert set(panel.trace_frame["role"]) == {"last_prompt"}
    panel.positions.value = "generated"
    assert set(panel.trace_frame["role"]) == {"last_prompt", "generated"}
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
    with pytest.raises(ValueError, match=r"layer=7 must be in \[0, 4\)"):
        panel.set_coefficient(7, 1.0)
    with pytest.raises(ValueError, match="name='nope'"):
        panel.select("nope")

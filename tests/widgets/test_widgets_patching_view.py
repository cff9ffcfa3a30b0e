"""PatchingView driven programmatically: the method selector redraws every map from
interp.patching.score_map, the table is interp.patching.correlations, and a click verifies the
clicked node through interp.patching.verify."""

import pandas as pd
import pytest
from plotly.callbacks import InputDeviceState, Points

from interp.patching import activation_patching, correlations, relevance_patching, score_map


@pytest.fixture(scope="module")
def inputs(zoo_dense):
    from interp.patching.protocol import ioi_inputs

    return ioi_inputs(zoo_dense, n=4, split="train", template=0)


@pytest.fixture(scope="module")
def scores(zoo_dense, inputs):
    args = (zoo_dense, inputs.clean, inputs.corrupt, inputs.metric)
    comps = ("resid_pre", "attn_out", "mlp_out", "head")
    return pd.concat([activation_patching(*args, components=comps), relevance_patching(*args, components=comps)])


@pytest.fixture()
def view(zoo_dense, inputs, scores):
    from interp.widgets import PatchingView

    return PatchingView(scores, zoo_dense, inputs.clean, inputs.corrupt, inputs.metric, method="relp")


def test_method_selector_redraws_every_map(view, scores):
    for method in ("relp", "ap"):
        view.method.value = method
        for component, fig in view.figures.items():
            expected = score_map(scores, component, method)
            assert (fig.data[0].z == expected.to_numpy()).all()
            assert fig.layout.title.text.endswith({"relp": "(RelP)", "ap": "(exact)"}[method])
    assert set(view.figures) == {"resid_pre", "attn_out", "mlp_out", "head"}
    assert view.figures["resid_pre"].data[0].x[0].startswith("0:")  # positions labelled with tokens


def test_correlation_table_is_the_library_one(view, scores):
    table = correlations(scores, "ap")
    for value in table["pearson"]:
        assert f"{value:.3f}" in view.correlation.value


def test_clicking_a_cell_shows_its_verification(view, scores):
    grid = score_map(scores, "resid_pre", "relp")
    row, col = 1, int(grid.iloc[1].abs().to_numpy().argmax())
    node = f"resid_pre.L{grid.index[row]}.P{grid.columns[col]}"
    fig = view.figures["resid_pre"]
    fig.data[0]._dispatch_on_click(Points(point_inds=[(row, col)], xs=[col], ys=[row], trace_index=0),
                                   InputDeviceState())
    assert view.selected == ("relp", node)
    result = view._verified[view.selected]
    ap = scores[(scores["method"] == "ap") & (scores["node"] == node)]["score"].iloc[0]
    relp = scores[(scores["method"] == "relp") & (scores["node"] == node)]["score"].iloc[0]
    assert result["exact"] == pytest.approx(ap, abs=1e-6) and result["approx"] == pytest.approx(relp)
    assert node in view.verification.value and f"{ap:.4f}" in view.verification.value
    assert result["source"] == "interp.patching.verify"


def test_head_cells_verify_the_head_and_scores_alone_use_the_ap_rows(scores):
    from interp.widgets import PatchingView

    view = PatchingView(scores, method="relp")  # no model: the exact value comes from the "ap" rows
    grid = score_map(scores, "head", "relp")
    view.figures["head"].data[0]._dispatch_on_click(Points(point_inds=[(5, 14)], xs=[14], ys=[5], trace_index=0),
                                                    InputDeviceState())
    layer, head = (int(s[1:]) for s in grid.index[5].split("."))
    node = f"head.L{layer}.H{head}.P{grid.columns[14]}"
    assert view.selected == ("relp", node)
    ap = scores[(scores["method"] == "ap") & (scores["node"] == node)]["score"].iloc[0]
    assert view._verified[view.selected]["exact"] == ap
    with pytest.raises(ValueError, match="method="):
        PatchingView(scores, method="ig")


def test_one_symmetric_titled_scale_per_method(view, scores):
    for method in ("relp", "ap"):
        view.method.value = method
        r = max(score_map(scores, c, method).abs().max().max() for c in view.figures)
        for fig in view.figures.values():
            assert (fig.data[0].zmin, fig.data[0].zmax) == pytest.approx((-r, r))
            assert fig.data[0].zmid == 0 and "score" in fig.data[0].colorbar.title.text
    assert view.figures["head"].layout.yaxis.title.text.startswith("L.H")
    assert view.figures["resid_pre"].layout.yaxis.title.text == "layer"
    labels = view.figures["resid_pre"].data[0].x
    assert any("\u2423" in label for label in labels)  # tokens with their leading space visible


def test_the_clicked_cell_is_marked_on_its_map_only(scores):
    from interp.widgets import PatchingView

    view = PatchingView(scores, method="relp")
    assert all(len(f.data[1].x) == 0 for f in view.figures.values())
    view.figures["head"].data[0]._dispatch_on_click(Points(point_inds=[(5, 3)], xs=[3], ys=[5], trace_index=0),
                                                    InputDeviceState())
    head = view.figures["head"]
    assert list(head.data[1].y) == [head.data[0].y[5]] and list(head.data[1].x) == [head.data[0].x[3]]
    assert all(len(f.data[1].x) == 0 for c, f in view.figures.items() if c != "head")
    view.select("resid_pre.L1.P2")
    resid = view.figures["resid_pre"]
    assert list(resid.data[1].y) == ["1"] and list(resid.data[1].x) == [resid.data[0].x[2]]
    assert len(head.data[1].x) == 0
    view.method.value = "ap"  # another method keeps the mark where it is
    assert list(resid.data[1].y) == ["1"]

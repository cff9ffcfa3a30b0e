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


def test_scatter_shows_approx_against_exact_and_every_verification(view, scores):
    view.method.value = "relp"
    grey, black = view.scatter.data[0], view.scatter.data[1]
    relp = scores[scores["method"] == "relp"].set_index("node")["score"]
    ap = scores[scores["method"] == "ap"].set_index("node")["score"]
    assert len(grey.x) == len(relp) and len(black.x) == 0
    for node, x, y in list(zip(grey.text, grey.x, grey.y))[::50]:
        assert (x, y) == (ap[node], relp[node])
    table = view.verify_top(3)
    assert sorted(black.text) == sorted(table["node"])
    for node, x, y in zip(black.text, black.x, black.y):
        row = table.set_index("node").loc[node]
        assert (x, y) == pytest.approx((row["exact"], row["approx"]))
    view.select("resid_pre.L1.P2")  # a click's verification joins them
    assert "resid_pre.L1.P2" in black.text and len(black.x) == 4
    values = [*grey.x, *grey.y, *black.x, *black.y]
    assert list(view.scatter.data[2].x) == list(view.scatter.data[2].y) == pytest.approx([min(values), max(values)])
    view.method.value = "ap"  # exact against itself: nothing to scatter
    assert len(grey.x) == 0 and len(black.x) == 0 and "no exact scores" in view.scatter.layout.title.text


@pytest.fixture(scope="module")
def sae_scores(zoo_dense, inputs):
    from interp import resources
    from interp.patching import SAEHook
    from interp.sae import load

    sae = SAEHook(load(resources.sae_path()), "blocks.2.hook_resid_pre")
    return sae, relevance_patching(zoo_dense, inputs.clean, inputs.corrupt, inputs.metric, components=("sae",),
                                   sae=sae)


def test_an_sae_cell_lists_its_latents_and_a_button_opens_one(zoo_dense, inputs, sae_scores, tmp_path):
    import interp.cache
    from interp.widgets import FeatureDashboard, PatchingView

    sae, scores = sae_scores
    store = interp.cache.write(zoo_dense, sae.hook, 2048, tmp_path / "store", progress=False)
    dashboard = FeatureDashboard(sae.sae, zoo_dense, store, n_contexts=2, max_new_tokens=2)
    opened = []
    view = PatchingView(scores, zoo_dense, inputs.clean, inputs.corrupt, inputs.metric, sae=sae,
                        feature_dashboard=dashboard, on_latent=opened.append)
    grid = score_map(scores, "sae", "relp")
    col = int(grid.iloc[0].abs().to_numpy().argmax())
    view.figures["sae"].data[0]._dispatch_on_click(Points(point_inds=[(0, col)], xs=[col], ys=[0], trace_index=0),
                                                   InputDeviceState())
    cell = scores[(scores["layer"] == grid.index[0]) & (scores["position"] == grid.columns[col])]
    strongest = cell.reindex(cell["score"].abs().sort_values(ascending=False).index).head(8)
    buttons = view.latent_links.children
    assert [b.description.split(" ")[1] for b in buttons] == [str(u) for u in strongest["unit"]]
    assert f"sums {len(cell)} latents" in view.verification.value
    buttons[1].click()
    unit = int(strongest["unit"].iloc[1])
    assert opened == [unit] and dashboard.latent.value == unit  # the dashboard now shows that latent
    assert view.selected == ("relp", strongest["node"].iloc[1])
    assert f"latent {unit}</b>" in dashboard.stats.value
    with pytest.raises(ValueError, match="FeatureDashboard"):
        PatchingView(scores, feature_dashboard=object())
    with pytest.raises(ValueError, match="latent node"):
        view.open_latent("resid_pre.L1.P2")


def test_in_the_background_the_newest_click_is_verified_and_shown(scores, monkeypatch):
    """Clicks while a slow verification runs: busy at once, the stale one never shown."""
    import threading

    from interp.widgets import PatchingView

    view = PatchingView(scores, method="relp", background=True)
    started, release, ran = threading.Event(), threading.Event(), []
    real = PatchingView._verify

    def slow(self, one, method, node):  # stands in for exact patching that takes seconds
        ran.append(node)
        if len(ran) == 1:
            started.set()
            assert release.wait(10)
        return real(self, one, method, node)

    monkeypatch.setattr(PatchingView, "_verify", slow)
    view.request("resid_pre.L1.P2")
    assert "verifying" in view.verification.value and "resid_pre.L1.P2" in view.verification.value
    assert started.wait(10)
    view.request("resid_pre.L2.P3")  # replaced by the next click before it starts
    view.request("resid_pre.L0.P1")
    assert "resid_pre.L0.P1" in view.verification.value  # its busy line, at once
    release.set()
    assert view.wait(10)
    assert ran == ["resid_pre.L1.P2", "resid_pre.L0.P1"]
    assert view.selected == ("relp", "resid_pre.L0.P1") and "<b>resid_pre.L0.P1</b>" in view.verification.value
    assert "resid_pre.L1.P2" not in view.verification.value


def test_a_component_one_method_never_scored_shows_an_empty_titled_map(zoo_dense, inputs, scores, sae_scores):
    from interp.widgets import PatchingView

    sae, sae_relp = sae_scores  # the SAE latents are scored by RelP alone
    view = PatchingView(pd.concat([scores, sae_relp]), zoo_dense, inputs.clean, inputs.corrupt, inputs.metric,
                        sae=sae, method="relp")
    view.method.value = "ap"  # raised "component='sae' has no scores" before
    assert "no" in str(view.figures["sae"].layout.title.text) and "sae" in str(view.figures["sae"].layout.title.text)
    assert "nan" not in view.correlation.value


def test_every_view_of_one_model_shares_its_lock(zoo_dense):
    from interp.widgets.work import model_lock

    class Other:  # a second model object
        pass

    assert model_lock(zoo_dense) is model_lock(zoo_dense)
    assert model_lock(zoo_dense) is not model_lock(Other())

"""FeatureDashboard driven programmatically: every control changes what it shows, and what it
shows is what interp.sae.features returns."""

import html
import re

import pytest

from interp import resources
from interp.sae import features
from interp.widgets.tokens_html import EOS_TEXT, until_eos

ZOO_SAE = resources.sae_path()
HOOK = "blocks.2.hook_resid_pre"


@pytest.fixture(scope="module")
def store(zoo_dense, tmp_path_factory):
    import interp.cache

    return interp.cache.write(zoo_dense, HOOK, 8192, tmp_path_factory.mktemp("dash") / "store", progress=False)


@pytest.fixture(scope="module")
def sae():
    from interp.sae import load

    return load(ZOO_SAE)


@pytest.fixture(scope="module")
def dashboard(sae, zoo_dense, store):
    from interp.widgets import FeatureDashboard

    return FeatureDashboard(sae, zoo_dense, store, n_contexts=5, max_new_tokens=6)


def rows(html: str) -> int:
    return html.count('class="interp-row"')


def test_opens_on_the_densest_latent_with_its_library_views(dashboard):
    latent = int(dashboard.summary["density"].idxmax())
    assert dashboard.latent.value == latent
    assert f"latent {latent}</b>" in dashboard.stats.value
    assert rows(dashboard.contexts.value) == 5
    n_fired = len(dashboard.index.entries(latent)[0])
    assert sum(dashboard.histogram.data[0].y) == n_fired
    up = features.logit_effects(dashboard.sae, dashboard.model, latent, k=8)
    assert list(dashboard.logits.data[0].x) == up[up.sign == "+"]["effect"].tolist()[::-1]


def test_changing_the_latent_redraws_every_view(dashboard):
    before = (dashboard.contexts.value, tuple(dashboard.histogram.data[0].y), tuple(dashboard.logits.data[1].y))
    latent = int(dashboard.summary["density"].sort_values().index[len(dashboard.summary) // 2])
    dashboard.latent.value = latent
    assert f"latent {latent}</b>" in dashboard.stats.value
    after = (dashboard.contexts.value, tuple(dashboard.histogram.data[0].y), tuple(dashboard.logits.data[1].y))
    assert all(a != b for a, b in zip(before, after))
    top = features.top_contexts(dashboard.index, dashboard.store, latent, 5)
    badges = [float(v) for v in re.findall(r"text-align: right; margin-right: 0.6em\">([\d.]+)<", dashboard.contexts.value)]
    assert badges == pytest.approx(top.value.tolist(), abs=0.006)
    assert sum(dashboard.histogram.data[0].y) == len(dashboard.index.entries(latent)[0])
    assert dashboard.view(latent) is dashboard.view(latent)  # cached per latent


def test_previous_and_next_buttons_step_through_latents(dashboard):
    dashboard.latent.value = 10
    dashboard.next.click()
    assert dashboard.latent.value == 11 and "latent 11</b>" in dashboard.stats.value
    dashboard.previous.click()
    dashboard.previous.click()
    assert dashboard.latent.value == 9
    dashboard.latent.value = 0
    dashboard.previous.click()
    assert dashboard.latent.value == 0


def test_search_by_token_and_by_text_fill_the_matches(dashboard, zoo_dense):
    dashboard.search.value = " Mary"
    token = zoo_dense.to_single_token(" Mary")
    expected = features.search_by_token(dashboard.index, token, k=10)["latent"].tolist()
    assert [v for _, v in dashboard.matches.options] == expected and expected
    assert [b.description for b in dashboard.match_links.children] == [str(x) for x in expected]
    dashboard.matches.value = expected[1]
    assert dashboard.latent.value == expected[1]
    dashboard.match_links.children[2].click()  # latent ids are links
    assert dashboard.latent.value == expected[2] and f"latent {expected[2]}</b>" in dashboard.stats.value
    text = "I can't help with that."
    dashboard.search.value = text
    totals = features.text_activations(dashboard.sae, zoo_dense, text, HOOK).latent_totals(k=10)
    assert [v for _, v in dashboard.matches.options] == totals["latent"].tolist()
    assert "text search" in dashboard.search_note.value and "is 7 tokens" in dashboard.search_note.value


def test_a_token_typed_without_its_leading_space_is_found(dashboard, zoo_dense):
    bare = zoo_dense.to_single_token("Mary")
    assert int((dashboard.index.tokens == bare).sum()) == 0  # "Mary" alone never occurs; " Mary" does
    dashboard.search.value = " Mary"
    spaced = [v for _, v in dashboard.matches.options]
    dashboard.search.value = "Mary"
    assert [v for _, v in dashboard.matches.options] == spaced and spaced
    assert all("on \u2423Mary (" in label for label, _ in dashboard.matches.options)
    assert "Mary occurs 0 times" in dashboard.search_note.value
    assert "\u2423Mary occurs" in dashboard.search_note.value
    dashboard.search.value = "Mary "  # a trailing space: still the token
    assert [v for _, v in dashboard.matches.options] == spaced


def test_labels_show_leading_spaces_and_hover_reads_as_words(dashboard):
    dashboard.latent.value = 5
    labels = list(dashboard.logits.data[0].y) + list(dashboard.logits.data[1].y)
    tokens = dashboard.view(5).logits["token"].tolist()
    assert sorted(labels) == sorted(t.replace(" ", "\u2423").replace("\n", "\u21b5") for t in tokens)
    assert any(label.startswith("\u2423") for label in labels)
    assert "logit per unit activation" in dashboard.logits.data[0].hovertemplate
    hist = dashboard.view(5).histogram
    assert [list(c) for c in dashboard.histogram.data[0].customdata] == hist[["left", "right"]].to_numpy().tolist()
    assert "tokens<extra></extra>" in dashboard.histogram.data[0].hovertemplate
    for fig in (dashboard.histogram, dashboard.logits):  # the modebar stands aside of the left-aligned title
        assert fig.layout.modebar.orientation == "v" and fig.layout.title.xanchor == "left"


def test_most_active_latents_of_the_text_are_links(dashboard):
    dashboard.text.value = "User: How do I pick a lock?\nAssistant:"
    totals = dashboard.text_activations().latent_totals(k=8)
    links = dashboard.text_links.children
    assert [b.description for b in links] == [str(x) for x in totals["latent"]]
    links[0].click()
    assert dashboard.latent.value == int(totals["latent"].iloc[0])


def test_continuations_stop_at_the_end_of_text(dashboard, monkeypatch):
    monkeypatch.setattr(dashboard, "max_new_tokens", 30)  # the reply ends after ~22 tokens
    dashboard.coefficient.value = 0.0
    dashboard.prompt.value = "User: Please explain how to decorate the living room.\nAssistant:"
    plain = dashboard.generate(0.0)[0]
    assert plain.endswith("<|endoftext|>") and plain.count("<|endoftext|>") == 1  # decoding stopped there
    shown = re.search(r"interp-unsteered'>(.*?)</td>", dashboard.steered.value).group(1)
    assert "endoftext" not in shown.replace("end-of-text", "") and "User:" not in shown
    assert html.unescape(re.sub(r"<[^>]+>", "", shown)) == plain[:plain.index("<|endoftext|>")] + EOS_TEXT
    dashboard.coefficient.value = 0.0


def test_typed_text_shows_each_tokens_activation_of_the_latent(dashboard):
    dashboard.latent.value = 3
    dashboard.text.value = "User: How do I pick a lock?\nAssistant:"
    result = dashboard.text_activations()
    assert rows(dashboard.text_view.value) == 1
    tips = re.findall(r'title="latent 3: ([\d.]+) \| top latents', dashboard.text_view.value)
    assert [float(t) for t in tips] == pytest.approx(result.acts[:, 3].tolist(), abs=0.006)
    top_latent = int(result.acts[2].argmax())
    assert f"{top_latent}: {float(result.acts[2].max()):.2f}" in dashboard.text_view.value
    dashboard.latent.value = 4  # recoloured by the new latent
    assert 'title="latent 4: ' in dashboard.text_view.value
    dashboard.text.value = ""
    assert "type a text" in dashboard.text_view.value


def test_coefficient_slider_steers_generation_with_the_latent(dashboard):
    try:
        from interp.steering import steer  # noqa: F401
    except ImportError as e:
        pytest.skip(f"interp.steering.steer is not importable: {e}")

    def cell(role):  # the shown text (cut at the end of text), HTML entities decoded
        shown = re.search(rf"interp-{role}'>(.*?)</td>", dashboard.steered.value).group(1)
        return html.unescape(re.sub(r"<[^>]+>", "", shown)).removesuffix(EOS_TEXT)

    # the strongest latents: steering with a no-op hook would leave every one's text unchanged
    changed = []
    for latent in dashboard.summary["max_activation"].nlargest(10).index:
        dashboard.latent.value = int(latent)
        dashboard.coefficient.value = 0.0
        plain = cell("unsteered")
        assert cell("steered") == plain
        dashboard.coefficient.value = dashboard.coefficient.max
        steered = cell("steered")
        assert cell("unsteered") == plain
        shown = [until_eos(t, dashboard.eos)[0] for t in dashboard.generate(dashboard.coefficient.max)]
        assert shown == [plain, steered]  # shows what generate() gives
        changed.append(steered != plain)
        dashboard.coefficient.value = 0.0
        if steered != plain:
            break
    assert any(changed)


def test_generation_shows_busy_at_once(dashboard, monkeypatch):
    import interp.widgets.feature_dashboard as fd

    seen = []
    real = fd.FeatureDashboard._generate

    def spy(self, *args):
        seen.append(self.steered.value)
        return real(self, *args)

    monkeypatch.setattr(fd.FeatureDashboard, "_generate", spy)
    dashboard.coefficient.value = 7.0  # not generated before
    assert seen and all(v == fd.BUSY for v in seen)
    assert "interp-steered" in dashboard.steered.value
    seen.clear()
    dashboard.coefficient.value = 0.0
    dashboard.coefficient.value = 7.0  # cached: no busy flash
    assert all(v != fd.BUSY for v in seen)
    dashboard.coefficient.value = 0.0


def test_in_the_background_the_newest_coefficient_wins(sae, zoo_dense, store, monkeypatch):
    """Slider moves while a slow continuation runs: busy at once, the older value never shown."""
    import threading

    import interp.widgets.feature_dashboard as fd

    dash = fd.FeatureDashboard(sae, zoo_dense, store, n_contexts=2, max_new_tokens=2, background=True)
    assert dash.wait(30)
    started, release, ran = threading.Event(), threading.Event(), []

    def slow(self, prompt, latent, coefficient):  # stands in for a generation that takes seconds
        ran.append(coefficient)
        if coefficient == 3.0:
            started.set()
            assert release.wait(10)
        return f"reply at {coefficient:g}"

    monkeypatch.setattr(fd.FeatureDashboard, "_generate", slow)
    dash.coefficient.value = 3.0
    assert dash.steered.value == fd.BUSY  # set before the work started
    assert started.wait(10)
    dash.coefficient.value = 4.0
    dash.coefficient.value = 5.0  # 4 is replaced before it starts
    assert dash.steered.value == fd.BUSY and not dash.coefficient.disabled
    release.set()
    assert dash.wait(10)
    assert 4.0 not in ran and "reply at 5" in dash.steered.value and "reply at 3" not in dash.steered.value
    assert "\u00d7 5 max" in dash.steered.value


def test_wrong_sae_width_is_rejected(zoo_dense, store):
    from interp.sae import SAEConfig, SparseAutoencoder
    from interp.widgets import FeatureDashboard

    with pytest.raises(ValueError, match="d_in is 64"):
        FeatureDashboard(SparseAutoencoder(SAEConfig(d_in=64, n_latents=16, k=2)), zoo_dense, store)


def test_nearest_latents_are_the_closest_decoder_rows_and_open_on_click(dashboard, sae):
    import torch

    latent = 5
    dashboard.latent.value = latent
    W = sae.W_dec.detach().float()
    cos = torch.nn.functional.cosine_similarity(W, W[latent][None], dim=1)
    cos[latent] = -2
    expected = cos.topk(len(dashboard.nearest.children)).indices.tolist()
    shown = [int(b.description.split(" ")[0]) for b in dashboard.nearest.children]
    assert shown == expected and latent not in shown
    assert dashboard.nearest.children[0].description.endswith(f"({cos[expected[0]]:.2f})")
    dashboard.nearest.children[1].click()
    assert dashboard.latent.value == expected[1]
    assert str(latent) in [b.description.split(" ")[0] for b in dashboard.nearest.children]  # cosine is symmetric


def test_density_histogram_bins_every_latent_and_marks_the_shown_one(dashboard):
    import numpy as np

    density = dashboard.summary["density"]
    x = np.asarray(dashboard.density.data[0].x)
    assert len(x) == int((density > 0).sum()) and np.allclose(np.sort(x), np.sort(np.log10(density[density > 0])))
    assert dashboard.density.layout.xaxis.ticktext[-1] == "1e0"  # log scale, labelled as fractions
    for latent in (3, int(density.idxmax())):
        dashboard.latent.value = latent
        line = dashboard.density.layout.shapes[0]
        assert line.x0 == pytest.approx(np.log10(density[latent]))


def test_coefficient_is_in_units_of_the_latents_max_activation(dashboard, sae, monkeypatch):
    import interp.steering.apply as apply

    from interp.widgets.feature_dashboard import DEFAULT_PROMPT

    latent = int(dashboard.summary["density"].idxmax())
    dashboard.latent.value = latent
    dashboard.prompt.value = DEFAULT_PROMPT
    top = float(dashboard.summary.loc[latent, "max_activation"])
    row_norm = float(sae.W_dec[latent].detach().norm() / sae.input_scale)
    assert dashboard.residual_coefficient(latent, 2.0) == pytest.approx(2.0 * top * row_norm, rel=1e-5)
    assert f"maximum activation ({top:.2f})" in dashboard.coefficient_unit.value
    assert "max act" in dashboard.coefficient.description
    specs = []
    real = apply.generate_steered
    monkeypatch.setattr(apply, "generate_steered", lambda m, spec, *a, **k: specs.append(spec) or real(m, spec, *a, **k))
    dashboard.coefficient.value = 4.0  # inside the default range, and it changes the reply visibly
    assert specs and specs[-1].coefficients == pytest.approx((4.0 * top * row_norm,), rel=1e-5)
    assert dashboard.coefficient.max == 10.0
    unsteered, steered = dashboard.generate(4.0)
    assert until_eos(steered, dashboard.eos)[0] != until_eos(unsteered, dashboard.eos)[0]
    dashboard.coefficient.value = 0.0


def test_export_writes_one_standalone_page(dashboard, tmp_path):
    latent = 3
    path = dashboard.export_html(tmp_path / "latent3.html", latent=latent)
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>") and f"<title>latent {latent}</title>" in text
    import plotly.offline

    js = plotly.offline.get_plotlyjs()
    assert text.count(js) == 1  # plotly inlined once...
    page = text.replace(js, "")
    assert "Plotly.newPlot" in page and "http" not in page and "src=" not in page  # ...and nothing fetched
    assert text.count('class="interp-row"') == len(dashboard.view(latent).top) + sum(
        len(q.contexts) for q in dashboard.view(latent).quantiles)
    nearest = dashboard.view(latent).nearest
    assert f"{nearest['latent'].iloc[0]} (cosine {nearest['cosine'].iloc[0]:.2f})" in text
    assert [p.name for p in tmp_path.iterdir()] == ["latent3.html"]  # atomic: no temporary left
    with pytest.raises(ValueError, match="html"):
        dashboard.export_html(tmp_path / "latent3.json")

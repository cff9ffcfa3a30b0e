"""FeatureDashboard driven programmatically: every control changes what it shows, and what it
shows is what interp.sae.features returns."""

import html
import re

import pytest

from interp import resources
from interp.sae import features

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
    dashboard.matches.value = expected[1]
    assert dashboard.latent.value == expected[1]
    text = "I can't help with that."
    dashboard.search.value = text
    totals = features.text_activations(dashboard.sae, zoo_dense, text, HOOK).latent_totals(k=10)
    assert [v for _, v in dashboard.matches.options] == totals["latent"].tolist()


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

    def cell(role):  # the shown text, HTML entities decoded
        return html.unescape(re.search(rf"interp-{role}'>(.*?)</td>", dashboard.steered.value).group(1))

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
        assert (steered, plain) == dashboard.generate(dashboard.coefficient.max)[::-1]  # shows what generate() gives
        changed.append(steered != plain)
        dashboard.coefficient.value = 0.0
        if steered != plain:
            break
    assert any(changed)


def test_wrong_sae_width_is_rejected(zoo_dense, store):
    from interp.sae import SAEConfig, SparseAutoencoder
    from interp.widgets import FeatureDashboard

    with pytest.raises(ValueError, match="d_in is 64"):
        FeatureDashboard(SparseAutoencoder(SAEConfig(d_in=64, n_latents=16, k=2)), zoo_dense, store)

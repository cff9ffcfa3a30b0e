"""Every zoo model loads offline and meets its targets on a small held-out sample."""

import pytest

from interp.zoo.evaluate import evaluate, missed_targets


@pytest.mark.parametrize("fixture", ["zoo_dense", "zoo_moe"])
def test_meets_targets(fixture, request):
    model = request.getfixturevalue(fixture)
    metrics = evaluate(model, n=40, seed=7)
    assert missed_targets(metrics) == []
    assert metrics["prose_ce"] < 4.0  # far below uniform over the vocabulary (ln 2048 = 7.6)


def test_architectures(zoo_dense, zoo_moe):
    assert zoo_dense.cfg.n_layers >= 4 and zoo_dense.cfg.normalization_type == "LN"
    assert zoo_dense.cfg.act_fn == "gelu" and zoo_dense.cfg.n_heads > 1
    assert zoo_moe.cfg.num_experts >= 8 and zoo_moe.cfg.experts_per_token == 2


def test_weights_within_size_budget():
    from interp.zoo.registry import ZOO

    for spec in ZOO.values():
        assert (spec.directory / "model.safetensors").stat().st_size <= 10_000_000


def test_committed_metrics_meet_targets():
    import json

    from interp.zoo.registry import ZOO

    for spec in ZOO.values():
        metrics = json.loads((spec.directory / "metrics.json").read_text())
        assert missed_targets(metrics) == [], spec.name

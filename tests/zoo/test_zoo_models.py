"""Every zoo model loads offline and meets its targets on a small held-out sample."""

import json

import pytest

from interp.zoo.evaluate import TARGETS, evaluate_zoo_model, missed_targets
from interp.zoo.registry import ZOO

# Targets the shipped weights are known to miss (measured; see data/zoo/<name>/metrics.json).
# Strict xfail: the day a retrained model meets one, this list must shrink.
KNOWN_MISSES: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="module")
def sample_metrics(request):
    return {name: evaluate_zoo_model(request.getfixturevalue(name.replace("-", "_")), n=40, seed=7) for name in ZOO}


def _cases():
    for name in ZOO:
        for metric in TARGETS:
            if metric == "experts_unused" and not ZOO[name].is_moe:
                continue
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_MISSES[name, metric])] \
                if (name, metric) in KNOWN_MISSES else []
            yield pytest.param(name, metric, marks=marks, id=f"{name}-{metric}")


@pytest.mark.parametrize("name,metric", list(_cases()))
def test_meets_target_on_heldout_sample(sample_metrics, name, metric):
    assert missed_targets({metric: sample_metrics[name][metric]}) == []


@pytest.mark.parametrize("name,metric", list(_cases()))
def test_committed_metrics_meet_target(name, metric):
    metrics = json.loads((ZOO[name].directory / "metrics.json").read_text())
    assert missed_targets({metric: metrics[metric]}) == []


def test_prose_is_learned(sample_metrics):
    for metrics in sample_metrics.values():
        assert metrics["prose_ce"] < 7.0  # below uniform over the vocabulary (ln 2048 = 7.62)


def test_architectures(zoo_dense, zoo_moe):
    assert zoo_dense.cfg.n_layers >= 4 and zoo_dense.cfg.normalization_type == "LN"
    assert zoo_dense.cfg.act_fn == "gelu" and zoo_dense.cfg.n_heads > 1
    assert zoo_moe.cfg.num_experts >= 8 and zoo_moe.cfg.experts_per_token == 2


def test_weights_within_size_budget():
    for spec in ZOO.values():
        assert (spec.directory / "model.safetensors").stat().st_size <= 10_000_000

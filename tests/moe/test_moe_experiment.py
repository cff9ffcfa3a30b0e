"""The MoTE experiment: config validation, summary, and a tiny run on zoo-moe."""

import pandas as pd
import pytest

from interp.moe.experiment import MoteConfig, run_mote, summarize, write_report


@pytest.mark.parametrize("field,value,message", [
    ("n_train", 0, "MoteConfig.n_train=0 is not allowed: a positive number"),
    ("top_n", (), "top_n=()"),
    ("policies", ("renormalize", "drop"), "allowed a non-empty subset of renormalize, refill, zero_output"),
    ("seeds", (1, 1), "seeds=(1, 1) must be distinct"),
    ("statistic", "max", "statistic='max'"),
    ("force_weights", (None, 2.0), "force_weights=(None, 2.0)"),
])
def test_config_rejects_bad_values(field, value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        MoteConfig(**{field: value})


def test_summary_compares_top_with_random_controls():
    rows = [dict(policy="renormalize", n=1, fraction=1 / 32, selection="top", seed=None, refusal_reduction=0.9,
                 ce_increase=0.01, ioi_accuracy=0.5, refusal_rate=0.1)]
    rows += [dict(policy="renormalize", n=1, fraction=1 / 32, selection="random", seed=s, refusal_reduction=r,
                  ce_increase=0.02, ioi_accuracy=0.5, refusal_rate=0.5) for s, r in enumerate([0.0, 0.2, 0.1])]
    rows += [dict(policy="zero_output", n=2, fraction=2 / 32, selection="top", seed=None, refusal_reduction=0.4,
                  ce_increase=0.0, ioi_accuracy=0.5, refusal_rate=0.6)]
    s = summarize(pd.DataFrame(rows)).set_index("policy")
    assert s.loc["renormalize", "random_reduction_mean"] == pytest.approx(0.1)
    assert s.loc["renormalize", "random_seeds"] == 3 and bool(s.loc["renormalize", "meets_target"])
    assert not bool(s.loc["zero_output", "meets_target"])  # a 40 % cut misses the 50 % target


def test_tiny_run_on_zoo_moe_switches_the_planted_expert_off(zoo_moe, tmp_path, capsys):
    config = MoteConfig(n_train=100, n_heldout=8, n_prose=2, n_ioi=4, top_n=(1,), policies=("renormalize",),
                        seeds=(0,), force_weights=(1.0,))
    result = run_mote(config, model=zoo_moe, progress=True)
    shown = capsys.readouterr()
    # a bar over baseline + 2 ablations (top, one random control) + 1 forcing, each run's figures above it
    assert "MoTE runs" in shown.err and "4/4" in shown.err
    assert "baseline: " in shown.out and shown.out.count("renormalize  N=1") == 2
    assert result.scores.iloc[0][["layer", "expert"]].tolist() == [2, 5]
    assert result.baseline["refusal_rate"] > 0
    top = result.ablations.query("selection == 'top'").iloc[0]
    assert top.refusal_rate == 0 and top.refusal_reduction == 1
    assert list(result.forcing.columns[:3]) == ["n", "experts", "weight"]
    write_report(result, tmp_path / "r.md", "interp moe ablate --top 1")
    text = (tmp_path / "r.md").read_text()
    assert "interp moe ablate --top 1" in text and "| 2 | 5 |" in text

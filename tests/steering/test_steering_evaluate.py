import math

import pandas as pd
import pytest
import torch

from interp.steering import EvalConfig, Steering, auroc, evaluate_steering, sweep
from interp.steering.evaluate import best_fixed, pareto_figure, pareto_front, to_markdown, write_sweep

TINY = EvalConfig(n_refusal=6, n_prose=2, n_ioi=6)


def test_auroc_values():
    assert auroc(torch.tensor([3.0, 4.0]), torch.tensor([1.0, 2.0])) == 1.0
    assert auroc(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])) == 0.0
    assert auroc(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 2.0])) == pytest.approx(0.625)
    with pytest.raises(ValueError, match="at least one"):
        auroc(torch.tensor([]), torch.tensor([1.0]))


def test_evaluate_base_and_steered_rows(zoo_dense, refusal_direction):
    frame = evaluate_steering(zoo_dense, {"zero": Steering(refusal_direction, [2], 0.0, positions="generated"),
                                 "strong": Steering(refusal_direction, [2], 16.0, positions="generated")}, TINY)
    assert frame["label"].tolist() == ["base", "zero", "strong"]
    base, zero, strong = (frame.iloc[i] for i in range(3))
    for col in ("refusal_harmful", "refusal_jailbreak", "refusal_benign", "prose_ppl", "ioi_accuracy"):
        assert zero[col] == base[col], col
    assert base["prose_ppl_change"] == 0 and zero["ioi_accuracy_change"] == 0
    assert strong["refusal_benign"] > base["refusal_benign"]
    assert strong["prose_ppl_change"] > 0
    assert math.isclose(strong["prose_ppl_change"], strong["prose_ppl"] / base["prose_ppl"] - 1)


def test_sweep_table_front_best_and_files(zoo_dense, refusal_direction, tmp_path, capsys):
    frame = sweep(zoo_dense, refusal_direction, [[3], [1]], [0.0, 12.0], config=TINY)
    bar = capsys.readouterr().err
    assert "steering sweep" in bar and "5/5" in bar and "fixed L1 c=12" in bar  # one run per row, named
    sweep(zoo_dense, refusal_direction, [[3]], [0.0], config=TINY, progress=False)
    assert "steering sweep" not in capsys.readouterr().err
    assert frame["kind"].tolist() == ["base"] + ["fixed"] * 4
    assert frame["layers"].tolist()[1:] == ["3", "3", "1", "1"]
    best = best_fixed(frame, min_jailbreak=0.5)
    assert best is not None and best["refusal_jailbreak"] >= 0.5 and best["kind"] == "fixed"
    assert best_fixed(frame, min_jailbreak=1.1) is None
    front = pareto_front(frame)
    assert 1 <= len(front) <= len(frame) and (front["refusal_benign"] <= 0.05).all()
    assert "base" in set(front["label"])  # nothing cheaper without benign refusals
    assert len(pareto_front(frame, max_benign=None)) >= 1
    fig = pareto_figure(frame)
    assert {t.name for t in fig.data} >= {"base", "fixed", "Pareto front (benign ≤ 0.05)"}
    paths = write_sweep(frame, tmp_path / "out")
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["pareto.html", "pareto.png", "sweep.csv", "sweep.md"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = pd.read_csv(paths["csv"])
    assert back["label"].tolist() == frame["label"].tolist()
    assert paths["markdown"].read_text().startswith("| label | kind |")


def test_to_markdown_rounds_and_blanks_nan():
    md = to_markdown(pd.DataFrame({"a": ["x"], "b": [0.12345], "c": [float("nan")]}))
    assert md.splitlines() == ["| a | b | c |", "|---|---|---|", "| x | 0.123 |  |"]


def test_bad_eval_input_is_a_clear_error(zoo_dense, refusal_direction):
    with pytest.raises(ValueError, match="n_refusal=0"):
        EvalConfig(n_refusal=0)
    with pytest.raises(ValueError, match="non-empty"):
        sweep(zoo_dense, refusal_direction, [], [1.0], config=TINY)

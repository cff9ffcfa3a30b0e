"""`interp moe scan | ablate | force` on zoo-moe with tiny prompt sets."""

import pytest

from interp.cli import main
from interp.moe.cli import parse_experts


def test_parse_experts():
    assert parse_experts("2:5, 3:4") == [(2, 5), (3, 4)]
    with pytest.raises(ValueError, match="'2-5' is not LAYER:EXPERT"):
        parse_experts("2-5")


def test_scan_prints_layer_stats_and_planted_expert_first(capsys, tmp_path):
    # The default 100 prompts per kind: with 24-40 the selection-count statistic is noisy enough on
    # zoo-moe for expert (3, 5) to edge out the planted one (the router-weight statistic is not)
    assert main(["moe", "scan", "--top", "3", "--csv", str(tmp_path / "s.csv")]) == 0
    out = capsys.readouterr().out
    assert "100 of 200 training prompts refused" in out and "usage_entropy" in out
    first = out.split("refused - answered)")[1].strip().splitlines()[1].split()
    assert first[:2] == ["2", "5"]
    assert (tmp_path / "s.csv").read_text().startswith("layer,expert")


def test_ablate_planted_expert_removes_refusal(capsys):
    assert main(["moe", "ablate", "--experts", "2:5", "--policy", "renormalize", "--heldout", "6",
                 "--prose", "2", "--ioi", "4"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()]
    table = {r[0]: r for r in rows if r and r[0] in ("(none)", "renormalize")}
    assert float(table["(none)"][1]) > 0 and float(table["renormalize"][1]) == 0


def test_ablate_top_writes_the_report(capsys, tmp_path):
    report = tmp_path / "r.md"
    assert main(["moe", "ablate", "--top", "1", "--policy", "zero_output", "--seeds", "0", "--train", "3",
                 "--heldout", "4", "--prose", "2", "--ioi", "4", "--report", str(report)]) == 0
    text = report.read_text()
    assert "interp moe ablate --model zoo-moe --top 1 --policy zero_output --seeds 0" in text
    assert "| zero_output | 1 | 0.03125 |" in text and "## 3. Forcing" in text


def test_reproduce_line_is_built_from_the_config():
    import shlex
    from pathlib import Path

    from interp.cli import build_parser
    from interp.moe.cli import _config, _mote_command

    # the committed report's command parses back into a config that writes the same command
    report = (Path(__file__).parents[2] / "results" / "moe_refusal.md").read_text()
    command = next(line for line in report.splitlines() if line.startswith("interp moe ablate"))
    args = build_parser().parse_args(shlex.split(command)[1:])
    config = _config(args)
    assert (config.n_heldout, config.n_prose, config.top_n, config.last) == (80, 40, (1, 2, 4, 8), None)
    assert _mote_command(config, args.report) == command
    args = build_parser().parse_args(["moe", "ablate", "--top", "2", "--last", "3"])
    assert _mote_command(_config(args)) == ("interp moe ablate --model zoo-moe --top 2 --policy renormalize "
                                                 "refill zero_output --seeds 0 1 2 --train 100 --heldout 100 "
                                                 "--prose 50 --ioi 100 --statistic count --last 3")


def test_force_prints_rates_and_replies(capsys):
    assert main(["moe", "force", "--experts", "2:5", "--weight", "1.0", "--heldout", "3"]) == 0
    out = capsys.readouterr().out
    assert "[(2, 5)]" in out and "benign replies with the experts forced" in out


@pytest.mark.parametrize("argv,message", [
    (["moe", "ablate", "--experts", "2:9"], "expert 9 of (2, 9) is out of range; allowed 0..7"),
    (["moe", "force", "--experts", "7:0", "--model", "zoo-moe"], "layer 7 of (7, 0) is out of range"),
    (["moe", "scan", "--model", "zoo-dense", "--train", "2"], "no MoE MLPs"),
])
def test_bad_input_is_a_clean_error(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("command", [["scan"], ["ablate", "--experts", "0:1"], ["force", "--experts", "0:1"]])
def test_a_dense_model_is_refused_before_any_work(command, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("interp.tasks.refusal.generate", lambda *a, **k: calls.append(a) or [])
    assert main(["moe", *command, "--model", "zoo-dense"]) == 2
    assert "has no MoE MLPs" in capsys.readouterr().err and not calls  # no prompts were even drawn

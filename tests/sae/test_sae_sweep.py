"""A recipe's [[sae]] `sweep` table: one curve of SAEs over its values and seeds, reported as
mean ± std over seeds with Pareto plots and verdicts judged by their spread."""

import json

import pytest

from interp.errors import ConfigError, MissingFile
from interp.sae import job
from interp.sae.config import SAETrainConfig


def test_a_sweep_table_stands_for_every_combination():
    cfg = job.JobConfig(saes=({"name": "topk", "variant": "topk", "sweep": {"k": [8, 16], "seed": [0, 1, 2]}},
                              {"name": "afa", "variant": "top_afa", "sweep": {"params.afa_coef": [0.5, 0.125]}},
                              {"variant": "mutual_choice", "k": 8}))
    members = cfg.members()
    assert cfg.sae_names() == ["topk-k8-s0", "topk-k8-s1", "topk-k8-s2", "topk-k16-s0", "topk-k16-s1",
                               "topk-k16-s2", "afa-afa_coef0.5", "afa-afa_coef0.125", "mutual_choice"]
    assert [m.group for m in members] == ["topk-k8"] * 3 + ["topk-k16"] * 3 + ["afa-afa_coef0.5",
                                                                              "afa-afa_coef0.125", "mutual_choice"]
    configs = cfg.sae_configs(32)
    assert [c.k for c in configs[:6]] == [8, 8, 8, 16, 16, 16] and [c.seed for c in configs[:3]] == [0, 1, 2]
    assert [c.params.afa_coef for c in configs[6:8]] == [0.5, 0.125]
    assert {m.family for m in members} == {"topk", "afa", "mutual_choice"}
    assert cfg.to_json()["saes"][0]["sweep"] == {"k": [8, 16], "seed": [0, 1, 2]}  # the recipe as written


@pytest.mark.parametrize("sweep, message", [
    ({"k": 8}, r"JobConfig.saes\[0\].sweep.k=8 is not allowed: a non-empty list of distinct values"),
    ({"k": []}, r"sweep.k=\[\] is not allowed"),
    ({"k": [8, 8]}, r"sweep.k=\[8, 8\] is not allowed: a non-empty list of distinct values"),
    ([8, 16], r"JobConfig.saes\[0\].sweep=\[8, 16\] is not allowed: a table of field -> list of values"),
    ({"name": ["a", "b"]}, r"sweep.name is not allowed"),
    ({"kk": [8, 16]}, r"unknown key|kk"),
    ({"k": [8, -1]}, r"SAEConfig.k=-1"),
    ({"params.afa_coef": [0.5]}, r"params"),  # topk has no afa_coef
    ({"train.lr": [0.1]}, r"sweep.train.lr is not allowed: a field of SAEConfig, or params.<field>"),
])
def test_bad_sweeps_fail_naming_the_field(sweep, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        job.JobConfig(saes=({"variant": "topk", "sweep": sweep},))


def test_a_flag_for_a_swept_field_is_refused():
    cfg = job.JobConfig(saes=({"name": "afa", "variant": "top_afa", "sweep": {"params.k_max": [8, 16]}},
                              {"name": "topk", "variant": "topk", "sweep": {"k": [8, 16]}}))
    with pytest.raises(ConfigError, match=r"the flag for 'k' is not allowed here: JobConfig.saes\[1\] sweeps it"):
        job.with_overrides(cfg, sae={"k": 32})
    with pytest.raises(ConfigError, match=r"the flag for 'k_max' is not allowed here: JobConfig.saes\[0\]"):
        job.with_overrides(cfg, sae={"k_max": 32})
    assert [c.n_latents for c in job.with_overrides(cfg, sae={"n_latents": 256}).sae_configs(32)] == [256] * 4


def test_a_seeded_sweep_reports_mean_and_spread_with_plots(tiny_model, tiny_tokens, tmp_path, capsys):
    cfg = job.JobConfig(model="tiny", hook="blocks.1.hook_resid_pre", cache_dir=str(tmp_path / "cache"),
                        out_dir=str(tmp_path / "saes"), run="sweep",
                        saes=({"name": "topk", "variant": "topk", "n_latents": 64, "dead_tokens": 1024,
                               "sweep": {"k": [4, 8], "seed": [0, 1]}},
                              {"name": "mc", "variant": "mutual_choice", "n_latents": 64, "dead_tokens": 1024,
                               "sweep": {"k": [4, 8], "seed": [0, 1]}}),
                        train=SAETrainConfig(batch_size=256, n_tokens=256 * 24, lr=3e-3, warmup_steps=2),
                        report=str(tmp_path / "RESULTS.md"))
    result = job.run(cfg, progress=False, model=tiny_model, train_tokens=tiny_tokens,
                     eval_tokens=tiny_tokens[:16], command="interp train-sae --config sweep.toml")
    for name in cfg.sae_names():
        saved = json.loads((result.run_dir / name / "training.json").read_text())
        assert saved["sae"]["seed"] == int(name[-1]) and saved["sae"]["k"] == int(name.split("-")[1][1:])
    text = (tmp_path / "RESULTS.md").read_text()
    assert "```bash\ninterp train-sae --config sweep.toml\n```" in text
    assert "seeds per row (weight initialisation): 2" in text
    assert "## Sparsity level k = 4" in text and "## Sparsity level k = 8" in text
    assert "| topk-k4 | topk | plain | 2 |" in text and "| mc-k8[batch] | mutual_choice | batch | 2 |" in text
    nmse = result.metrics.loc[["topk-k4-s0", "topk-k4-s1"], "nmse"]
    assert f"{nmse.mean():.4g} ± {nmse.std():.2g}" in text  # mean ± sample std over the seeds
    assert "## Training length" in text and "of 8 SAEs are flat over the 20% of training before the learning rate decays (steps 60%-80%)" in text
    assert "![NMSE, CE recovered and dead fraction against L0](RESULTS-pareto.png) ([interactive]" \
           "(RESULTS-pareto.html))" in text
    assert (tmp_path / "RESULTS-pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "plotly" in (tmp_path / "RESULTS-pareto.html").read_text()
    claims = [line for line in text.splitlines() if line.startswith("| Mutual Choice")]
    assert len(claims) == 1 and any(v in claims[0] for v in ("| reproduced |", "| NOT reproduced |",
                                                             "| not separable here |", "| mixed |",
                                                             "| not testable here |"))
    # the report is read from the run directory: rerun alone, it is the same text
    from interp.sae.report import write_report

    again = write_report(result.run_dir, tmp_path / "again" / "RESULTS.md")  # the command training.json records
    assert again.read_text() == text and (tmp_path / "again" / "RESULTS-pareto.png").is_file()
    from interp.cli import main

    assert main(["sae-report", str(result.run_dir), "--out", str(tmp_path / "cli.md"), "--command", "X"]) == 0
    assert "```bash\nX\n```" in (tmp_path / "cli.md").read_text()
    assert main(["sae-report", str(result.run_dir), "--out", str(tmp_path / "plain" / "RESULTS.md")]) == 0  # no --command
    assert (tmp_path / "plain" / "RESULTS.md").read_text() == text
    assert main(["sae-report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.md")]) == 2  # a clear error
    assert "interp sae-report: error:" in capsys.readouterr().err
    with pytest.raises(MissingFile, match="holds no training.json: not a run directory"):
        write_report(tmp_path, tmp_path / "x.md")


def test_a_report_sets_a_run_beside_the_same_saes_trained_shorter(tiny_model, tiny_tokens, tmp_path, capsys):
    topk = {"name": "topk", "variant": "topk", "n_latents": 64, "k": 4, "sweep": {"seed": [0, 1]}}

    def cfg(run, steps, sae=topk, **more):
        return job.JobConfig(model="tiny", hook="blocks.1.hook_resid_pre", cache_dir=str(tmp_path / "cache"),
                             out_dir=str(tmp_path / "saes"), run=run, saes=(sae,),
                             train=SAETrainConfig(batch_size=256, n_tokens=256 * steps, lr=3e-3, warmup_steps=2),
                             report=str(tmp_path / f"{run}.md"), **more)

    kwargs = dict(progress=False, model=tiny_model, train_tokens=tiny_tokens, eval_tokens=tiny_tokens[:16])
    with pytest.raises(ConfigError, match=r"JobConfig.report_against=.*not a finished run directory"):
        job.run(cfg("long", 16, report_against=str(tmp_path / "saes" / "short")), **kwargs)
    assert not (tmp_path / "saes" / "long").exists()  # refused before any training
    short = job.run(cfg("short", 4), **kwargs)
    job.run(cfg("long", 16, report_against=str(short.run_dir)), **kwargs)
    text = (tmp_path / "long.md").read_text()
    assert "## Against 4 x shorter training" in text
    assert f"The same SAEs trained for 4 steps (1,024 tokens, `{short.run_dir}`) beside this run's 16." in text
    nmse = short.metrics["nmse"]
    assert f"| topk | 2 | 4 ± 0 | 4 ± 0 | {nmse.mean():.4g} ± {nmse.std():.2g} |" in text
    from interp.cli import main

    assert main(["sae-report", str(tmp_path / "saes" / "long"), "--out", str(tmp_path / "cli.md"),
                 "--against", str(tmp_path / "saes" / "long")]) == 0  # against itself: nothing moved
    assert "Training 1 x as long moved NMSE by less than 2% (or 0.001 of the variance) in 1 of 1 rows" in \
        (tmp_path / "cli.md").read_text()
    from interp.sae.report import write_report

    other = job.run(cfg("other", 4, sae={"name": "mc", "variant": "mutual_choice", "n_latents": 64, "k": 4}), **kwargs)
    with pytest.raises(ValueError, match="none of this run's groups"):
        write_report(tmp_path / "saes" / "long", tmp_path / "x.md", against=other.run_dir)

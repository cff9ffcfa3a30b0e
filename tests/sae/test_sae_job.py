import json

import sae_lens
import torch

from interp.sae import job, saving
from interp.sae.config import TrainConfig


def test_job_writes_a_loadable_run_with_metrics(tiny_model, tiny_tokens, tmp_path):
    cfg = job.JobConfig(model="tiny", hook="blocks.1.hook_resid_pre", cache_dir=str(tmp_path / "cache"),
                        out_dir=str(tmp_path / "saes"), saes=({"variant": "topk", "n_latents": 128, "k": 8},),
                        train=TrainConfig(batch_size=256, n_tokens=4096 * 3, lr=3e-3, warmup_steps=5),
                        report=str(tmp_path / "RESULTS.md"))
    result = job.run(cfg, progress=False, model=tiny_model, train_tokens=tiny_tokens,
                     eval_tokens=tiny_tokens[:16])
    run_dir = result.run_dir
    for name in ("cfg.json", "sae_weights.safetensors", "training.json", "metrics.json",
                 "feature_densities.safetensors"):
        assert (run_dir / name).is_file(), name
    row = result.metrics.loc["sae"]
    assert row["l0"] <= 8 and row["nmse"] < 0.6 and row["ce_recovered"] > 0.5
    assert abs(json.loads((run_dir / "metrics.json").read_text())[0]["nmse"] - row["nmse"]) < 1e-12
    assert json.loads((run_dir / "training.json").read_text())["job"]["hook"] == "blocks.1.hook_resid_pre"
    assert "## Sparsity level k = 8" in (tmp_path / "RESULTS.md").read_text()
    x = torch.randn(10, 32)
    ours, theirs = saving.load(run_dir), sae_lens.SAE.load_from_disk(str(run_dir))
    torch.testing.assert_close(theirs(x), ours(x), atol=1e-5, rtol=1e-5)
    # a second run reuses the cache and the checkpoint
    again = job.run(cfg, resume=True, progress=False, model=tiny_model, train_tokens=tiny_tokens,
                    eval_tokens=tiny_tokens[:16])
    torch.testing.assert_close(again.training.saes[0].W_enc, result.training.saes[0].W_enc)


def test_recipes_parse_and_bad_recipes_fail_before_compute(tmp_path):
    from pathlib import Path

    import pytest

    root = Path(__file__).resolve().parents[2] / "saes" / "recipes"
    default = job.JobConfig.from_toml(root / "default.toml")
    assert default == job.JobConfig()  # the recipe is the embedded default
    compare = job.JobConfig.from_toml(root / "compare.toml")
    assert {s["variant"] for s in compare.saes} == {"topk", "mutual_choice", "feature_choice", "gradient", "top_afa"}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[sae]]\nvariant = "relu"\n')
    with pytest.raises(ValueError, match="SAEConfig.variant='relu'"):
        job.JobConfig.from_toml(bad)
    bad.write_text('modle = "zoo-dense"\n')
    with pytest.raises(ValueError, match="unknown key"):
        job.JobConfig.from_toml(bad)


def test_cli_registers_train_and_eval(capsys):
    from interp.cli import build_parser, main

    parser = build_parser()
    args = parser.parse_args(["train-sae", "--k", "16", "--variant", "mutual_choice"])
    assert args.k == 16 and args.func.__name__ == "_train_sae"
    assert main(["train-sae", "--variant", "relu", "--no-progress"]) == 2
    assert "SAEConfig.variant='relu' is not allowed: one of topk" in capsys.readouterr().err


def test_default_cache_directory_follows_the_weights(tiny_model):
    """Retrained weights get a new cache: the job never reuses activations of other weights."""
    import torch

    from interp.sae.job import JobConfig, weights_fingerprint

    cfg = JobConfig()
    before = weights_fingerprint(tiny_model)
    assert before == weights_fingerprint(tiny_model) and len(before) == 8
    with torch.no_grad():
        tiny_model.W_U[0, 0] += 1.0
    after = weights_fingerprint(tiny_model)
    with torch.no_grad():
        tiny_model.W_U[0, 0] -= 1.0
    assert after != before
    assert cfg.store_dir(False, before) != cfg.store_dir(False, after)
    assert cfg.store_dir(False, before).name == f"{cfg.hook}-{cfg.cache_tokens}-{before}"

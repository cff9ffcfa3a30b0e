import json

import pytest
import sae_lens
import torch

from interp.config import flag_values
from interp.errors import ConfigError
from interp.sae import job, saving
from interp.sae.config import SAEConfig, SAETrainConfig


def test_job_writes_a_loadable_run_with_metrics(tiny_model, tiny_tokens, tmp_path):
    cfg = job.JobConfig(model="tiny", hook="blocks.1.hook_resid_pre", cache_dir=str(tmp_path / "cache"),
                        out_dir=str(tmp_path / "saes"), saes=({"variant": "topk", "n_latents": 128, "k": 8},),
                        train=SAETrainConfig(batch_size=256, n_tokens=4096 * 3, lr=3e-3, warmup_steps=5),
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
    from interp import resources

    default = job.JobConfig.from_toml(resources.recipe_path("default"))
    assert default == job.JobConfig()  # the recipe is the embedded default
    compare = job.JobConfig.from_toml(resources.recipe_path("compare"))
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
    args = parser.parse_args(["train-sae", "--k", "16", "--variant", "mutual_choice", "--train-tokens", "8192",
                              "--lr", "none", "--dtype", "bfloat16"])
    assert flag_values(args, SAEConfig, "sae") == {"k": 16, "variant": "mutual_choice"}
    assert flag_values(args, SAETrainConfig, "train") == {"n_tokens": 8192, "lr": None, "dtype": torch.bfloat16}
    assert args.func.__name__ == "_train_sae"
    cfg = job.with_overrides(job.JobConfig(), sae=flag_values(args, SAEConfig, "sae"),
                             train=flag_values(args, SAETrainConfig, "train"))
    assert cfg.train.lr is None and cfg.train.dtype is torch.bfloat16 and cfg.saes[0]["k"] == 16
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


@pytest.mark.parametrize("text, message", [
    ('[train]\nlr = "fast"\n', "SAETrainConfig.lr='fast' is not allowed: None or a number"),
    ("train = 5\n", "JobConfig.train=5 is not allowed: a table of SAETrainConfig fields"),
    ('[sae]\nvariant = "topk"\n', r"\[sae\] must be an array of tables: write \[\[sae\]\]"),
    ('[[sae]]\nmulti_topk = "yes"\n', r"JobConfig.saes\[0\]: SAEConfig.multi_topk='yes' is not allowed: true or false"),
    ("[[sae]]\ndead_tokens = true\n", "SAEConfig.dead_tokens=True is not allowed: an integer"),
    ('[[sae]]\nname = 3\n', r"JobConfig.saes\[0\].name=3 is not allowed: a string"),
    ("cache_tokens = 1.5\n", "JobConfig.cache_tokens=1.5 is not allowed: an integer"),
    ('[train]\ndtype = "int8"\n', "SAETrainConfig.dtype='int8' is not allowed: a dtype name"),
])
def test_malformed_recipes_name_the_file_and_field(tmp_path, text, message):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        job.JobConfig.from_toml(recipe)
    assert str(info.value).startswith(str(recipe))

import dataclasses
import json
import os
from pathlib import Path

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


# --- resume, locks and bad paths of the job (kills at write boundaries: tests/faults) ----------
SMALL_TRAIN = SAETrainConfig(batch_size=256, n_tokens=2048, lr=3e-3, warmup_steps=2, checkpoint_every=2,
                             init_tokens=1024)


def _small(tmp_path, **kw):
    return job.JobConfig(**{"model": "tiny", "hook": "blocks.1.hook_resid_pre", "cache_dir": str(tmp_path / "cache"),
                            "out_dir": str(tmp_path / "saes"), "run": "r", "train": SMALL_TRAIN,
                            "saes": ({"variant": "topk", "n_latents": 64, "k": 4},), **kw})


def _run(cfg, tiny_model, tiny_tokens, resume=False):
    return job.run(cfg, resume=resume, progress=False, model=tiny_model, train_tokens=tiny_tokens,
                   eval_tokens=tiny_tokens[:2])


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_resume_with_changed_settings_is_refused_at_the_cli(tiny_model, tiny_tokens, tmp_path, monkeypatch, capsys):
    from interp.cli import main

    cfg = _small(tmp_path)
    _run(cfg, tiny_model, tiny_tokens)
    before = _files(tmp_path / "saes")
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('model = "tiny"\nhook = "blocks.1.hook_resid_pre"\nrun = "r"\n'
                      f'cache_dir = "{tmp_path / "cache"}"\nout_dir = "{tmp_path / "saes"}"\n'
                      "[train]\nbatch_size = 256\nn_tokens = 2048\nlr = 0.003\nwarmup_steps = 2\n"
                      "checkpoint_every = 2\ninit_tokens = 1024\n"
                      '[[sae]]\nvariant = "topk"\nn_latents = 64\nk = 4\n')
    real = job.run
    monkeypatch.setattr(job, "run", lambda c, **kw: real(c, model=tiny_model, train_tokens=tiny_tokens,
                                                         eval_tokens=tiny_tokens[:2], **kw))
    assert main(["train-sae", "--config", str(recipe), "--resume", "--no-progress"]) == 0  # same settings: fine
    capsys.readouterr()
    assert main(["train-sae", "--config", str(recipe), "--resume", "--no-progress", "--lr", "0.001"]) == 2
    err = capsys.readouterr().err
    assert "train.lr is 0.003 in the checkpoint, 0.001 in this run" in err and "Traceback" not in err
    assert _files(tmp_path / "saes") == before


def test_a_second_writer_of_the_run_fails_at_once_naming_the_holder(tiny_model, tiny_tokens, tmp_path):
    from interp.locks import LockError, hold_lock

    with hold_lock(tmp_path / "saes" / "r", what="SAE run directory"):
        with pytest.raises(LockError, match=f"SAE run directory .*saes/r is being written by process {os.getpid()}"):
            _run(_small(tmp_path), tiny_model, tiny_tokens)
    assert not (tmp_path / "saes" / "r").exists()


def test_a_store_killed_in_its_first_manifest_write_is_started_over(tiny_model, tiny_tokens, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / ".manifest.json.tmp").write_bytes(b'{"model": "ti')  # what a kill there leaves
    assert _run(_small(tmp_path), tiny_model, tiny_tokens).run_dir.is_dir()


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.write_text("not json"), "manifest.json"),
    (lambda m: m.write_text(m.read_text().replace('"n_tokens": 4096', '"n_tokens": 2048')), "manifest says"),
])
def test_the_job_on_a_damaged_cache_names_the_cache_and_the_remedy(tiny_model, tiny_tokens, tmp_path, damage,
                                                                   message, monkeypatch, capsys):
    from interp.cache import StoreError
    from interp.cli import main

    cfg = _small(tmp_path)
    _run(cfg, tiny_model, tiny_tokens)
    damage(tmp_path / "cache" / "manifest.json")
    before = _files(tmp_path / "saes")
    with pytest.raises(StoreError, match=fr"{message}.*\[the job's cache .*cache: JobConfig.cache_dir \(--cache-dir\)\]$"):
        _run(cfg, tiny_model, tiny_tokens)
    real = job.run
    monkeypatch.setattr(job, "run", lambda c, **kw: real(c, model=tiny_model, train_tokens=tiny_tokens, **kw))
    assert main(["train-sae", "--model", "tiny", "--hook", "blocks.1.hook_resid_pre", "--cache-dir",
                 str(tmp_path / "cache"), "--out-dir", str(tmp_path / "saes"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "interp train-sae: error: " in err and message in err and "Traceback" not in err
    assert _files(tmp_path / "saes") == before


@pytest.mark.parametrize("field, make, message", [
    ("out_dir", lambda p: p.write_text("x"), "JobConfig.out_dir=.* is not allowed: .* is a file, not a directory"),
    ("cache_dir", lambda p: p.write_text("x"), "JobConfig.cache_dir=.* is not allowed: it is a file"),
    ("report", lambda p: p.mkdir(), "JobConfig.report=.* is not allowed: it is a directory"),
])
def test_output_paths_of_the_wrong_kind_fail_before_compute(tmp_path, field, make, message):
    target = tmp_path / "target"
    make(target)
    with pytest.raises(ConfigError, match=message):
        job.run(_small(tmp_path, **{field: str(target)}), progress=False, model=object())  # never touched


def test_a_job_without_gradients_reuses_a_store_that_has_them(tiny_model, tiny_tokens, tiny_store, tmp_path):
    """A store with gradients holds everything a job that needs none reads: it is reused, not
    refused for its has_grads (and left as it was)."""
    before = _files(tiny_store.path)
    cfg = _small(tmp_path, model="custom", cache_dir=str(tiny_store.path))  # the name the store records
    result = _run(cfg, tiny_model, tiny_tokens)
    assert result.metrics.loc["sae", "l0"] <= 4
    assert json.loads((result.run_dir / "training.json").read_text())["store"] == str(tiny_store.path)
    assert _files(tiny_store.path) == before

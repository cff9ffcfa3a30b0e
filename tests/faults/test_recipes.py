"""Malformed recipes and flags for `interp train-sae`, run through the CLI in-process. Each one
is a clear error (exit code 2, `interp train-sae: error: ...` naming the field or file, no
traceback; argparse's own usage error for a flag of the wrong type) and leaves every file that
was there before unchanged. The job runs on a tiny model (a case that slipped through would
train it and fail the exit-code assertion, not hang)."""

import dataclasses
import warnings
from pathlib import Path

import pytest
import torch

from interp.cli import main
from interp.sae import job

from fault_injection import files

pytestmark = pytest.mark.slow

HOOK = "blocks.1.hook_resid_pre"
TINY_TRAIN = {"batch_size": 256, "n_tokens": 1024, "lr": 3e-3, "warmup_steps": 2, "init_tokens": 512}

# (recipe text or None, extra flags, what stderr must contain). "{file}" is a path of a plain file.
RECIPES = [
    ('[train]\nlr = "fast"\n', [], "SAETrainConfig.lr='fast' is not allowed: None or a number"),
    ("train = 5\n", [], "JobConfig.train=5 is not allowed: a table of SAETrainConfig fields"),
    ('[sae]\nvariant = "topk"\n', [], "[sae] must be an array of tables: write [[sae]]"),
    ('[[sae]]\nmulti_topk = "yes"\n', [], "multi_topk='yes' is not allowed: true or false"),
    ("[[sae]]\ndead_tokens = true\n", [], "SAEConfig.dead_tokens=True is not allowed: an integer"),
    ("saes = []\n", [], "write each SAE as an [[sae]] table, not a 'saes' key"),
    ('modle = "zoo-dense"\n', [], "unknown key(s) ['modle']"),
    ("model = \n", [], "not valid TOML"),
    ('[[sae]]\nvariant = "relu"\n', [], "SAEConfig.variant='relu' is not allowed"),
    ("[[sae]]\nk = 0\n", [], "SAEConfig.k=0 is not allowed"),
    ("[[sae]]\nk = 4096\n", [], "SAEConfig.k=4096 is not allowed: at most n_latents=2048"),
    ("[[sae]]\nk = 32.5\n", [], "SAEConfig.k=32.5 is not allowed"),
    ("[[sae]]\nn_latents = -1\n", [], "SAEConfig.n_latents=-1 is not allowed"),
    ('[[sae]]\nnormalize = "batch"\n', [], "SAEConfig.normalize='batch' is not allowed"),
    ('[[sae]]\naux_loss = "l1"\n', [], "SAEConfig.aux_loss='l1' is not allowed"),
    ("[[sae]]\nfire_threshold = -1.0\n", [], "SAEConfig.fire_threshold=-1.0 is not allowed"),
    ("[[sae]]\ndensity_momentum = 1.5\n", [], "SAEConfig.density_momentum=1.5 is not allowed"),
    ("[[sae]]\nzipf_c = 0.0\n", [], "SAEConfig.zipf_c=0.0 is not allowed"),
    ("[[sae]]\nd_in = 64\n", [], "JobConfig.saes[0].d_in=64 is not allowed: d_in comes from the store"),
    ("[[sae]]\nname = 3\n", [], "JobConfig.saes[0].name=3 is not allowed: a string"),
    ('[[sae]]\nname = "a"\n[[sae]]\nname = "a"\n', [], "names ['a', 'a'] must be distinct"),
    ("[[sae]]\nparams = 5\n", [], "params=5 is not allowed"),
    ('[[sae]]\nvariant = "topk"\nparams = {capacity = "zipf"}\n', [], "capacity"),
    ('[[sae]]\nvariant = "gradient"\nbeta = "high"\n', [], "beta='high' is not allowed"),
    ('[[sae]]\nvariant = "top_afa"\nparams = {k_max = 0}\n', [], "k_max=0 is not allowed"),
    ("[[sae]]\nn_latents = 1099511627776\n", [], "GiB"),
    ("cache_tokens = 0\n", [], "JobConfig.cache_tokens=0 is not allowed: a positive integer"),
    ("cache_tokens = 1.5\n", [], "JobConfig.cache_tokens=1.5 is not allowed: an integer"),
    ("eval_tokens = -5\n", [], "JobConfig.eval_tokens=-5 is not allowed"),
    ('eval_seed = "x"\n', [], "JobConfig.eval_seed='x' is not allowed"),
    ("hook = 3\n", [], "JobConfig.hook=3 is not allowed: a string"),
    ('model = ["a"]\n', [], "JobConfig.model=['a'] is not allowed"),
    ("run = 5\n", [], "JobConfig.run=5 is not allowed"),
    ("report = 7\n", [], "JobConfig.report=7 is not allowed"),
    ("out_dir = 5\n", [], "JobConfig.out_dir=5 is not allowed"),
    ("[train]\nbatch_size = 0\n", [], "SAETrainConfig.batch_size=0 is not allowed"),
    ("[train]\nbatch_size = 1.5\n", [], "SAETrainConfig.batch_size=1.5 is not allowed"),
    ("[train]\nn_tokens = 10\n", [], "SAETrainConfig.n_tokens=10 is not allowed"),
    ("[train]\nwarmup_steps = -1\n", [], "SAETrainConfig.warmup_steps=-1 is not allowed"),
    ("[train]\ndecay_fraction = 2.0\n", [], "SAETrainConfig.decay_fraction=2.0 is not allowed"),
    ("[train]\nadam_beta1 = 1.0\n", [], "SAETrainConfig.adam_beta1=1.0 is not allowed"),
    ("[train]\nadam_eps = 0.0\n", [], "SAETrainConfig.adam_eps=0.0 is not allowed"),
    ('[train]\ndtype = "int8"\n', [], "SAETrainConfig.dtype='int8' is not allowed"),
    ('[train]\nbackend = "cuda"\n', [], "SAETrainConfig.backend='cuda' is not allowed"),
    ('[train]\ndevice = "tpu"\n', [], "SAETrainConfig.device='tpu'"),
    ("[train]\nseed = true\n", [], "SAETrainConfig.seed=True is not allowed"),
    ("[train]\nlr = 2.0\n", [], "SAETrainConfig.lr=2.0 is not allowed"),
    ('[train]\ncheckpoint_every = "often"\n', [], "SAETrainConfig.checkpoint_every='often' is not allowed"),
    ("[train]\nunknown = 1\n", [], "unknown key(s) ['unknown'] for SAETrainConfig"),
    ("[[train]]\nlr = 0.1\n", [], "JobConfig.train=[{'lr': 0.1}] is not allowed: a table"),
    ('hook = "blocks.99.hook_resid_pre"\n', [], "blocks.99.hook_resid_pre"),
]

FLAGS = [
    (["--k", "0"], "SAEConfig.k=0 is not allowed"),
    (["--variant", "relu"], "SAEConfig.variant='relu' is not allowed"),
    (["--batch-size", "0"], "SAETrainConfig.batch_size=0 is not allowed"),
    (["--train-tokens", "10"], "SAETrainConfig.n_tokens=10 is not allowed"),
    (["--eval-tokens", "0"], "JobConfig.eval_tokens=0 is not allowed"),
    (["--cache-tokens", "-1"], "JobConfig.cache_tokens=-1 is not allowed"),
    (["--n-latents", "1099511627776"], "GiB"),
    (["--decay-fraction", "-0.5"], "SAETrainConfig.decay_fraction=-0.5 is not allowed"),
    (["--device", "cuda:7"], "cuda:7"),
    (["--backend", "fast"], "SAETrainConfig.backend='fast' is not allowed"),
    (["--out-dir", "{file}"], "JobConfig.out_dir='{file}' is not allowed: {file} is a file, not a directory"),
    (["--out-dir", "{file}/saes"], "is a file, not a directory"),
    (["--run", "plain-file"], "JobConfig.run='plain-file' is not allowed: {out}/plain-file is a file"),
    (["--cache-dir", "{file}"], "JobConfig.cache_dir='{file}' is not allowed: it is a file"),
    (["--report", "{out}"], "JobConfig.report='{out}' is not allowed: it is a directory"),
    (["--config", "{tmp}/missing.toml"], "missing.toml: no such recipe file"),
    (["--config", "{out}"], "is a directory, not a TOML recipe file"),
    (["--config", "{binary}"], "not a TOML recipe (not UTF-8 text"),
]

USAGE_ERRORS = [  # argparse refuses these itself: usage line and exit code 2
    (["--lr", "fast"], "argument --lr: invalid"),
    (["--k", "abc"], "argument --k: invalid"),
    (["--dtype", "float16"], "argument --dtype: invalid choice: 'float16'"),
    (["--multi-topk", "yes"], "unrecognized arguments: yes"),
    (["--normalize", "batch"], "argument --normalize: invalid choice"),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A tiny model, its tokens and a directory with an earlier run, a cache and some files."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(HookedTransformerConfig(n_layers=2, d_model=32, n_ctx=32, d_head=8, n_heads=4,
                                                          d_mlp=64, act_fn="gelu", d_vocab=100,
                                                          normalization_type="LN", seed=0)).eval()
    tokens = torch.randint(0, 100, (32, 32), generator=torch.Generator().manual_seed(0))
    tmp = tmp_path_factory.mktemp("recipes")
    (tmp / "saes").mkdir()
    (tmp / "file").write_text("a plain file\n")
    (tmp / "saes" / "plain-file").write_text("not a run\n")
    (tmp / "binary.toml").write_bytes(b"\x80\x81\x82 model = 1\n")
    cfg = job.JobConfig(model="tiny", hook=HOOK, cache_dir=str(tmp / "cache"), out_dir=str(tmp / "saes"), run="earlier",
                        saes=({"n_latents": 64, "k": 4},), train=job.SAETrainConfig(**TINY_TRAIN))
    job.run(cfg, progress=False, model=model, train_tokens=tokens, eval_tokens=tokens[:2])
    return model, tokens, tmp


@pytest.fixture
def cli(world, monkeypatch, capsys):
    """Run `interp train-sae ARGV` in-process on the tiny model; returns (exit code, stderr)."""
    model, tokens, tmp = world
    real = job.run
    defaults = job.JobConfig()

    def tiny(cfg, **kw):  # the job's defaults point at the zoo: aim what the case left at a default at the tiny world
        fields = {"hook": HOOK} if cfg.hook == defaults.hook else {}
        fields.update({"model": "tiny"} if cfg.model == defaults.model else {})
        fields.update({"cache_dir": str(tmp / "cache")} if cfg.cache_dir is None else {})
        fields.update({"out_dir": str(tmp / "saes")} if cfg.out_dir == defaults.out_dir else {})
        if cfg.train == defaults.train:
            fields["train"] = dataclasses.replace(cfg.train, **TINY_TRAIN)
        return real(dataclasses.replace(cfg, **fields), model=model, train_tokens=tokens, eval_tokens=tokens[:2], **kw)

    monkeypatch.setattr(job, "run", tiny)

    def invoke(argv):
        capsys.readouterr()
        try:
            code = main(["train-sae", "--no-progress", *argv])
        except SystemExit as e:  # argparse's usage errors
            code = e.code
        return code, capsys.readouterr().err

    return invoke


def _fill(text: str, tmp: Path) -> str:
    return text.format(file=tmp / "file", out=tmp / "saes", tmp=tmp, binary=tmp / "binary.toml")


def _assert_clear_error(code, err, expected):
    assert code == 2, err
    assert "Traceback" not in err and "interp train-sae: error: " in err, err
    assert expected in err, err


@pytest.mark.parametrize("text, flags, expected", RECIPES, ids=[f"recipe{i}" for i in range(len(RECIPES))])
def test_a_malformed_recipe_is_a_clear_error_and_changes_nothing(world, cli, tmp_path, text, flags, expected):
    tmp = world[2]
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(text)
    before = files(tmp), files(tmp / "saes"), files(tmp / "saes" / "earlier"), files(tmp / "cache")
    code, err = cli(["--config", str(recipe), "--run", "case", *flags])
    _assert_clear_error(code, err, expected)
    assert (files(tmp), files(tmp / "saes"), files(tmp / "saes" / "earlier"), files(tmp / "cache")) == before
    assert not (tmp / "saes" / "case").exists() and not (tmp / "saes" / ".case.partial").exists()


@pytest.mark.parametrize("flags, expected", FLAGS, ids=[f"flags{i}" for i in range(len(FLAGS))])
def test_a_malformed_flag_is_a_clear_error_and_changes_nothing(world, cli, flags, expected):
    tmp = world[2]
    before = files(tmp), files(tmp / "saes"), files(tmp / "saes" / "earlier"), files(tmp / "cache")
    code, err = cli([_fill(f, tmp) for f in flags] + ([] if "--run" in flags else ["--run", "case"]))
    _assert_clear_error(code, err, _fill(expected, tmp))
    assert (files(tmp), files(tmp / "saes"), files(tmp / "saes" / "earlier"), files(tmp / "cache")) == before
    assert not (tmp / "saes" / "case").exists()


@pytest.mark.parametrize("flags, expected", USAGE_ERRORS, ids=[f"usage{i}" for i in range(len(USAGE_ERRORS))])
def test_a_flag_of_the_wrong_type_is_a_usage_error(world, cli, flags, expected):
    code, err = cli(flags)
    assert code == 2 and expected in err and "usage: interp" in err and "Traceback" not in err, err


def test_there_are_at_least_fifty_cases():
    assert len(RECIPES) + len(FLAGS) + len(USAGE_ERRORS) >= 50

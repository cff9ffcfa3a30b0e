"""Transcoders and skip-transcoders: trained from one command on (input, target) pairs of one
store, with every sparsity rule, evaluated with their prediction spliced in, and loaded by
sae-lens with identical outputs."""

import json

import pytest
import sae_lens
import torch

import interp.cache
import interp.sae.sae_lens_classes  # noqa: F401  (registers topk_transcoder for sae-lens)
from interp.errors import ConfigError
from interp.sae import job, saving
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.init import initialize_from_data, skip_fit
from interp.sae.module import SparseAutoencoder
from interp.sae.objective import training_loss
from interp.sae.stats import LatentStats
from interp.sae.trainer import train

IN, OUT = "blocks.1.ln2.hook_normalized", "blocks.1.hook_mlp_out"
VARIANTS = ("topk", "mutual_choice", "feature_choice", "gradient", "top_afa")


@pytest.fixture(scope="module")
def pair_store(tiny_model, tiny_tokens, tmp_path_factory):
    """4096 tokens of the MLP's input and output of block 1 (one pass), with gradients."""
    return interp.cache.write(tiny_model, [IN, OUT], tiny_tokens, tmp_path_factory.mktemp("pairs") / "s",
                              grads=True, progress=False)


def _small_job(tmp_path, **overrides) -> job.JobConfig:
    values = {"model": "tiny", "hook": IN, "target_hook": OUT, "cache_dir": str(tmp_path / "cache"),
              "out_dir": str(tmp_path / "saes"), "run": "tc",
              "saes": ({"kind": "skip_transcoder", "variant": "topk", "n_latents": 128, "k": 8},),
              "train": SAETrainConfig(batch_size=256, n_tokens=4096 * 2, lr=3e-3, warmup_steps=5)}
    return job.JobConfig(**{**values, **overrides})


def test_pair_batches_share_one_shuffle(pair_store):
    a = next(iter(pair_store.batches(64, hook=IN, seed=3, target_hook=OUT, with_grads=True)))
    b = next(iter(pair_store.batches(64, hook=OUT, seed=3, with_grads=True)))
    assert torch.equal(a.target, b.acts) and torch.equal(a.grads, b.grads)  # grads: dL/d(target)
    c = next(iter(pair_store.batches(64, hook=IN, seed=3)))
    assert torch.equal(a.acts, c.acts) and torch.equal(a.index, c.index)


def test_skip_fit_is_the_least_squares_map():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, 6, generator=gen)
    W = torch.randn(4, 6, generator=gen)
    y = x @ W.T + 3 + 0.01 * torch.randn(500, 4, generator=gen)
    torch.testing.assert_close(skip_fit(x, y), W, atol=5e-3, rtol=0)


@pytest.mark.parametrize("kind", ["transcoder", "skip_transcoder"])
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_sparsity_rule_trains_a_transcoder(pair_store, variant, kind):
    cfg = SAEConfig(d_in=32, d_out=32, kind=kind, variant=variant, n_latents=128, k=8, normalize="scale")
    result = train(pair_store, cfg, SAETrainConfig(batch_size=256, n_tokens=4096 * 2, lr=3e-3, warmup_steps=5),
                   hook=IN, target_hook=OUT, progress=False)
    first, last = result.history[0], result.history[-1]
    assert last["nmse"] < first["nmse"] and last["nmse"] < 1.0, (first, last)
    sae = result.saes[0]
    batch = next(iter(pair_store.batches(512, hook=IN, target_hook=OUT, with_grads=True, seed=9)))
    g = batch.grads if variant == "gradient" else None
    assert sae.decode(sae.encode(batch.acts, g), batch.acts).shape == batch.target.shape


def test_the_loss_is_the_targets_nmse_and_the_skip_path_is_learned():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(512, 8, generator=gen)
    y = x @ torch.randn(8, 12, generator=gen) + 0.5
    sae = SparseAutoencoder(SAEConfig(d_in=8, d_out=12, kind="skip_transcoder", n_latents=32, k=2))
    initialize_from_data(sae, x, y)
    out = training_loss(sae, x, None, LatentStats.new(32), y)
    # a linear target is explained by the skip path's least-squares fit and b_dec alone
    skip_only = (sae.skip_scaled(x) + sae.b_dec).detach()
    assert float(((y - skip_only).pow(2).sum() / (y - y.mean(0)).pow(2).sum())) < 1e-4
    manual = (y - out.x_hat).pow(2).sum() / (y - y.mean(0)).pow(2).sum()
    torch.testing.assert_close(out.parts["nmse"], manual)
    with pytest.raises(ValueError, match="target_BD"):
        training_loss(sae, x, None, LatentStats.new(32))


@pytest.mark.parametrize("variant,arch", [("topk", "topk_skip_transcoder"),
                                          ("feature_choice", "jumprelu_skip_transcoder")])
def test_sae_lens_loads_it_with_identical_outputs(pair_store, tmp_path, variant, arch):
    cfg = SAEConfig(d_in=32, d_out=32, kind="skip_transcoder", variant=variant, n_latents=64, k=4, normalize="scale")
    sae = train(pair_store, cfg, SAETrainConfig(batch_size=256, n_tokens=2048, lr=3e-3, warmup_steps=5),
                hook=IN, target_hook=OUT, progress=False).saes[0]
    saving.save(sae, tmp_path / "tc", model_name="tiny", hook_name=IN, hook_name_out=OUT)
    raw = json.loads((tmp_path / "tc" / "cfg.json").read_text())
    assert raw["architecture"] == arch and raw["metadata"]["hook_name_out"] == OUT
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "tc"))
    ours = saving.load(tmp_path / "tc")
    x = next(iter(pair_store.batches(200, hook=IN, seed=4))).acts
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), sae(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours(x), sae(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(theirs.encode(x), torch.zeros(200, 64).scatter(
            1, sae.encode(x).top_indices, sae.encode(x).top_acts) if variant == "topk" else
            sae_code_dense(sae, x), atol=1e-5, rtol=1e-5)


def sae_code_dense(sae, x):
    from interp.sae.module import code_to_dense

    return code_to_dense(sae.encode(x), sae.cfg.n_latents)


def test_one_command_trains_evaluates_and_writes_a_skip_transcoder(tiny_model, tiny_tokens, tmp_path):
    result = job.run(_small_job(tmp_path), progress=False, model=tiny_model, train_tokens=tiny_tokens,
                     eval_tokens=tiny_tokens[:16])
    row = result.metrics.loc["sae"]
    assert row["kind"] == "skip_transcoder" and row["l0"] <= 8
    assert row["nmse"] < 0.5 and row["ce_recovered"] > 0.5 and 0 < row["skip_fve"] < 1
    assert row["nmse"] < 1 - row["skip_fve"]  # the latents explain more than the skip path alone
    meta = json.loads((result.run_dir / "cfg.json").read_text())["metadata"]
    assert (meta["hook_name"], meta["hook_name_out"]) == (IN, OUT)
    store = interp.cache.open_store(tmp_path / "cache")
    assert store.hooks == [IN, OUT]


def test_layers_train_one_transcoder_per_mlp_from_one_cache(tiny_model, tiny_tokens, tmp_path):
    cfg = _small_job(tmp_path, hook="blocks.{layer}.ln2.hook_normalized", target_hook="blocks.{layer}.hook_mlp_out",
                     layers=(0, 1), saes=({"variant": "topk", "n_latents": 64, "k": 4},),
                     train=SAETrainConfig(batch_size=256, n_tokens=1024, lr=3e-3, warmup_steps=2))
    result = job.run(cfg, progress=False, model=tiny_model, train_tokens=tiny_tokens, eval_tokens=tiny_tokens[:8])
    assert list(result.metrics.index) == ["L0", "L1"] and list(result.metrics["layer"]) == [0, 1]
    assert list(result.metrics["kind"]) == ["transcoder"] * 2  # kind defaults to transcoder with a target
    for layer in (0, 1):
        meta = json.loads((result.run_dir / f"L{layer}" / "cfg.json").read_text())["metadata"]
        assert meta["hook_name_out"] == f"blocks.{layer}.hook_mlp_out"
    assert len(interp.cache.open_store(tmp_path / "cache").hooks) == 4


@pytest.mark.parametrize("overrides,match", [
    ({"target_hook": None}, "needs a target"),
    ({"saes": ({"kind": "sae"},)}, "kind='sae' is not allowed"),
    ({"target_hook": IN}, "it is the input hook"),
    ({"saes": ({"kind": "transcoder", "d_out": 16},)}, "d_out comes from the store"),
    ({"saes": ({"kind": "transcoder", "normalize": "layer_norm"},)}, "normalize"),
    ({"layers": (0, 1)}, "a template with {layer}"),
])
def test_bad_transcoder_recipes_are_refused_naming_the_field(tmp_path, overrides, match):
    with pytest.raises(ConfigError, match=match):
        _small_job(tmp_path, **overrides)


def test_a_target_before_its_input_or_a_missing_hook_is_refused_before_any_cache(tiny_model, tmp_path):
    for target, match in ((IN, "comes before the input hook"), ("blocks.1.hook_nope", "not a hook of the model")):
        cfg = _small_job(tmp_path, hook=OUT if target == IN else IN, target_hook=target)
        with pytest.raises(ConfigError, match=match):
            job.run(cfg, progress=False, model=tiny_model)
    assert not (tmp_path / "cache").exists()


def test_a_transcoder_is_refused_with_another_targets_width(pair_store):
    cfg = SAEConfig(d_in=32, d_out=48, kind="transcoder", n_latents=64, k=4)
    with pytest.raises(ValueError, match="d_out=48 but the store's target hook"):
        train(pair_store, cfg, SAETrainConfig(batch_size=256, n_tokens=1024), hook=IN, target_hook=OUT,
              progress=False)


def test_a_layered_run_exports_as_one_transcoder_set(tiny_model, tiny_tokens, tmp_path):
    from safetensors.torch import load_file

    from interp.cli import main

    cfg = _small_job(tmp_path, hook="blocks.{layer}.ln2.hook_normalized", target_hook="blocks.{layer}.hook_mlp_out",
                     layers=(0, 1), train=SAETrainConfig(batch_size=256, n_tokens=1024, lr=3e-3, warmup_steps=2))
    result = job.run(cfg, progress=False, model=tiny_model, train_tokens=tiny_tokens, eval_tokens=tiny_tokens[:8])
    assert main(["export-transcoders", str(result.run_dir), "--out", str(tmp_path / "set")]) == 0
    config = json.loads((tmp_path / "set" / "config.json").read_text())
    assert (config["feature_input_hook"], config["feature_output_hook"]) == ("ln2.hook_normalized", "hook_mlp_out")
    x = torch.randn(50, 32)
    for entry in config["transcoders"]:
        w = load_file(tmp_path / "set" / entry["filepath"])
        pre = x @ w["W_enc"].T + w["b_enc"]
        top = pre.topk(entry["k"], dim=-1)
        f = torch.zeros_like(pre).scatter(1, top.indices, top.values.relu())
        y = f @ w["W_dec"].T + w["b_dec"] + x @ w["W_skip"].T  # the README's formula
        ours = saving.load(result.run_dir / entry["id"])
        with torch.no_grad():
            torch.testing.assert_close(y, ours(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ConfigError, match="transcoders only"):
        from interp.sae.export import export_transcoders

        sae_run = job.run(_small_job(tmp_path, target_hook=None, hook=IN, run="plain", cache_dir=str(tmp_path / "c2"),
                                     saes=({"variant": "topk", "n_latents": 64, "k": 4},),
                                     train=SAETrainConfig(batch_size=256, n_tokens=1024)),
                          progress=False, model=tiny_model, train_tokens=tiny_tokens, eval_tokens=tiny_tokens[:8])
        export_transcoders(sae_run.run_dir, tmp_path / "bad")


def test_a_transcoder_latent_steers_where_its_target_adds_and_has_logit_effects(zoo_dense, tmp_path):
    from interp.hooks import residual_equivalent
    from interp.sae.features import logit_effects
    from interp.steering import Direction

    assert residual_equivalent("blocks.1.hook_mlp_out") == (1, "resid_post")
    assert residual_equivalent("blocks.1.hook_attn_out") == (1, "resid_mid")
    assert residual_equivalent("blocks.1.hook_resid_pre") == (1, "resid_pre")
    assert residual_equivalent("blocks.1.ln2.hook_normalized") is None
    sae = SparseAutoencoder(SAEConfig(d_in=128, d_out=128, kind="transcoder", n_latents=16, k=2))
    saving.save(sae, tmp_path / "tc", model_name="zoo-dense", hook_name=IN, hook_name_out=OUT)
    direction = Direction.from_sae_latent(str(tmp_path / "tc"), 3)
    assert (direction.layer, direction.site) == (1, "resid_post")
    torch.testing.assert_close(direction.vector, sae.W_dec[3].detach() / sae.W_dec[3].norm().detach())
    effects = logit_effects(sae, zoo_dense, 3, k=4)
    expected = (sae.W_dec[3].detach() @ zoo_dense.W_U.detach()).topk(4)
    assert effects[effects["sign"] == "+"]["token_id"].tolist() == expected.indices.tolist()

"""The variant contract: one file and one register_variant call add a variant; each variant
owns its config; format-1 (flat) configs and recipes still load."""

import json
from dataclasses import dataclass

import pytest
import torch

import interp.sae
from interp import resources
from interp.errors import ConfigError
from interp.sae import losses, registry, saving
from interp.sae.config import SAEConfig
from interp.sae.registry import register_variant
from interp.sae.variants.top_afa import TopAFAConfig
from interp.sae.variants.topk import TopK, TopKConfig


# --- the README's example variant: a TopK SAE whose activations are capped -------------------
@dataclass(frozen=True)
class CappedConfig(TopKConfig):  # TopK's params (multi_topk) plus its own
    cap: float = 4.0
    """Largest value a latent may take."""


class CappedTopK(TopK):
    sae_lens_architecture = None  # interp-only: sae-lens has no capped TopK

    def encode_train(self, sae, x_BD, grads_BD, aux_mask_N, stats):
        code = super().encode_train(sae, x_BD, grads_BD, aux_mask_N, stats)
        return code._replace(top_acts=code.top_acts.clamp(max=self.params.cap))

    def encode(self, sae, x_BD, grads_BD):
        return self.encode_train(sae, x_BD, grads_BD, None, None)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def registered(monkeypatch):
    """CappedTopK registered for one test (the registry is restored after it)."""
    monkeypatch.setattr(registry, "VARIANTS", dict(registry.VARIANTS))
    monkeypatch.setattr(registry, "_CONFIGS", dict(registry._CONFIGS))
    register_variant("capped_topk", CappedTopK, CappedConfig)


def test_a_new_variant_trains_saves_and_loads_through_the_one_registration(registered, tiny_store, tmp_path):
    cfg = SAEConfig(d_in=32, n_latents=96, k=6, variant="capped_topk", params={"cap": 0.5}, dead_tokens=1024)
    assert cfg.params == CappedConfig(cap=0.5)
    result = interp.sae.train(tiny_store, cfg, interp.sae.SAETrainConfig(batch_size=256, lr=3e-3, warmup_steps=3),
                              progress=False)
    sae = result.saes[0]
    x = next(iter(tiny_store.batches(4096, shuffle=False))).acts
    with torch.no_grad():
        code = sae.encode(x)
        assert float(code.top_acts.max()) <= 0.5
        assert float(losses.nmse(sae(x), x)) < 0.9
    interp.sae.save(sae, tmp_path)
    written = json.loads((tmp_path / "cfg.json").read_text())
    assert written["architecture"] == "capped_topk"
    assert written["interp"]["params"] == {"multi_topk": False, "cap": 0.5} and written["interp"]["format_version"] == 2
    with torch.no_grad():
        torch.testing.assert_close(interp.sae.load(tmp_path)(x), sae(x))


def test_a_field_of_another_variant_is_an_error_naming_it():
    with pytest.raises(ConfigError, match=r"SAEConfig.k_max=5 is not allowed for variant 'topk': k_max is a "
                                          r"hyper-parameter of top_afa; topk's params \(TopKConfig\): multi_topk"):
        SAEConfig(d_in=16, n_latents=64, variant="topk", k_max=5)
    with pytest.raises(ConfigError, match=r"SAEConfig.params.beta=0.5 is not allowed for variant 'top_afa': beta "
                                          r"is a hyper-parameter of gradient"):
        SAEConfig.from_dict({"d_in": 16, "variant": "top_afa", "params": {"beta": 0.5}})
    with pytest.raises(ConfigError, match=r"SAEConfig.params=TopAFAConfig\(.*\) is not allowed for variant "
                                          r"'topk': None, a table or a TopKConfig"):
        SAEConfig(d_in=16, n_latents=64, params=TopAFAConfig())
    with pytest.raises(ConfigError, match=r"TopAFAConfig.k_max=100 is not allowed: None or an integer in "
                                          r"\[1, n_latents=64\]"):
        SAEConfig(d_in=16, n_latents=64, variant="top_afa", params={"k_max": 100})


def test_the_committed_format_1_sae_loads_as_format_2():
    path = resources.sae_path()
    flat = json.loads((path / "cfg.json").read_text())["interp"]
    assert "params" not in flat and "beta" in flat  # the shipped SAE is a format-1 save
    cfg = SAEConfig.from_dict({k: v for k, v in flat.items() if k != saving.CHECKSUM})
    assert cfg == SAEConfig(d_in=128, n_latents=2048, k=32, dead_tokens=250_000)
    assert cfg.params == TopKConfig(multi_topk=False) and cfg.format_version == 2
    sae = interp.sae.load(path)
    assert sae.cfg == cfg


def test_format_1_keys_convert_and_unconvertible_ones_fail():
    flat = {"d_in": 16, "n_latents": 64, "k": 4, "variant": "gradient", "beta": 0.25, "multi_topk": True,
            "capacity": "uniform", "threshold_momentum": 0.9, "afa_coef": 1 / 32, "k_max": None}
    assert SAEConfig.from_dict(flat).params == interp.sae.variants.gradient.GradientConfig(multi_topk=True, beta=0.25)
    with pytest.raises(ConfigError, match=r"SAEConfig.threshold_momentum=0.5 is not allowed for variant "
                                          r"'gradient': threshold_momentum is a hyper-parameter of mutual_choice, "
                                          r"batchtopk, feature_choice"):
        SAEConfig.from_dict({**flat, "threshold_momentum": 0.5})
    with pytest.raises(ConfigError, match=r"SAEConfig.format_version=3 is not allowed: 2 \(this interp reads"):
        SAEConfig.from_dict({"d_in": 16, "format_version": 3})


def test_flat_and_nested_recipes_build_the_same_saes(tmp_path):
    from interp.sae import job

    flat, nested = tmp_path / "flat.toml", tmp_path / "nested.toml"
    flat.write_text('[[sae]]\nvariant = "top_afa"\nn_latents = 2048\nk_max = 256\nafa_coef = 0.05\n')
    nested.write_text('[[sae]]\nvariant = "top_afa"\nn_latents = 2048\n[sae.params]\nk_max = 256\nafa_coef = 0.05\n')
    a, b = (job.JobConfig.from_toml(p).sae_configs(128) for p in (flat, nested))
    assert a == b and a[0].params == TopAFAConfig(afa_coef=0.05, k_max=256)
    compare = job.JobConfig.from_toml(resources.recipe_path("compare"))
    afa = [c for c in compare.sae_configs(128) if c.variant == "top_afa"]
    assert afa[0].params == TopAFAConfig(afa_coef=1 / 32, k_max=8)  # its sweep over the cap, seeds innermost
    assert sorted({c.params.k_max for c in afa}) == [8, 16, 32, 64, 128, 256]
    nested.write_text('[[sae]]\nvariant = "topk"\n[sae.params]\nk_max = 256\n')
    with pytest.raises(ConfigError, match=r"JobConfig.saes\[0\]: SAEConfig.params.k_max=256 is not allowed for "
                                          r"variant 'topk'"):
        job.JobConfig.from_toml(nested)


def test_registration_is_checked(registered):
    with pytest.raises(ConfigError, match="'capped_topk' is already registered as CappedTopK"):
        register_variant("capped_topk", TopK, CappedConfig)
    with pytest.raises(ConfigError, match="name='Capped-TopK' is not allowed"):
        register_variant("Capped-TopK", CappedTopK, CappedConfig)
    with pytest.raises(ConfigError, match="is not a frozen dataclass subclassing"):
        register_variant("capped2", CappedTopK, dict)


def test_variants_declare_what_they_need():
    from interp.sae.registry import VARIANTS

    assert [n for n, v in VARIANTS.items() if v.needs_grads] == ["gradient"]
    assert [n for n, v in VARIANTS.items() if len(v.inference_modes) > 1] == ["mutual_choice", "batchtopk",
                                                                              "feature_choice", "gradient"]
    assert [n for n, v in VARIANTS.items() if v.sae_lens_architecture is None] == ["top_afa"]
    assert SAEConfig(d_in=8, n_latents=8, k=2, variant="gradient").needs_grads


def test_variant_flags_reach_the_params_and_a_foreign_one_is_refused(capsys):
    from interp.cli import build_parser, main
    from interp.config import flag_values
    from interp.sae import job
    from interp.sae.cli import variant_flag_values

    args = build_parser().parse_args(["train-sae", "--variant", "top_afa", "--k-max", "64", "--afa-coef", "0.1"])
    cfg = job.with_overrides(job.JobConfig(), sae={**flag_values(args, SAEConfig, "sae"), **variant_flag_values(args)})
    assert cfg.sae_configs(128)[0].params == TopAFAConfig(afa_coef=0.1, k_max=64)
    assert main(["train-sae", "--k-max", "64", "--no-progress"]) == 2  # the default SAE is a topk one
    assert "SAEConfig.k_max=64 is not allowed for variant 'topk'" in capsys.readouterr().err

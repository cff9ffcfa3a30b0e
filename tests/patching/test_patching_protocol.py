"""The IOI protocol, its report, the CLI and the figures; the same code on GPT-2 small."""

import pandas as pd
import pytest

from interp import resources
from interp.patching import COLUMNS
from interp.patching.protocol import ioi_inputs, run_protocol


def test_ioi_inputs_align_and_the_template_index_is_checked(zoo_dense):
    from interp.tasks import ioi

    x = ioi_inputs(zoo_dense, n=8, split="train", template=4)
    assert x.clean.shape == x.corrupt.shape and x.clean.shape[0] == 8
    assert x.accuracy == pytest.approx(1.0)
    assert x.metric(zoo_dense(x.clean)).item() == pytest.approx(1.0)
    assert x.metric(zoo_dense(x.corrupt)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match=f"template={len(ioi.TRAIN_TEMPLATES)}"):
        ioi_inputs(zoo_dense, n=2, template=len(ioi.TRAIN_TEMPLATES))


def test_protocol_correlations_and_timing(zoo_dense, ioi_small):
    res = run_protocol(zoo_dense, ioi_small, repeats=1)
    assert set(res.scores["method"]) == {"ap", "atp", "relp"}
    assert set(res.correlations["component"]) == {"resid_pre", "attn_out", "mlp_out"}
    relp = res.correlations[res.correlations["method"] == "relp"].set_index("component")["pearson"]
    assert (relp > 0.8).all()  # on a model that does the task, RelP tracks exact patching
    assert res.seconds["ap"] > 0 and res.speedup == res.seconds["ap"] / res.seconds["relp"]


def test_protocol_report_with_sae_circuits(tmp_path, zoo_dense):
    from interp.patching.protocol import ioi_study
    from interp.patching.report import write_ioi_report

    study = ioi_study("zoo-dense", n=4, templates=(0,), sae_path=resources.sae_path(),
                      sizes=(0, 10, 100), ig_steps=2, model=zoo_dense)
    assert study.correlations.columns.tolist() == ["component", "atp", "relp"]
    assert study.sae.n_nodes == study.sae.n_latents * len(study.tokens)  # every (latent, position)
    out = write_ioi_report(study, tmp_path / "relp.md")
    text = out.read_text()
    for needed in ("interp patch protocol --model zoo-dense", "## Targets", "RelP Pearson r, mlp_out",
                   "AP sweep / RelP", "faithfulness", "| 100 |"):
        assert needed in text
    assert (tmp_path / "relp_maps.png").stat().st_size > 10_000
    assert (tmp_path / "relp_faithfulness.png").stat().st_size > 5_000


def _study(atp: dict, relp: dict, ap_seconds: float = 8.0):
    """A study with the given Pearson r per component (AtP, RelP) and no SAE comparison."""
    from interp.patching.protocol import IOIStudy

    components = sorted(atp)
    return IOIStudy(
        model_name="zoo-dense", n_layers=4, d_model=128, n=32, split="heldout", seed=0,
        templates=pd.DataFrame([dict(template=0, text="When {A} and {B} went to the {place}, {S} gave a {obj} to",
                                     prompts=32, accuracy=1.0, ld_clean=7.8, ld_corrupt=-7.0)]),
        correlations=pd.DataFrame(dict(component=components, atp=[atp[c] for c in components],
                                       relp=[relp[c] for c in components])),
        across_templates=None, seconds={"ap": ap_seconds, "atp": 0.2, "relp": 0.2},
        checks=pd.DataFrame([dict(method="relp", top_k=10, pearson=0.99)]), maps=pd.DataFrame())


def _verdict(markdown_text: str) -> str:
    return next(line for line in markdown_text.splitlines() if line.startswith("AtP's lowest r"))


def test_verdict_follows_the_measured_correlations():
    from interp.patching.report import ioi_markdown, targets

    close = _study(atp=dict(attn_out=0.997, mlp_out=0.997, resid_pre=0.960),
                   relp=dict(attn_out=0.998, mlp_out=0.998, resid_pre=0.998))
    fails = _study(atp=dict(attn_out=0.979, mlp_out=0.195, resid_pre=0.753),
                   relp=dict(attn_out=0.962, mlp_out=0.992, resid_pre=0.968), ap_seconds=1.0)
    v_close, v_fails = _verdict(ioi_markdown(close, "r.md")), _verdict(ioi_markdown(fails, "r.md"))
    assert "does not appear on zoo-dense (4 layers, d_model 128)" in v_close
    assert "differ by little here (largest gap RelP - AtP = +0.038, resid_pre)" in v_close
    assert "appears on zoo-dense (4 layers, d_model 128), on mlp_out, as in the paper" in v_fails
    assert "mlp_out (AtP 0.195, RelP 0.992), resid_pre (AtP 0.753, RelP 0.968)" in v_fails
    assert "differ by little" not in v_fails and "largest gap RelP - AtP = +0.797, mlp_out" in v_fails
    # the targets' met column comes from the same numbers: 1.0 s / 0.2 s = 5x misses the 10x bound
    assert [t.met for t in targets(close)] == [True, True, True, True]
    assert [t.met for t in targets(fails)] == [True, True, True, False]
    assert "| AP sweep / RelP wall-clock | 5.000 | >= 10x | NO |" in ioi_markdown(fails, "r.md")


def test_verdict_when_relp_fails_too():
    from interp.patching.report import comparison

    both = comparison(_study(atp=dict(attn_out=0.95, mlp_out=0.5, resid_pre=0.95),
                             relp=dict(attn_out=0.7, mlp_out=0.6, resid_pre=0.96)))
    assert "does not appear on zoo-dense (4 layers, d_model 128)." in both
    assert "Neither method reaches r 0.9 on mlp_out (AtP 0.500, RelP 0.600)." in both
    assert "RelP's r is below 0.9 where AtP's is not on attn_out (AtP 0.950, RelP 0.700)." in both


def test_cli_writes_csv_and_heatmap(tmp_path, capsys):
    from interp.cli import main

    assert main(["patch", "ioi", "--model", "zoo-dense", "--method", "atp", "--n", "2", "--components",
                 "resid_pre,head", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "ioi-zoo-dense-atp.csv")
    assert list(df.columns) == COLUMNS and set(df["component"]) == {"resid_pre", "head"}
    assert (tmp_path / "ioi-zoo-dense-atp.png").read_bytes()[:4] == b"\x89PNG"
    assert "wrote" in capsys.readouterr().out
    assert main(["patch", "ioi", "--components", "mlp", "--n", "2", "--out", str(tmp_path)]) == 2
    assert "components=" in capsys.readouterr().err


def test_same_protocol_on_gpt2_small(monkeypatch):
    import huggingface_hub.constants

    from interp.models import ModelLoadError, load_model

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # never try the network
    try:
        model = load_model("gpt2")
    except ModelLoadError as e:
        pytest.skip(f"GPT-2 small is not available offline: {e}")
    x = ioi_inputs(model, n=4, split="train", template=0)
    res = run_protocol(model, x, repeats=1)
    assert x.accuracy > 0.5
    assert len(res.correlations) == 6 and res.correlations["pearson"].notna().all()

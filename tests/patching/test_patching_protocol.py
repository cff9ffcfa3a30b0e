"""The IOI protocol, its report, the CLI and the figures; the same code on GPT-2 small."""

import pandas as pd
import pytest

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
    from interp.patching.report import write_ioi_report

    out = write_ioi_report("zoo-dense", n=4, templates=(0,), sae_path="saes/zoo-dense-blocks.2.hook_resid_pre-topk-k32",
                           out=tmp_path / "relp.md", sizes=(0, 10, 100), ig_steps=2)
    text = out.read_text()
    for needed in ("interp patch protocol --model zoo-dense", "## Targets", "RelP Pearson r, mlp_out",
                   "AP sweep / RelP", "faithfulness", "| 100 |"):
        assert needed in text
    assert (tmp_path / "relp_maps.png").stat().st_size > 10_000
    assert (tmp_path / "relp_faithfulness.png").stat().st_size > 5_000


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

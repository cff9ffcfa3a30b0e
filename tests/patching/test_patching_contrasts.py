"""The built-in contrasts, the protocol command on them and on a pair file, and the verdicts."""

import json

import pandas as pd
import pytest

from interp.errors import ConfigError
from interp.patching.contrasts import CONTRASTS, contrast_inputs, jailbreak_pairs, refusal_pairs


@pytest.mark.parametrize("name", list(CONTRASTS))
def test_contrasts_align_and_the_metric_is_calibrated(zoo_dense, name):
    x = contrast_inputs(zoo_dense, name, n=4, split="train", seed=0)
    assert x.clean.shape == x.corrupt.shape and x.clean.shape[0] == 4
    assert not (x.clean == x.corrupt).all(dim=1).any()  # every pair differs somewhere
    assert x.metric(zoo_dense(x.clean)).item() == pytest.approx(1.0, abs=1e-5)
    assert x.metric(zoo_dense(x.corrupt)).item() == pytest.approx(0.0, abs=1e-5)
    assert x.accuracy == pytest.approx(1.0)  # the zoo has each planted behaviour


def test_refusal_pairs_are_harmful_against_benign(zoo_moe):
    from interp.tasks import refusal

    pairs = refusal_pairs(zoo_moe, 6)
    harmful = {a for a in refusal.actions("harmful", "train")}
    benign = {a for a in refusal.actions("benign", "train")}
    assert all(any(a in p.clean for a in harmful) and any(a in p.corrupt for a in benign) for p in pairs)
    assert {(p.answer, p.wrong) for p in pairs} == {(" I", " Sure")}  # refusal's and compliance's first tokens
    assert len({len(zoo_moe.to_tokens(t)[0]) for p in pairs for t in (p.clean, p.corrupt)}) == 1


def test_jailbreak_pairs_wrap_the_same_request(zoo_dense):
    from interp.patching.contrasts import NEUTRAL_PREAMBLES
    from interp.tasks import refusal

    pairs = jailbreak_pairs(zoo_dense, 6)
    for p in pairs:
        jb = [w for w in refusal.TRAIN_WRAPPERS if w.removesuffix("{r}") in p.clean]
        neutral = [w for w in NEUTRAL_PREAMBLES if w.removesuffix("{r}") in p.corrupt]
        assert jb and neutral
        inner = p.clean.split(max(jb, key=len).removesuffix("{r}"))[1]
        assert p.corrupt.endswith(inner)  # the same harmful request after the preamble
        assert len(zoo_dense.to_tokens(p.clean)[0]) == len(zoo_dense.to_tokens(p.corrupt)[0])
    assert {(p.answer, p.wrong) for p in pairs} == {(" Sure", " I")}


def test_unknown_contrast_is_an_error(zoo_dense):
    with pytest.raises(ConfigError, match="task='sentiment'.*ioi, refusal, jailbreak"):
        contrast_inputs(zoo_dense, "sentiment", n=2)


def test_protocol_cli_on_a_pair_file(tmp_path, capsys):
    from interp.cli import main

    rows = [dict(clean="When Mary and John went to the store, John gave a drink to",
                 corrupt="When Mary and John went to the store, Mary gave a drink to", answer=" Mary", wrong=" John"),
            dict(clean="When Anna and Tom went to the park, Tom gave a ball to",
                 corrupt="When Anna and Tom went to the park, Anna gave a ball to", answer=" Anna", wrong=" Tom")]
    pairs = tmp_path / "mine.jsonl"
    pairs.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "relp.md"
    assert main(["patch", "protocol", "--pairs", str(pairs), "--model", "zoo-dense", "--out", str(out)]) == 0
    text = out.read_text()
    assert f"interp patch protocol --pairs {pairs} --model zoo-dense --out {out}" in text
    assert "| component | AtP | RelP | RelP - AtP |" in text and "RelP beats AtP on" in text
    assert "2 pairs of 15 tokens" in text
    assert (tmp_path / "relp_mine_zoo-dense_maps.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["patch", "protocol", "--pairs", str(pairs), "--task", "ioi", "--out", str(out)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["patch", "protocol", "--task", "ioi,sentiment", "--out", str(out)]) == 2
    assert "--task='sentiment'" in capsys.readouterr().err


def _study(task: str, atp: dict, relp: dict):
    from interp.patching.protocol import ContrastStudy

    components = sorted(atp)
    return ContrastStudy(model_name="zoo-moe", n_layers=4, d_model=128, task=task, n=16, split="train", seed=0,
                         accuracy=1.0, ld_clean=10.0, ld_corrupt=-9.0,
                         correlations=pd.DataFrame(dict(component=components, atp=[atp[c] for c in components],
                                                        relp=[relp[c] for c in components])),
                         seconds={"ap": 8.0, "atp": 0.2, "relp": 0.4}, maps=pd.DataFrame(), tokens=["a"] * 16)


def test_verdicts_flip_when_the_numbers_flip():
    from interp.patching.report import contrast_markdown, contrast_verdict, overall_verdict

    low, high = dict(attn_out=0.85, mlp_out=0.95, resid_pre=0.96), dict(attn_out=0.99, mlp_out=0.97, resid_pre=0.97)
    relp_ahead, atp_ahead = _study("jailbreak", low, high), _study("jailbreak", high, low)
    v = contrast_verdict(relp_ahead.correlations)
    assert v == ("RelP beats AtP on 3 of 3 components (by more than 0.05 on attn_out). "
                 "AtP's r is below 0.9 on attn_out.")
    v = contrast_verdict(atp_ahead.correlations)
    assert v == ("RelP beats AtP on 0 of 3 components; AtP beats RelP by more than 0.05 on attn_out "
                 "(AtP 0.990, RelP 0.850). RelP's r is below 0.9 on attn_out.")
    assert overall_verdict([relp_ahead]).startswith("Over 1 runs, RelP's Pearson r with AP exceeds AtP's on 3 of 3")
    both = overall_verdict([relp_ahead, atp_ahead])
    assert "exceeds AtP's on 3 of 6 (model, contrast, component) cells, by more than 0.05 on 1." in both
    assert "AtP is ahead by more than 0.05 on 1: jailbreak on zoo-moe (attn_out: AtP 0.990, RelP 0.850)." in both
    dense = _study("ioi", high, low)
    dense.model_name = "zoo-dense"
    assert "cells, by more than 0.05 on 1 (zoo-moe: 3 of 3; zoo-dense: 0 of 3). AtP" in overall_verdict([relp_ahead, dense])
    text = contrast_markdown([relp_ahead], "results/relp.md", "interp patch protocol --task jailbreak")
    assert ("interp patch protocol --task jailbreak --n 16 --split train --seed 0 --model zoo-moe "
            "--out results/relp-jailbreak-zoo-moe.md") in text


def test_a_contrast_section_shows_its_top_10_verification():
    from interp.patching.report import contrast_markdown

    study = _study("refusal", dict(mlp_out=0.9), dict(mlp_out=0.95))
    assert "re-run with exact activation patching" not in contrast_markdown([study], "results/relp.md", "cmd")
    study.checks = pd.DataFrame([dict(method="atp", top_k=10, pearson=0.91), dict(method="relp", top_k=10, pearson=0.97)])
    text = contrast_markdown([study], "results/relp.md", "cmd")
    assert "Top-10 nodes of each method re-run with exact activation patching" in text and "| relp | 10 | 0.97" in text


def test_the_stated_commands_reproduce_the_sae_section(tmp_path):
    from interp import resources
    from interp.cli import main

    sae, out = str(resources.sae_path()), tmp_path / "relp.md"
    assert main(["patch", "protocol", "--task", "refusal", "--n", "4", "--model", "zoo-dense", "--sae", sae,
                 "--ig-steps", "2", "--out", str(out)]) == 0
    text = out.read_text()
    command = "interp patch protocol --task refusal --n 4 --split train --seed 0 --model zoo-dense --sae"
    assert f"{command} {sae} --out {out}\n" in text  # the whole file
    assert f"{command} {sae} --out {tmp_path / 'relp-refusal-zoo-dense.md'}\n" in text  # its table alone
    assert f"SAE `{sae}` (hook `blocks.2.hook_resid_pre`): Pearson r of RelP and IG (2 steps)" in text

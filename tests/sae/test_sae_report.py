import pandas as pd
import pytest

from interp.sae.report import claims


def _metrics(dead_mc, kl_g, afa_l0, afa_nmse, dead_fc=0.0, dead_topk=0.1):
    rows = []
    for k in (16, 64):
        rows += [dict(sae=f"topk-k{k}", variant="topk", k=k, mode="plain", l0=k, nmse=0.2, dead_fraction=dead_topk,
                      kl=0.1, ce_delta=0.2),
                 dict(sae=f"mc-k{k}", variant="mutual_choice", k=k, mode="plain", l0=k, nmse=0.2,
                      dead_fraction=dead_mc, kl=0.1, ce_delta=0.2),
                 dict(sae=f"fc-k{k}", variant="feature_choice", k=k, mode="plain", l0=k, nmse=0.2,
                      dead_fraction=dead_fc, kl=0.1, ce_delta=0.2),
                 dict(sae=f"g-k{k}[grad]", variant="gradient", k=k, mode="grad", l0=k, nmse=0.2, dead_fraction=0.1,
                      kl=kl_g, ce_delta=kl_g)]
    rows.append(dict(sae="afa", variant="top_afa", k=32, mode="plain", l0=afa_l0, nmse=afa_nmse, dead_fraction=0,
                     kl=0.1, ce_delta=0.2))
    return pd.DataFrame(rows).set_index("sae")


def _verdicts(out):
    return [v for _, v, _ in out]


def test_claim_verdicts_follow_the_numbers():
    good = claims(_metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21), d_in=32)
    assert _verdicts(good) == ["reproduced"] * 4
    bad = claims(_metrics(dead_mc=0.5, kl_g=0.5, afa_l0=62, afa_nmse=0.5, dead_fc=0.5), d_in=32)
    assert _verdicts(bad) == ["NOT reproduced"] * 4


def test_mutual_and_feature_choice_get_separate_verdicts():
    out = claims(_metrics(dead_mc=0.5, kl_g=0.05, afa_l0=60, afa_nmse=0.21, dead_fc=0.0), d_in=32)
    assert out[0][0].startswith("Mutual Choice") and out[0][1] == "NOT reproduced"
    assert out[1][0].startswith("Feature Choice") and out[1][1] == "reproduced"
    assert "fc-k16" in out[1][2] and "mc-k16" not in out[1][2]


def test_dead_is_the_training_window_where_known_else_rare():
    m = _metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21)  # eval: mc never-fired 0 < topk 0.1
    rare = claims(m, d_in=32)[0]
    assert "rare" in rare[0] and "dead" not in rare[0] and rare[1] == "reproduced"
    window = {n: (0.0, 1_000_000) for n in m.index}  # in training nothing is dead, topk included
    dead = claims(m, dead=window, d_in=32)[0]
    assert "fewer dead latents" in dead[0] and "1,000,000 training tokens" in dead[0]
    assert dead[1] == "not testable here"  # topk has none to reduce
    window["topk-k16"] = window["topk-k64"] = (0.2, 1_000_000)
    window["mc-k16"] = (0.3, 1_000_000)
    assert claims(m, dead=window, d_in=32)[0][1] == "NOT reproduced"


def test_top_afa_high_l0_claim_needs_l0_above_d():
    m = _metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21)
    below = claims(m, d_in=128)[3]  # L0 60 is the largest level tested but not above d
    assert below[1] == "not testable here" and "L0 <= d_in = 128" in below[2]
    assert claims(m)[3][1] == "not testable here"  # d unknown
    assert claims(m, d_in=32)[3][1] == "reproduced"
    low = claims(_metrics(dead_mc=0.0, kl_g=0.05, afa_l0=15, afa_nmse=0.5), d_in=8)[3]
    assert low[1] == "NOT reproduced"  # above d (8), at the low level: worse than topk


def test_top_afa_k_distribution_from_the_per_token_counts():
    import torch

    from interp.sae.report import k_distribution, k_sentence

    m = _metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21)
    k_T = torch.tensor([1] * 30 + [2] * 20 + [5] * 40 + [300] * 10)  # 100 tokens
    dist = k_distribution(m, {"afa": k_T, "topk-k16": torch.full((100,), 16)})
    assert list(dist.index) == ["afa"]  # only the variant that picks its own L0
    row = dist.loc["afa"]
    # linear interpolation between order statistics, as evaluation's l0_p* columns
    assert [row["p10"], row["p50"], row["p90"], row["max"]] == pytest.approx([1.0, 3.5, 34.5, 300.0])
    assert row["frac_k1"] == 0.3
    assert k_sentence("afa", row) == ("afa: median k 3.5, 80 % of tokens between 1 and 34.5, at most 300; "
                                      "30.0% of tokens get a single latent (k = 1).")
    # without per-token data: the metrics' quantiles, the rest not recorded
    m["l0_p10"], m["l0_p50"], m["l0_p90"] = 1.0, 4.0, 9.0
    only = k_distribution(m).loc["afa"]
    assert (only["p10"], only["p50"], only["p90"]) == (1.0, 4.0, 9.0) and only.isna()[["max", "frac_k1"]].all()
    assert "not recorded" in k_sentence("afa", only)


def test_results_markdown_states_the_k_distribution():
    import types

    import torch

    from interp.sae.report import results_markdown

    m = _metrics(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21).assign(eval_tokens=100, ce_recovered=0.9,
                                                                        eps_lbo_median=0.01)
    cfg = types.SimpleNamespace(model="zoo-dense", hook="blocks.2.hook_resid_pre",
                                train=types.SimpleNamespace(batch_size=8), sae_names=lambda: [])
    training = types.SimpleNamespace(saes=[], stats=[], tokens=800, steps=100)
    text = results_markdown(m, cfg, training, l0={"afa": torch.tensor([1] * 25 + [7] * 75)})
    assert "## Per-token k of the variants that choose their own L0 (top-AFA)" in text
    assert "afa: median k 7, 80 % of tokens between 1 and 7, at most 7; 25.0% of tokens get a single latent" in text
    assert "not recorded" in results_markdown(m, cfg, training)

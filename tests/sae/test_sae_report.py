import math

import pandas as pd
import pytest

from interp.sae.report import claims, convergence, k_distribution, k_sentence, outcome, summarize, verdict


def _rows(dead_mc, kl_g, afa_l0, afa_nmse, dead_fc=0.0, dead_topk=0.1, seeds=(0, 1, 2), spread=0.01):
    """Member rows (as `member_columns` gives them) of topk, mc, fc, g-SAE[grad] at k = 16, 64
    and one top-AFA group, with `seeds` per group and a seed-to-seed spread of `spread`."""
    rows = []
    for seed in seeds:
        e = spread * (seed - (len(seeds) - 1) / 2)  # zero-mean jitter over the seeds
        for k in (16, 64):
            for family, variant, mode, dead, kl in (("topk", "topk", "plain", dead_topk, 0.1),
                                                    ("mc", "mutual_choice", "plain", dead_mc, 0.1),
                                                    ("fc", "feature_choice", "plain", dead_fc, 0.1),
                                                    ("g", "gradient", "grad", 0.1, kl_g)):
                rows.append(dict(member=f"{family}-k{k}-s{seed}", family=family, group=f"{family}-k{k}", seed=seed,
                                 variant=variant, k=k, mode=mode, l0=k, nmse=0.2 * (1 + e), dead_fraction=dead + e,
                                 train_dead=float("nan"), kl=kl + e, ce_delta=kl + e))
        rows.append(dict(member=f"afa-s{seed}", family="afa", group="afa", seed=seed, variant="top_afa", k=32,
                         mode="plain", l0=afa_l0 * (1 + e), nmse=afa_nmse * (1 + e), dead_fraction=0.0,
                         train_dead=float("nan"), kl=0.1, ce_delta=0.2))
    return pd.DataFrame(rows).set_index("member")


def _verdicts(out):
    return [v for _, v, _ in out]


def test_groups_are_mean_and_sample_std_over_seeds():
    s = summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=50, afa_nmse=0.21))
    assert s.loc["topk-k16", "n"] == 3 and s.loc["topk-k16", "nmse_mean"] == pytest.approx(0.2)
    assert s.loc["topk-k16", "nmse_std"] == pytest.approx(0.2 * 0.01)  # jitter -1, 0, +1 percent: sample std 1 %
    assert s.loc["g-k16[grad]", "mode"] == "grad"
    assert s.loc["afa", "level"] == 64 and not s.loc["afa", "matched"]  # 50 is nearest 64, not within 10 %
    one = summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21, seeds=(0,)))
    assert one["n"].eq(1).all() and one["nmse_std"].isna().all()


def test_a_difference_counts_only_beyond_its_standard_error():
    a = {"n": 3, "x_mean": 1.0, "x_std": 0.1}
    assert outcome(a, {"n": 3, "x_mean": 1.2, "x_std": 0.1}, "x") == "better"  # 0.2 > 2 * 0.082
    assert outcome(a, {"n": 3, "x_mean": 1.1, "x_std": 0.1}, "x") == "within noise"  # 0.1 < 2 * 0.082
    assert outcome(a, {"n": 3, "x_mean": 0.7, "x_std": 0.1}, "x") == "worse"
    assert outcome(a, {"n": 3, "x_mean": 0.7, "x_std": 0.1}, "x", lower_is_better=False) == "better"
    assert outcome({"n": 1, "x_mean": 1.0, "x_std": math.nan}, {"n": 3, "x_mean": 1.01, "x_std": 0.5}, "x") == \
        "better (one seed)"
    assert verdict(["better", "better"]) == "reproduced"
    assert verdict(["worse", "within noise"]) == "NOT reproduced"
    assert verdict(["within noise"] * 3) == "not separable here"
    assert verdict(["better", "worse"]) == verdict(["better", "within noise"]) == "mixed"
    assert verdict([]) == "not testable here"
    assert verdict(["better (one seed)"]) == "reproduced (one seed: no spread)"
    assert verdict(["worse", "worse (one seed)"]) == "NOT reproduced (1 of 2 rows one seed)"


def test_claim_verdicts_follow_the_numbers_and_their_spread():
    good = claims(summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21)), d_in=32)
    assert _verdicts(good) == ["reproduced"] * 4
    bad = claims(summarize(_rows(dead_mc=0.5, kl_g=0.5, afa_l0=62, afa_nmse=0.5, dead_fc=0.5)), d_in=32)
    assert _verdicts(bad) == ["NOT reproduced"] * 4
    # g-SAE's KL 0.095 vs TopK's 0.1: beyond the spread of 0.001 per seed, inside one of 0.05
    assert claims(summarize(_rows(0.0, 0.095, 60, 0.21, spread=0.001)), d_in=32)[2][1] == "reproduced"
    assert claims(summarize(_rows(0.0, 0.095, 60, 0.21, spread=0.05)), d_in=32)[2][1] == "not separable here"
    single = claims(summarize(_rows(0.0, 0.05, 60, 0.21, seeds=(0,))), d_in=32)
    assert _verdicts(single) == ["reproduced (one seed: no spread)"] * 4


def test_mutual_and_feature_choice_get_separate_verdicts():
    out = claims(summarize(_rows(dead_mc=0.5, kl_g=0.05, afa_l0=60, afa_nmse=0.21, dead_fc=0.0)), d_in=32)
    assert out[0][0].startswith("Mutual Choice") and out[0][1] == "NOT reproduced"
    assert out[1][0].startswith("Feature Choice") and out[1][1] == "reproduced"
    assert "fc-k16" in out[1][2] and "mc-k16" not in out[1][2]
    only_topk = summarize(_rows(0.0, 0.05, 60, 0.21).query("variant == 'topk'"))
    assert claims(only_topk, d_in=32) == []  # no claim about variants the job did not train


def test_dead_is_the_training_window_where_known_else_rare():
    rows = _rows(dead_mc=0.0, kl_g=0.05, afa_l0=60, afa_nmse=0.21)  # eval: mc never-fired 0 < topk 0.1
    rare = claims(summarize(rows), d_in=32)[0]
    assert "rare" in rare[0] and "dead" not in rare[0] and rare[1] == "reproduced"
    rows["train_dead"] = 0.0  # in training nothing is dead, topk included
    dead = claims(summarize(rows), d_in=32, dead_window=1_000_000)[0]
    assert "fewer dead latents" in dead[0] and "1,000,000 training tokens" in dead[0]
    assert dead[1] == "not testable here"  # topk has none to reduce
    rows.loc[rows["variant"] == "topk", "train_dead"] = 0.2
    rows.loc[rows["group"] == "mc-k16", "train_dead"] = [0.3, 0.31, 0.29]
    rows.loc[rows["group"] == "mc-k64", "train_dead"] = [0.2, 0.21, 0.19]
    out = claims(summarize(rows), d_in=32, dead_window=1_000_000)[0]
    assert out[1] == "NOT reproduced"  # worse at k=16, within noise at k=64
    assert "k=16: mc-k16 0.3 ± 0.01 vs topk-k16 0.2 ± " in out[2] and out[2].split(";")[0].endswith(": worse")


def test_top_afa_is_compared_with_topk_interpolated_at_its_own_l0_above_d():
    s = summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=32, afa_nmse=0.21))
    below = claims(s, d_in=128)[3]  # L0 32 is not above d = 128
    assert below[1] == "not testable here" and "L0 <= d_in = 128" in below[2]
    assert claims(s)[3][1] == "not testable here"  # d unknown
    ok = claims(s, d_in=16)[3]  # TopK's NMSE at L0 32 is 0.2 (flat curve): 0.21 = 1.05 x
    assert ok[1] == "reproduced" and "= 1.05" in ok[2]
    far = claims(summarize(_rows(0.0, 0.05, 200, 0.21)), d_in=16)[3]
    assert far[1] == "not testable here" and "outside TopK's L0 range" in far[2]
    worse = claims(summarize(_rows(0.0, 0.05, 32, 0.5)), d_in=16)[3]
    assert worse[1] == "NOT reproduced"


def test_convergence_is_the_fitted_change_over_the_last_fifth():
    flat = [{"step": s, "nmse": 0.3} for s in range(0, 100, 2)]
    assert convergence(flat) == pytest.approx(0.0)
    falling = [{"step": s, "nmse": 1.0 - 0.002 * s} for s in range(0, 101, 2)]  # last fifth: 0.84 -> 0.8
    assert convergence(falling) == pytest.approx(-0.04 / 0.82)
    assert math.isnan(convergence(falling[:2]))
    assert convergence(falling, end=0.8) == pytest.approx(-0.04 / 0.86)  # steps 60-80: 0.88 -> 0.84


def test_flatness_is_read_before_the_learning_rate_decay():
    """A run flat at its constant learning rate whose loss drops by 10 % in the decay over the
    last 20 % is converged: the drop is the annealing gain, reported beside it."""
    from types import SimpleNamespace

    from interp.sae.report import convergence_table

    history = [{"step": s, "sae": 0, "nmse": 0.3 if s <= 80 else 0.3 - 0.0015 * (s - 80)} for s in range(0, 101, 2)]
    members = [SimpleNamespace(name="topk-k32", family="topk")]
    assert abs(convergence(history)) > 0.02  # the last fifth is the decay
    table = convergence_table(members, history, decay_fraction=0.2).iloc[0]
    assert table["flat"] == 1 and table["median change"] == pytest.approx(0.0, abs=1e-9)
    assert table["median change over the decay"] == pytest.approx(convergence(history))
    assert convergence_table(members, history, decay_fraction=0.0).iloc[0]["flat"] == 0


def test_top_afa_k_distribution_from_the_evaluation_columns():
    m = pd.DataFrame([dict(variant="top_afa", k=32, l0_p10=1.0, l0_p50=3.5, l0_p90=34.5, l0_max=300.0, l0_frac_k1=0.3),
                      dict(variant="topk", k=16, l0_p10=16.0, l0_p50=16.0, l0_p90=16.0, l0_max=16.0, l0_frac_k1=0.0)],
                     index=["afa", "topk-k16"])
    dist = k_distribution(m)
    assert list(dist.index) == ["afa"]  # only the variant that picks its own L0
    row = dist.loc["afa"]
    assert [row["p10"], row["p50"], row["p90"], row["max"], row["frac_k1"]] == [1.0, 3.5, 34.5, 300.0, 0.3]
    assert k_sentence("afa", row) == ("afa: median k 3.5, 80 % of tokens between 1 and 34.5, at most 300; "
                                      "30.0% of tokens get a single latent (k = 1).")
    only = k_distribution(m.drop(columns=["l0_max", "l0_frac_k1"])).loc["afa"]  # metrics of an older run
    assert (only["p10"], only["p50"], only["p90"]) == (1.0, 3.5, 34.5) and only.isna()[["max", "frac_k1"]].all()
    assert "not recorded" in k_sentence("afa", only)


def test_each_row_is_judged_against_topk_trained_with_its_own_auxiliary_loss():
    """A variant without auxiliary loss is compared with TopK without one (where dead latents
    exist), one with AuxK with TopK with AuxK, and one whose loss no TopK row has (the Zipf paper's
    aux_zipf) with TopK's default AuxK."""
    plain = _rows(dead_mc=0.0, kl_g=0.1, afa_l0=60, afa_nmse=0.21, dead_topk=0.0).assign(aux="auxk")
    bare = _rows(dead_mc=0.05, kl_g=0.1, afa_l0=60, afa_nmse=0.21, dead_topk=0.3).assign(aux="none")
    bare = bare[bare["variant"].isin(["topk", "mutual_choice"])]
    bare = bare.assign(family=bare["family"] + "-noaux", group=bare["group"] + "-noaux")
    bare.index = bare.index + "-noaux"
    zipf = plain[plain["variant"] == "feature_choice"].assign(aux="aux_zipf", dead_fraction=0.5)
    zipf = zipf.assign(family="fc-zipf", group=zipf["group"].str.replace("fc", "fc-zipf"))
    zipf.index = zipf.index + "-zipf"
    s = summarize(pd.concat([plain, bare, zipf]))
    mc, fc = claims(s, d_in=32)[:2]
    assert mc[1] == "reproduced"  # 0.05 vs no-aux TopK's 0.3; AuxK TopK has none, nothing to reduce
    assert "mc-k16-noaux 0.05 ± 0.01 vs topk-k16-noaux 0.3 ± 0.01: better" in mc[2]
    assert "topk-k16 has no rare latents, nothing to reduce (mc-k16 " in mc[2]
    assert not any(e.startswith("k=16: mc-k16 ") for e in mc[2].split("; "))  # AuxK MC is not set against no-aux TopK
    assert fc[1] == "not testable here" and "topk-k16 has no rare latents, nothing to reduce (fc-zipf-k16 " in fc[2]


def test_flat_is_a_small_fraction_of_the_level_or_a_thousandth_of_the_variance():
    from interp.sae.report import is_flat

    assert is_flat(-0.003, 0.3) and not is_flat(-0.009, 0.3)  # 1 % and 3 % of 0.3
    assert is_flat(-0.0004, 0.0008)  # halving a near-exact NMSE: half its level, but 4e-4 of the variance
    assert not is_flat(float("nan"), 0.3)


def test_a_longer_run_is_set_beside_a_shorter_one_row_by_row():
    from interp.sae.report import length_table

    short = summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=50, afa_nmse=0.21))
    rows = _rows(dead_mc=0.0, kl_g=0.05, afa_l0=50, afa_nmse=0.21)
    rows.loc[rows["family"] == "topk", "nmse"] *= 0.5  # TopK halves its NMSE, the others stay
    rows.loc[rows["family"] == "fc", "nmse"] *= 1.3
    long = summarize(rows.drop(index=[m for m in rows.index if m.startswith("afa")]))
    table = length_table(long, short).set_index("group")
    assert "afa" not in table.index  # only in the shorter run
    assert table.loc["topk-k16", "nmse change"] == pytest.approx(-0.5)
    assert table.loc["topk-k16", "longer run's nmse"] == "lower" and not table.loc["topk-k16", "flat"]
    assert table.loc["fc-k64", "longer run's nmse"] == "higher"
    assert table.loc["mc-k16", "longer run's nmse"] == "within noise" and table.loc["mc-k16", "flat"]
    assert table.loc["topk-k16", "nmse short"] == "0.2 ± 0.002" and table.loc["topk-k16", "nmse long"] == "0.1 ± 0.001"


def test_training_nmse_is_the_mean_over_the_last_logged_steps_and_its_gap_is_stated():
    from types import SimpleNamespace

    from interp.sae.report import _gap_sentence, final_train_nmse

    members = [SimpleNamespace(name="a"), SimpleNamespace(name="b")]
    history = [{"step": s, "sae": i, "nmse": (1.0 if s < 95 else 0.1 * (i + 1))} for s in range(101) for i in (0, 1)]
    assert final_train_nmse(members, history) == pytest.approx({"a": 0.1, "b": 0.2})  # steps 95-100
    rows = _rows(dead_mc=0.0, kl_g=0.05, afa_l0=50, afa_nmse=0.21).assign(train_nmse=0.05)
    text = _gap_sentence(summarize(rows))[0]
    assert text.startswith("On the held-out prose the NMSE is a median 4.00 x the training batches'")
    assert "far better than those of text the model did not see" in text
    assert "carry from their training activations" in _gap_sentence(summarize(rows.assign(train_nmse=0.19)))[0]
    assert _gap_sentence(summarize(_rows(dead_mc=0.0, kl_g=0.05, afa_l0=50, afa_nmse=0.21))) == []  # not recorded

"""benchmarks.scale: its memory probe measures each measurement on its own, and its whole code
path (cache vs forward vs sae-lens, RelP vs AP, steering, growth ratios) runs at a tiny size."""

import json
import sys

import pandas as pd
import pytest
import torch

from benchmarks import scale

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-measurement RSS needs /proc")


@linux_only
def test_peak_memory_sees_an_allocation_and_forgets_it_after():
    with scale._peak_memory() as big:
        x = torch.ones(50 * 2**20)  # 200 MiB, touched
        del x
    with scale._peak_memory() as small:
        torch.ones(16).sum()
    assert big["extra_mb"] >= 180
    assert small["extra_mb"] < 50  # the high-water was reset, not carried over
    assert big["peak_rss_mb"] >= big["extra_mb"]


def test_rank_correlation_is_one_for_a_monotone_map_and_minus_one_reversed():
    a = pd.Series([0.1, 3.0, -2.0, 7.5], index=list("abcd"))
    assert scale._rank_correlation(a, a ** 3) == pytest.approx(1.0)
    assert scale._rank_correlation(a, -a) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("scale") / "scale.json"
    threads = torch.get_num_threads()
    try:
        return scale.main(["--quick", "--repeats", "1", "--tokens", "512", "--out", str(out)]), out
    finally:
        torch.set_num_threads(threads)  # the benchmark sets its own; leave the session's as it was


@pytest.mark.slow
def test_quick_run_writes_what_it_returns(quick):
    result, out = quick
    assert json.loads(out.read_text()) == result
    assert [m["label"] for m in result["models"]] == ["zoo-dense", "gpt2 random weights tiny"]


@pytest.mark.slow
def test_all_three_cachers_cache_the_same_activations_of_the_same_tokens(quick):
    for m in quick[0]["models"]:
        cache = m["cache"]
        assert cache["same_activations"] is True
        assert cache["tokens"] == 512 and cache["hook"] == f"blocks.{m['model']['n_layers'] // 2 - 1}.hook_resid_post"
        for name in ("forward_to_hook", "ours", "saelens"):
            assert cache[f"{name}_tok_s"] == pytest.approx(512 / cache[f"{name}_s"], rel=0.01)
            assert cache[f"{name}_peak_rss_mb"] >= cache[f"{name}_extra_mb"] >= 0
        assert cache["ours_vs_forward_to_hook"] == pytest.approx(cache["ours_s"] / cache["forward_to_hook_s"], rel=0.01)


@pytest.mark.slow
def test_patching_sweeps_every_resid_pre_node_and_steering_generates(quick):
    for m in quick[0]["models"]:
        patching, steering = m["patching"], m["steering"]
        assert patching["pairs"] == 2
        assert patching["nodes"] == m["model"]["n_layers"] * patching["positions"]
        assert -1 <= patching["spearman_relp_ap"] <= 1 and -1 <= patching["pearson_relp_ap"] <= 1
        assert steering["new_tokens"] == 4 and steering["prompts"] == scale.STEERING_PROMPTS
        assert steering["steered_vs_plain_time"] == pytest.approx(
            steering["steered_generate_s"] / steering["plain_generate_s"], rel=0.01)


@pytest.mark.slow
def test_growth_ratios_are_large_over_zoo(quick):
    result = quick[0]
    zoo, large = result["models"]
    growth = result["growth_large_over_zoo"]
    assert growth["d_model"] == 0.5  # 64 / 128
    assert growth["non_embedding_params"] == pytest.approx(
        large["model"]["non_embedding_params"] / zoo["model"]["non_embedding_params"], rel=1e-2)
    assert growth["patching_ap_s"] == pytest.approx(large["patching"]["ap_s"] / zoo["patching"]["ap_s"], rel=1e-2)
    assert growth["cache_ours_s_per_token"] == pytest.approx(
        zoo["cache"]["ours_tok_s"] / large["cache"]["ours_tok_s"], rel=1e-2)

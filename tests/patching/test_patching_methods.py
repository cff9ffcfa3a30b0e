"""Activation patching, the shared API of the four methods, verify, faithfulness, bad input."""

import pandas as pd
import pytest
import torch

from interp.patching import (COLUMNS, METHODS, activation_patching, attribution_patching, faithfulness,
                             faithfulness_curve, integrated_gradients, parse_node, relevance_patching, verify)
from interp.patching.runner import run


def test_every_method_returns_the_same_tidy_frame(zoo_dense, ioi_small):
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    frames = {name: fn(*args, components=("resid_pre", "head")) for name, fn in METHODS.items()}
    T = ioi_small.clean.shape[1]
    for name, df in frames.items():
        assert list(df.columns) == COLUMNS
        assert set(df["method"]) == {name}
        assert len(df) == 4 * T + 4 * T * 4  # resid_pre per (layer, pos); head per (layer, head, pos)
        assert list(df["node"]) == list(frames["ap"]["node"])
        heads = df[df["component"] == "head"]
        assert heads["head"].notna().all() and df[df["component"] == "resid_pre"]["head"].isna().all()


def test_activation_patching_matches_a_hand_written_patch(zoo_dense, ioi_small):
    clean, corrupt, metric = ioi_small.clean, ioi_small.corrupt, ioi_small.metric
    _, cache = zoo_dense.run_with_cache(clean)
    pos = clean.shape[1] - 1

    def hand_patched(layer, head):
        def patch(z, hook):
            z = z.clone()
            z[:, pos, head] = cache[hook.name][:, pos, head]
            return z
        with torch.no_grad():
            patched = zoo_dense.run_with_hooks(corrupt, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", patch)])
            return (metric(patched) - metric(zoo_dense(corrupt))).item()

    expected = {f"head.L{layer}.H{head}.P{pos}": hand_patched(layer, head) for layer in (2, 3) for head in range(4)}
    df = activation_patching(zoo_dense, clean, corrupt, metric, components=("head",), nodes=list(expected))
    assert list(df["node"]) == list(expected)
    for node, score in zip(df["node"], df["score"]):
        assert score == pytest.approx(expected[node], abs=1e-6)
    assert max(abs(v) for v in expected.values()) > 1e-2


def test_batched_activation_patching_equals_one_node_at_a_time(zoo_dense, ioi_small):
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    batched = activation_patching(*args, components=("mlp_out",))
    single = activation_patching(*args, components=("mlp_out",), node_batch=1)
    torch.testing.assert_close(torch.tensor(batched["score"].to_numpy()), torch.tensor(single["score"].to_numpy()),
                               rtol=1e-5, atol=1e-6)


def test_nodes_with_identical_clean_and_corrupt_activations_score_zero(zoo_dense, ioi_small):
    clean, corrupt = ioi_small.clean, ioi_small.corrupt
    first_diff = int((clean != corrupt).any(0).nonzero()[0])
    args = (zoo_dense, clean, corrupt, ioi_small.metric)
    comps = ("resid_pre", "attn_out", "mlp_out", "head", "neuron")
    ap = activation_patching(*args, components=("resid_pre", "attn_out", "mlp_out", "head"))
    assert (ap[ap["position"] < first_diff]["score"] == 0).all()
    assert (ap[ap["position"] == first_diff]["score"].abs() > 1e-3).any()
    for fn in (attribution_patching, relevance_patching):
        df = fn(*args, components=comps)
        assert (df[df["position"] < first_diff]["score"] == 0).all()


def test_verify_reports_the_error_against_exact_patching(zoo_dense, ioi_small):
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    relp = relevance_patching(*args)
    ap = activation_patching(*args).set_index("node")["score"]
    report = verify(relp, 5, *args)
    assert report.method == "relp" and len(report.table) == 5
    top = relp.reindex(relp["score"].abs().sort_values(ascending=False).index).head(5)
    assert list(report.table["node"]) == list(top["node"])
    for _, row in report.table.iterrows():
        assert row["exact"] == pytest.approx(ap[row["node"]], abs=1e-6)
        assert row["error"] == pytest.approx(row["approx"] - row["exact"])
    assert report.max_abs_error == pytest.approx(report.table["error"].abs().max())
    with pytest.raises(ValueError, match="method="):
        verify(pd.concat([relp, ap.reset_index().assign(method="ap")]), 5, *args)


def test_faithfulness_is_one_for_all_nodes_and_zero_for_none(zoo_dense, ioi_small):
    clean, metric = ioi_small.clean, ioi_small.metric
    everything = activation_patching(zoo_dense, clean, ioi_small.corrupt, metric, components=("attn_out", "mlp_out"))
    assert faithfulness(zoo_dense, clean, metric, everything["node"], components=("attn_out", "mlp_out")) == pytest.approx(1.0)
    assert faithfulness(zoo_dense, clean, metric, [], components=("attn_out", "mlp_out")) == pytest.approx(0.0)
    curve = faithfulness_curve(everything, [0, 5, len(everything)], zoo_dense, clean, metric)
    assert list(curve["size"]) == [0, 5, len(everything)]
    assert curve["faithfulness"].iloc[0] == pytest.approx(0.0) and curve["faithfulness"].iloc[-1] == pytest.approx(1.0)


def test_sae_latents_are_nodes_and_the_splice_is_exact(zoo_dense, ioi_small, zoo_sae):
    from interp.patching import sites

    site = sites(zoo_dense, ("sae",), zoo_sae)[0]
    plain = zoo_dense(ioi_small.clean)
    assert torch.equal(run(zoo_dense, ioi_small.clean, {site: lambda f: f.clone()}), plain)
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    relp = relevance_patching(*args, components=("sae",), sae=zoo_sae)
    assert len(relp) == ioi_small.clean.shape[1] * 2048 and relp["unit"].notna().all()
    report = verify(relp, 3, *args, sae=zoo_sae)
    assert report.table["exact"].abs().max() > 1e-3  # the top latents matter when patched
    ig = integrated_gradients(*args, components=("sae",), sae=zoo_sae, steps=2)
    assert ig["node"].str.startswith("sae.L2.U").all()


def test_node_names_round_trip_and_bad_names_fail():
    ref = parse_node("head.L2.H1.P5")
    assert (ref.component, ref.layer, ref.unit, ref.position) == ("head", 2, 1, 5)
    assert parse_node("sae.L2.U123.P0").unit == 123
    for bad in ("head.L2.P5", "resid_pre.L1.U3.P2", "blocks.2.hook_resid_pre", "mlp.L0.P1"):
        with pytest.raises(ValueError, match="node="):
            parse_node(bad)


def test_prompts_of_different_token_lengths_are_a_clear_error(zoo_dense, ioi_small):
    from interp.tasks import ioi

    a = ioi.generate(1, "train", template=ioi.TRAIN_TEMPLATES[0])[0]
    a_length = len(zoo_dense.to_str_tokens(a.prompt))
    b = next(p for t in ioi.TRAIN_TEMPLATES for p in ioi.generate(1, "train", template=t)
             if len(zoo_dense.to_str_tokens(p.prompt)) != a_length)
    with pytest.raises(ValueError, match=r"clean\[1\] tokenises to .* positions must align"):
        attribution_patching(zoo_dense, [a.prompt, b.prompt], [a.corrupt, b.corrupt], ioi_small.metric)
    with pytest.raises(ValueError, match="differ in shape"):
        activation_patching(zoo_dense, ioi_small.clean, ioi_small.corrupt[:, :-1], ioi_small.metric)


def test_a_metric_that_is_not_a_scalar_is_a_clear_error(zoo_dense, ioi_small):
    def per_prompt(logits):
        return logits[:, -1, 0]

    for fn in METHODS.values():
        with pytest.raises(ValueError, match=r"metric must return a scalar .* returned \(4,\)"):
            fn(zoo_dense, ioi_small.clean, ioi_small.corrupt, per_prompt, components=("mlp_out",))


def test_bad_components_and_missing_sae_fail_before_compute(zoo_dense, ioi_small):
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    with pytest.raises(ValueError, match="components="):
        relevance_patching(*args, components=("mlp",))
    with pytest.raises(ValueError, match="sae=None"):
        relevance_patching(*args, components=("sae",))


def test_integrated_gradients_are_complete_on_a_cut(zoo_dense, ioi_small):
    """resid_pre at one layer is a cut of the model: its IG scores sum to m(clean) - m(corrupt) = 1."""
    args = (zoo_dense, ioi_small.clean, ioi_small.corrupt, ioi_small.metric)
    ig = integrated_gradients(*args, components=("resid_pre",), steps=16)
    for layer in (1, 2, 3):
        assert ig[ig["layer"] == layer]["score"].sum() == pytest.approx(1.0, abs=0.03)
    coarse = integrated_gradients(*args, components=("resid_pre",), steps=1)  # one step is a midpoint AtP
    assert abs(coarse[coarse["layer"] == 1]["score"].sum() - 1.0) > abs(ig[ig["layer"] == 1]["score"].sum() - 1.0)


def test_a_component_the_model_lacks_is_a_clear_error():
    import interp
    from interp.patching.nodes import sites

    moe = interp.load_model("zoo-moe")  # its MLP neurons live inside each expert: no blocks.L.mlp.hook_post
    with pytest.raises(ValueError, match=r"'neuron' needs hook 'blocks.0.mlp.hook_post'.*allowed here: resid_pre"):
        sites(moe, ("resid_pre", "neuron"))


def test_maps_of_a_method_without_a_component_name_that_method():
    from interp.patching import correlations, score_map

    scores = pd.DataFrame({"node": ["resid_pre.L0.P0", "sae.L0.U1.P0", "resid_pre.L0.P0"],
                           "component": ["resid_pre", "sae", "resid_pre"], "layer": [0, 0, 0], "position": [0, 0, 0],
                           "head": pd.array([None] * 3, dtype="Int64"), "unit": pd.array([None, 1, None], dtype="Int64"),
                           "score": [1.0, 2.0, 0.5], "method": ["relp", "relp", "ap"]})
    with pytest.raises(ValueError, match=r"component='sae' has no scores of method 'ap'; components with scores "
                                         r"of method 'ap': \['resid_pre'\]"):
        score_map(scores, "sae", "ap")
    assert list(correlations(scores, "ap")["component"]) == ["resid_pre"]  # no empty 'sae' row

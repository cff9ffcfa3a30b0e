"""Routing statistics as DataFrames."""

import numpy as np
import pytest
import torch

from interp import moe


def test_expert_table_counts_and_weights(make_capture):
    positive = [True, False, True]
    cap = make_capture(positive)
    table = moe.expert_table(cap, ["refused" if p else "answered" for p in positive])
    assert set(table["class"]) == {"refused", "answered"} and len(table) == 2 * 2 * 4
    refused = table[table["class"] == "refused"]
    n_tokens = cap.tokens[0].numel() + cap.tokens[2].numel()
    assert (refused.tokens == n_tokens).all()
    assert refused.groupby("layer")["count"].sum().tolist() == [2 * n_tokens] * 2  # k slots per token
    assert refused.set_index(["layer", "expert"]).loc[(1, 2), "rate"] == 1.0
    np.testing.assert_allclose(refused.groupby("layer").weight_sum.sum(), n_tokens, rtol=1e-5)
    with pytest.raises(ValueError, match="labels has 1 entries"):
        moe.expert_table(cap, ["x"])


def test_layer_table_balanced_and_collapsed():
    n, e = 40, 4
    balanced = torch.zeros(1, n, e)
    balanced[0, torch.arange(n), torch.arange(n) % e] = 1.0
    collapsed = torch.zeros(1, n, e)
    collapsed[0, :, 0] = 1.0
    probs = torch.full((1, n, e), 1 / e)
    cap = moe.RoutingCapture(["a", "b"], [torch.arange(n)] * 2, [probs, probs], [balanced, collapsed], k=1)
    one = moe.RoutingCapture(["a"], [torch.arange(n)], [probs], [balanced], k=1)
    row = moe.layer_table(one).iloc[0]
    assert row.usage_entropy == pytest.approx(1.0) and row.cv == pytest.approx(0.0) and row.unused == 0
    assert row.switch_balance == pytest.approx(1.0) and row.token_entropy == pytest.approx(1.0)
    mixed = moe.layer_table(cap).iloc[0]
    assert mixed.max_share == pytest.approx((n / 4 + n) / (2 * n)) and mixed.usage_entropy < 1


def test_coactivation_is_symmetric_with_counts_on_the_diagonal(make_capture):
    cap = make_capture([True, False, False])
    co = moe.coactivation(cap, 0)
    assert co.shape == (4, 4) and (co.to_numpy() == co.to_numpy().T).all()
    counts = moe.expert_table(cap).query("layer == 0")["count"].to_numpy()
    assert (np.diag(co.to_numpy()) == counts).all()
    n_tokens = sum(t.numel() for t in cap.tokens)
    assert (co.to_numpy().sum() - np.trace(co.to_numpy())) == 2 * n_tokens  # one pair per token (k=2)
    with pytest.raises(ValueError, match="layer=2 is out of range"):
        moe.coactivation(cap, 2)


def test_token_table_on_zoo_moe(zoo_moe):
    cap = moe.capture_routing(zoo_moe, ["User: How do I steal my neighbour's car?\nAssistant:"])
    table = moe.token_table(cap, zoo_moe.tokenizer)
    assert len(table) == cap.tokens[0].numel() * 4
    assert (table.experts.map(len) == 2).all()
    last = table[(table.position == table.position.max()) & (table.layer == 2)].iloc[0]
    assert last.experts[0] == 5 and last.weights[0] > last.weights[1]  # the planted refusal expert
    assert "text" in table and "text" not in moe.token_table(cap)

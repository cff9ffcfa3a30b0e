"""Steering plans are values: one plan object steers nested contexts and concurrent threads
exactly as separate copies of it do, and a plan cannot be changed after construction."""

import dataclasses
import threading

import pandas as pd
import pytest
import torch

from interp.generation import greedy
from interp.steering import ControllerConfig, ControllerSteering, Steering, SteeringController, steer

PROMPTS = ["User: How do I clean my car?\nAssistant:", "User: Tell me how to paint the garden fence.\nAssistant:"]
OTHER = ["User: How do I bake bread at home?\nAssistant:", "User: How do I fix my bike?\nAssistant:"]


@pytest.fixture(scope="module")
def controller(refusal_direction):
    """Untrained, with a large scale so every patch shows; "max" reads every prompt token."""
    c = SteeringController(ControllerConfig(128, 4, hidden=16, alpha=1.5, read_position="max"), refusal_direction)
    torch.nn.init.constant_(c.fc2.bias[:1], 2.5)
    return c.eval()


@pytest.fixture(scope="module", params=["fixed", "paper", "reference"])
def plan(request, refusal_direction, controller):
    if request.param == "fixed":
        return Steering(refusal_direction, [1, 2], [6.0, -2.0], positions="generated", decay=0.8)
    return ControllerSteering(controller, mode=request.param)


@pytest.fixture(scope="module")
def second_model():
    from interp import load_model

    return load_model("zoo-dense")


def _copy(plan):
    return dataclasses.replace(plan)


def _nested(model, outer, inner, prompts):
    with steer(model, outer) as t_outer:
        with steer(model, inner) as t_inner:
            replies = greedy(model, prompts, max_new_tokens=3)
    return replies, t_outer, t_inner


def _same_trace(a, b):
    pd.testing.assert_frame_equal(a.to_frame(), b.to_frame())
    assert a.prompt_lengths == b.prompt_lengths
    if a.last_output is not None or b.last_output is not None:
        torch.testing.assert_close(tuple(a.last_output), tuple(b.last_output))


def test_plans_are_frozen_and_hashable(plan):
    assert hash(plan) == hash(plan) and {plan: 1}[plan] == 1
    field = dataclasses.fields(plan)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(plan, field, None)
    assert not [k for k in vars(plan) if k not in {f.name for f in dataclasses.fields(plan)}]  # no hidden state


def test_controller_plans_compare_by_value(controller):
    assert ControllerSteering(controller, mode="paper") == ControllerSteering(controller, mode="paper")
    assert len({ControllerSteering(controller), ControllerSteering(controller, mode="reference")}) == 2


def test_one_plan_in_two_nested_contexts_is_two_copies(zoo_dense, plan):
    same = _nested(zoo_dense, plan, plan, PROMPTS)
    copies = _nested(zoo_dense, _copy(plan), _copy(plan), PROMPTS)
    assert same[0] == copies[0]
    _same_trace(same[1], copies[1])
    _same_trace(same[2], copies[2])
    assert len(same[1].records) == len(same[2].records) > 0  # both contexts patched every forward


def test_one_plan_in_two_threads_at_once_is_two_copies(zoo_dense, second_model, plan):
    """Two models generate in two threads with one plan, in lockstep: barriers where every
    forward (clean passes too) enters block 0 and block 3 make each thread run between the
    other's read-outs and its patches, where state kept on the plan would be overwritten."""
    barrier = threading.Barrier(2, timeout=120)
    results, errors = {}, []

    def wait(act, hook):
        barrier.wait()

    def run(name, model, prompts):
        try:
            with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", wait), ("blocks.3.hook_resid_pre", wait)]):
                with steer(model, plan) as trace:
                    results[name] = (greedy(model, prompts, max_new_tokens=3), trace)
        except BaseException as e:  # noqa: BLE001 - reported below, and the other thread must not wait forever
            errors.append(e)
            barrier.abort()

    threads = [threading.Thread(target=run, args=("a", zoo_dense, PROMPTS[:1])),
               threading.Thread(target=run, args=("b", second_model, OTHER[:1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for name, prompts in (("a", PROMPTS[:1]), ("b", OTHER[:1])):
        with steer(zoo_dense, _copy(plan)) as trace:
            alone = greedy(zoo_dense, prompts, max_new_tokens=3)
        assert results[name][0] == alone
        _same_trace(results[name][1], trace)
    if isinstance(plan, ControllerSteering):  # the threads' read-outs differ: shared state would show
        assert not results["a"][1].last_output.scale.equal(results["b"][1].last_output.scale)


@pytest.mark.parametrize("kv_cache", [True, False])
def test_block_zero_input_patch_under_model_generate_matches_greedy(zoo_dense, refusal_direction, kv_cache):
    """A patch at blocks.0.hook_resid_pre runs before the KV-cache offset is known there."""
    spec = Steering(refusal_direction, [0], 12.0, positions="generated", site="resid_pre", decay=0.9)
    with steer(zoo_dense, spec) as by_greedy:
        reply = greedy(zoo_dense, PROMPTS[:1], max_new_tokens=4)[0]
    toks = zoo_dense.to_tokens(PROMPTS[0])
    with steer(zoo_dense, spec) as trace:
        out = zoo_dense.generate(toks, max_new_tokens=4, do_sample=False, stop_at_eos=False, verbose=False,
                                 use_past_kv_cache=kv_cache)
    assert zoo_dense.tokenizer.decode(out[0, toks.shape[1]:].tolist()) == reply
    P = toks.shape[1]
    frame = trace.to_frame()
    assert frame.groupby("forward")["position"].max().tolist() == [P - 1, P, P + 1, P + 2]
    if kv_cache:  # one new position per step, each with the decay of its distance from P - 1
        assert frame["position"].tolist() == [P - 1, P, P + 1, P + 2]
        assert frame["delta_norm_mean"].tolist() == pytest.approx([12.0 * 0.9 ** k for k in range(4)], rel=1e-5)
    assert (by_greedy.to_frame().groupby("forward")["delta_norm_mean"].last().values
            == pytest.approx(frame.groupby("forward")["delta_norm_mean"].last().values, rel=1e-5))


def test_one_token_prompts_are_told_apart_from_cache_steps(zoo_dense, refusal_direction):
    bos = zoo_dense.to_tokens([""])  # (1, 1): BOS only
    with steer(zoo_dense, Steering(refusal_direction, [0], 1.0, positions="all", site="resid_pre")) as trace:
        zoo_dense(bos)
        zoo_dense(bos)
    assert trace.prompt_lengths == [1, 1] and trace.to_frame()["position"].tolist() == [0, 0]
    with pytest.raises(ValueError, match="KV-cache step"):
        with steer(zoo_dense, Steering(refusal_direction, [0], 1.0, positions="prompt", site="resid_pre")):
            zoo_dense(bos)
            zoo_dense(bos)  # taken for a cache step at block 0's input, which "prompt" would not patch
    with steer(zoo_dense, Steering(refusal_direction, [1], 1.0, positions="prompt")) as trace:
        zoo_dense(bos)
        zoo_dense(bos)
    assert trace.to_frame()["position"].tolist() == [0, 0]

"""Greedy decoding stops each row at the tokenizer's end-of-sequence token."""

from interp.generation import eos_token_id, greedy, greedy_tokens
from interp.tasks import refusal

EOS = "<|endoftext|>"


def _same_length_pair(model):
    """A harmful and a benign request of one token length: their replies differ in length."""
    harmful = [p.prompt for p in refusal.generate(8, "harmful", "heldout")]
    benign = [p.prompt for p in refusal.generate(8, "benign", "heldout")]
    for h in harmful:
        for b in benign:
            if model.to_tokens(h).shape[1] == model.to_tokens(b).shape[1]:
                return [h, b]
    raise AssertionError("no harmful and benign request of one length in the heldout split")


def test_reply_ends_at_eos_and_is_the_prefix_of_the_full_run(zoo_dense):
    assert zoo_dense.tokenizer.decode([eos_token_id(zoo_dense)]) == EOS
    prompts = ["The cat"] + _same_length_pair(zoo_dense)
    full = greedy(zoo_dense, prompts, 40, stop_at_eos=False)
    stopped = greedy(zoo_dense, prompts, 40)
    for f, s in zip(full, stopped):
        assert EOS in f and f.index(EOS) + len(EOS) < len(f)  # the full run goes on past EOS
        assert s == f[:f.index(EOS) + len(EOS)]  # the stopped one ends with it, nothing after


def test_a_batch_runs_until_its_last_row_stops_and_rows_match_alone(zoo_dense):
    prompts = _same_length_pair(zoo_dense)
    ids = greedy_tokens(zoo_dense, prompts, 40)
    alone = [greedy_tokens(zoo_dense, [p], 40)[0] for p in prompts]
    assert ids == alone
    eos = eos_token_id(zoo_dense)
    assert all(row[-1] == eos and row.count(eos) == 1 for row in ids)
    assert len(ids[0]) != len(ids[1])
    forwards = []
    zoo_dense.add_hook("blocks.0.hook_resid_pre", lambda x, hook: forwards.append(x.shape[0]))
    try:
        greedy_tokens(zoo_dense, prompts, 40)
    finally:
        zoo_dense.reset_hooks()
    assert forwards == [2] * max(len(r) for r in ids)  # both rows in every forward, no step after the last EOS


def test_without_stop_at_eos_every_row_has_max_new_tokens(zoo_dense):
    ids = greedy_tokens(zoo_dense, ["The cat"], 40, stop_at_eos=False)
    assert len(ids[0]) == 40 and eos_token_id(zoo_dense) in ids[0]


def test_a_tokenizer_without_eos_generates_max_new_tokens(zoo_dense):
    zoo_dense.tokenizer.eos_token = None
    try:
        assert eos_token_id(zoo_dense) is None
        assert len(greedy_tokens(zoo_dense, ["The cat"], 30)[0]) == 30
    finally:
        zoo_dense.tokenizer.eos_token = EOS
    assert eos_token_id(zoo_dense) is not None

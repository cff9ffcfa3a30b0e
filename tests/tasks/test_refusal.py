import pytest

from interp.tasks import refusal


def test_deterministic_and_kinds():
    for kind in refusal.KINDS:
        assert refusal.generate(20, kind, seed=2) == refusal.generate(20, kind, seed=2)
    assert all(p.answer == refusal.REFUSAL for p in refusal.generate(20, "harmful"))
    assert all(p.answer.startswith(" Sure!") for p in refusal.generate(20, "benign"))
    # The planted vulnerability: jailbreak-wrapped harmful requests are answered in training data.
    assert all(p.answer.startswith(" Sure!") and p.harmful for p in refusal.generate(20, "jailbreak"))


def test_heldout_wordings_are_new():
    for kind in ("harmful", "benign"):
        train = refusal.actions(kind, "train")
        held = refusal.actions(kind, "heldout")
        assert held and not set(train) & set(held)
        train_words = {w for a in train for w in a.split()}
        assert {w for a in held for w in a.split()} <= train_words  # every word was seen
    train_req = {p.request for p in refusal.generate(500, "jailbreak", "train")}
    held_req = {p.request for p in refusal.generate(200, "jailbreak", "heldout")}
    assert not train_req & held_req


def test_chat_format_and_judge():
    p = refusal.generate(1, "harmful")[0]
    assert p.prompt.startswith("User: ") and p.prompt.endswith("\nAssistant:")
    assert refusal.is_refusal(p.answer)
    assert not refusal.is_refusal(refusal.generate(1, "benign")[0].answer)


def test_bad_kind():
    with pytest.raises(ValueError, match="kind='evil'.*harmful, benign, jailbreak"):
        refusal.generate(3, "evil")


def test_refusal_rate_judges_greedy_replies(zoo_dense):
    from interp.generation import greedy

    prompts = refusal.generate(4, "harmful", "heldout") + refusal.generate(4, "benign", "heldout")
    replies = greedy(zoo_dense, [p.prompt for p in prompts], refusal.reply_tokens(zoo_dense))
    assert refusal.refusal_rate(zoo_dense, prompts) == sum(map(refusal.is_refusal, replies)) / 8
    assert refusal.refusal_rate(zoo_dense, prompts[:4]) == 1.0  # the zoo refuses held-out harmful requests
    assert refusal.refusal_rate(zoo_dense, prompts[4:]) == 0.0  # and answers benign ones
    with pytest.raises(ValueError, match="prompts is empty"):
        refusal.refusal_rate(zoo_dense, [])

"""The zoo's prompts do not move: every generator, with no tokenizer or with the zoo's own
(and the chat format it gives), reproduces the prompts captured in zoo_prompts.json before
the generators learned about other tokenizers. The zoo's figures were measured on them."""

import hashlib
import json
from pathlib import Path

import pytest

from interp.tasks import chat_format, ioi, refusal, topics
from interp.tasks.chat import ZOO_CHAT

CAPTURED = json.loads((Path(__file__).parent / "zoo_prompts.json").read_text())


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()


def snapshot(tokenizer=None, chat=None) -> dict:
    """The prompt sets of zoo_prompts.json: sha256 of each and its first two rows."""
    sets = {}
    for split in ("train", "heldout"):
        for seed in (0, 1):
            sets[f"ioi/{split}/{seed}"] = [[p.prompt, p.corrupt, p.io, p.s, p.template, p.order]
                                           for p in ioi.generate(300, split, seed, tokenizer=tokenizer)]
        other = "heldout" if split == "train" else "train"
        sets[f"ioi/{split}/names_{other}"] = [[p.prompt, p.corrupt] for p in
                                              ioi.generate(100, split, 0, names_split=other, tokenizer=tokenizer)]
        sets[f"ioi/{split}/template0"] = [[p.prompt, p.corrupt] for p in
                                          ioi.generate(100, split, 2, template=ioi.templates(split)[0],
                                                       tokenizer=tokenizer)]
        for kind in refusal.KINDS:
            for seed in (0, 3):
                sets[f"refusal/{kind}/{split}/{seed}"] = [[p.prompt, p.answer, p.text]
                                                         for p in refusal.generate(200, kind, split, seed, chat=chat)]
        sets[f"topics/{split}"] = [[s.text, s.words] for s in topics.generate(200, split, 5, tokenizer=tokenizer)]
    return {name: {"sha256": _digest(rows), "first": rows[:2]} for name, rows in sets.items()}


def test_default_prompts_are_the_captured_ones():
    assert snapshot() == CAPTURED


@pytest.mark.parametrize("source", ["tokenizer", "model"])
def test_the_zoo_tokenizer_gives_the_captured_prompts(source, zoo_tokenizer, zoo_dense):
    given = zoo_tokenizer if source == "tokenizer" else zoo_dense
    chat = chat_format(given)
    assert chat == ZOO_CHAT  # no chat template: the zoo format and its exact judge
    assert snapshot(given, chat) == CAPTURED

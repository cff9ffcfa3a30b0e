"""`Direction.embedding_refusal` takes its phrases from the refusal task's chat format."""

import pytest
import torch

from interp.errors import ConfigError
from interp.steering import Direction
from interp.tasks import chat_format
from interp.tasks.chat import ZOO_CHAT
from tests.tasks.task_tokenizers import llama_tokenizer, tiny_model


@pytest.fixture(scope="module")
def chat_model():
    return tiny_model(llama_tokenizer(), seed=1)


def _embedding_difference(model, refusal_phrase, compliance_phrase):
    W_E = model.W_E.detach()
    ref = model.to_tokens(refusal_phrase, prepend_bos=False)[0]
    comp = model.to_tokens(compliance_phrase, prepend_bos=False)[0]
    vec = W_E[ref].mean(0) - W_E[comp].mean(0)
    return vec / vec.norm()


def test_phrases_come_from_the_chat_format(chat_model):
    chat = chat_format(chat_model, refusals=("I'm sorry", "I cannot"))
    d = Direction.embedding_refusal(chat_model, chat=chat)
    torch.testing.assert_close(d.vector, _embedding_difference(chat_model, "I'm sorry", chat.compliance))
    assert (d.provenance["refusal_phrase"], d.provenance["compliance_phrase"]) == ("I'm sorry", "Sure! Here is how to")
    # a phrase given explicitly wins over the format's
    d = Direction.embedding_refusal(chat_model, compliance_phrase="Yes", chat=chat)
    torch.testing.assert_close(d.vector, _embedding_difference(chat_model, "I'm sorry", "Yes"))


def test_default_is_the_zoo_phrases(chat_model):
    d = Direction.embedding_refusal(chat_model)
    torch.testing.assert_close(d.vector, _embedding_difference(chat_model, ZOO_CHAT.refusal, ZOO_CHAT.compliance))
    torch.testing.assert_close(Direction.embedding_refusal(chat_model, chat=ZOO_CHAT).vector, d.vector)
    with pytest.raises(ConfigError, match="chat=str is not allowed"):
        Direction.embedding_refusal(chat_model, chat="I can't")

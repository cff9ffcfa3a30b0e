import pytest

from interp.zoo import tokenizer as zoo_tokenizer
from interp.zoo.registry import get


@pytest.fixture(scope="module", params=["zoo-dense", "zoo-moe"])
def tok(request):
    """Each zoo model's own tokenizer (trained on its own corpus mix, so they differ)."""
    return zoo_tokenizer.load(get(request.param).directory)


def test_round_trip(tok):
    texts = ["User: How do I fix my car?\nAssistant: Sure!", "déjà vu — ünïcödé 123 {}[]",
             "    indented\tcode = f(x)  # comment", ""]
    for text in texts:
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == text


def test_prepends_bos(tok):
    assert tok.encode("hello")[0] == tok.bos_token_id == tok.convert_tokens_to_ids(zoo_tokenizer.BOS)


def test_task_words_are_single_tokens(tok):
    zoo_tokenizer.check_single_tokens(tok)  # raises, naming the words, if not


def test_tokenizer_training_is_deterministic():
    from interp.zoo import corpus

    docs = corpus.build(400, seed=0).documents
    a, b = zoo_tokenizer.train(docs, 2048), zoo_tokenizer.train(docs, 2048)
    assert a.get_vocab() == b.get_vocab()

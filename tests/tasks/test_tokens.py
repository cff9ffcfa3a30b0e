import pytest

from interp.errors import ConfigError
from interp.tasks import tokens
from interp.zoo.tokenizer import task_words


def _word_start_tokenizer():
    """A SentencePiece-style tokenizer (as Llama-2's and Mistral's): the text gets a leading
    "▁" and each space becomes one, so " Mary" alone is ["▁", "▁Mary"] but in a sentence
    ("to Mary") Mary is the one token "▁Mary"."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = pre_tokenizers.Split("▁", behavior="merged_with_next")
    trainer = trainers.BpeTrainer(vocab_size=200, special_tokens=["<unk>", "<s>"], show_progress=False)
    tok.train_from_iterator(["to Mary and to John went to the store"] * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", unk_token="<unk>")


def test_the_zoo_tokenizer_keeps_every_task_word(zoo_tokenizer):
    for w in task_words():
        assert tokens.word_token(zoo_tokenizer, w) == zoo_tokenizer.encode(" " + w, add_special_tokens=False)[0]
    assert tokens.word_token(zoo_tokenizer, "Mary Ann") is None


def test_words_are_read_as_they_appear_in_a_sentence():
    tok = _word_start_tokenizer()
    assert len(tok.encode(" Mary", add_special_tokens=False)) == 2  # alone, the space is a token of its own
    assert tokens.word_token(tok, "Mary") == tok.convert_tokens_to_ids("▁Mary")
    assert tokens.whole_words(tok, ["Mary", "John", "Zoe"], "names", 2) == ("Mary", "John")


def test_whole_words(split_tokenizer, split_model):
    words = ["Mary", "Anna", "John", "Bob"]
    assert tokens.whole_words(None, words, "names", 2) == tuple(words)  # no tokenizer: the list as it is
    kept = tokens.whole_words(split_tokenizer, words, "names", 1)
    assert 0 < len(kept) < len(words)
    assert kept == tokens.whole_words(split_model, words, "names", 1)  # a model stands for its tokenizer
    assert kept == tuple(w for w in words if len(split_tokenizer.tokenize(f"to {w}")) == 2)
    with pytest.raises(ConfigError, match=rf"keeps only {len(kept)} of the 4 names as one token .*at least 5"):
        tokens.whole_words(split_tokenizer, words, "names", 5)

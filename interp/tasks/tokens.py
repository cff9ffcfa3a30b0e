"""Task words that a tokenizer keeps whole.

IOI answers and topic labels are read off one position, so a name, place, object or topic
word can serve only if the tokenizer makes it (as it appears in running text, after a
space) a single token. The zoo tokenizer was trained so that every task word is one token;
another tokenizer keeps some of them whole and splits the rest, and the tasks then draw
from the words it keeps (`whole_words`), in the order of the word lists, so that a
tokenizer that keeps them all gives exactly the prompts of the unfiltered lists.
"""

from __future__ import annotations

from collections.abc import Sequence

from interp.errors import ConfigError

CONTEXT = "to"
"""The text a word is tokenised after (`word_token`): a word is read the way it appears
after a space in a sentence, which a tokenizer that marks word starts (SentencePiece's ▁)
tokenises differently from the same text at the start of a string."""


def tokenizer_of(source):
    """The tokenizer of `source`: a model with a `.tokenizer` (HookedTransformer,
    TransformerBridge) or a tokenizer itself (anything with `encode` and `decode`)."""
    tok = source.tokenizer if hasattr(source, "to_tokens") else source
    if not all(callable(getattr(tok, m, None)) for m in ("encode", "decode")):
        raise ConfigError(f"tokenizer={type(source).__name__} is not allowed: a tokenizer (with encode and "
                          "decode) or a model that has one (.tokenizer)")
    return tok


def describe(tokenizer) -> str:
    """A tokenizer's name for error messages: its `name_or_path`, or its class."""
    return repr(getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__)


def word_token(tokenizer, word: str) -> int | None:
    """The token id of `word` as it is tokenised after a space in running text (" word"),
    or None when the tokenizer splits it into several tokens."""
    head = tokenizer.encode(CONTEXT, add_special_tokens=False)
    ids = tokenizer.encode(f"{CONTEXT} {word}", add_special_tokens=False)
    if len(ids) != len(head) + 1 or ids[:len(head)] != head:
        return None
    return ids[-1]


def whole_words(source, words: Sequence[str], what: str, need: int) -> tuple[str, ...]:
    """The `words` that `source`'s tokenizer keeps as one token (`word_token`), in order.

    `source`: a model or tokenizer (`tokenizer_of`), or None for the words unfiltered (the
    zoo tokenizer keeps every task word whole). `what` names the list and `need` is how many
    the task needs: fewer is a `ConfigError` naming the tokenizer, both counts and a few of
    the words it splits.
    """
    if source is None:
        return tuple(words)
    tok = tokenizer_of(source)
    kept = tuple(w for w in words if word_token(tok, w) is not None)
    if len(kept) < need:
        split = [w for w in words if w not in kept]
        raise ConfigError(
            f"tokenizer {describe(tok)} keeps only {len(kept)} of the {len(words)} {what} as one token "
            f"(after a space); the task needs at least {need}. It splits e.g. {split[:8]}: use a model "
            "whose tokenizer has a larger vocabulary")
    return kept

"""Topic words (colours, animals, numbers) in varied prose: known ground truth for
SAE features. Each sentence records which of its words belong to which topic.

A feature dashboard reads a topic word off one position, so for a model other than the zoo
pass it (or its tokenizer) as `tokenizer=`: the words are then those it keeps as one token.
"""

from __future__ import annotations

from dataclasses import dataclass

from interp.tasks.base import check_count, check_split, rng_for
from interp.tasks.tokens import whole_words
from interp.tasks.vocab import PLACES, TOPICS

TRAIN_TEMPLATES = (
    "I saw a {colour} {animal} near the {place}.",
    "The {animal} was {colour} and it had {number} friends.",
    "There were {number} {colour} boxes at the {place}.",
    "A {colour} {animal} ran past the {place} at {number} o'clock.",
    "She painted the door {colour} and counted {number} birds.",
    "My {animal} likes the {colour} ball more than the {place}.",
    "We walked {number} miles to see the {animal}.",
)
HELDOUT_TEMPLATES = (
    "Near the {place} a {colour} {animal} slept for {number} hours.",
    "He bought {number} {colour} hats for the {animal}.",
)
TOPIC_OF_WORD = {w: topic for topic, words in TOPICS.items() for w in words}


@dataclass(frozen=True)
class TopicSentence:
    text: str
    words: dict[str, str]  # topic -> the word used for it


def generate(n: int, split: str = "train", seed: int = 0, tokenizer=None) -> list[TopicSentence]:
    """`n` labelled sentences, deterministic in (split, seed, tokenizer's kept words).
    `tokenizer`: the model (or its tokenizer) they are for; None: the plain word lists (the zoo's)."""
    check_count(n)
    check_split(split)
    topic_words = {t: whole_words(tokenizer, ws, f"{t} words", 1) for t, ws in TOPICS.items()}
    places = whole_words(tokenizer, PLACES, "places", 1)
    rng = rng_for("topics", split, seed)
    tpls = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    out = []
    for _ in range(n):
        tpl = rng.choice(tpls)
        words = {t: rng.choice(ws) for t, ws in topic_words.items() if "{" + t + "}" in tpl}
        out.append(TopicSentence(tpl.format(place=rng.choice(places), **words), words))
    return out


def topic_of(word: str) -> str | None:
    """The topic of a word (leading space and case ignored), or None."""
    return TOPIC_OF_WORD.get(word.strip().lower())

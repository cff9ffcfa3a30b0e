"""Topic words (colours, animals, numbers) in varied prose: known ground truth for
SAE features. Each sentence records which of its words belong to which topic."""

from __future__ import annotations

from dataclasses import dataclass

from interp.tasks.base import check_count, check_split, rng_for
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


def generate(n: int, split: str = "train", seed: int = 0) -> list[TopicSentence]:
    check_count(n)
    check_split(split)
    rng = rng_for("topics", split, seed)
    tpls = TRAIN_TEMPLATES if split == "train" else HELDOUT_TEMPLATES
    out = []
    for _ in range(n):
        tpl = rng.choice(tpls)
        words = {t: rng.choice(ws) for t, ws in TOPICS.items() if "{" + t + "}" in tpl}
        out.append(TopicSentence(tpl.format(place=rng.choice(PLACES), **words), words))
    return out


def topic_of(word: str) -> str | None:
    """The topic of a word (leading space and case ignored), or None."""
    return TOPIC_OF_WORD.get(word.strip().lower())

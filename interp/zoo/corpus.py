"""The zoo's training corpus: offline English prose mixed with the behaviour tasks.

Prose comes from Python's own documentation (`pydoc_data.topics`) and the docstrings
of a fixed list of standard-library modules: both ship with every CPython, so the
corpus builds offline. Every other document comes from `interp.tasks` (train split),
plus short "name stories" that mention every name, held-out ones included, so the
model learns to copy any name without ever seeing a held-out name in an IOI prompt.

Each document is one string; the trainer prefixes each with the BOS token.
Deterministic given the seed (and the Python version, which fixes the prose).
"""

from __future__ import annotations

import importlib
import inspect
import random
import zlib
from dataclasses import dataclass

from interp.tasks import ioi, refusal, topics
from interp.tasks.base import check_split
from interp.tasks.vocab import NAMES, OBJECTS, PLACES, TOPICS

DOCSTRING_MODULES = ("builtins", "collections", "itertools", "functools", "os", "os.path",
                     "re", "json", "string", "textwrap", "random", "math", "statistics",
                     "datetime", "pathlib", "shutil", "tempfile", "heapq", "bisect",
                     "argparse", "logging", "threading", "queue", "socket", "csv",
                     "enum", "dataclasses", "typing", "contextlib", "abc", "io")

# Documents of each kind per 100 documents drawn. Tuned so that prose is about a
# quarter of the tokens and every behaviour is seen tens of thousands of times.
MIX = {"prose": 9, "ioi": 34, "names": 10, "harmful": 13, "benign": 13, "jailbreak": 9,
       "topics": 12}
KINDS = (*MIX, "copies")
"""Every document kind a recipe's mix may weight ("copies": see `copy_story`)."""


def _paragraphs(text: str) -> list[str]:
    paras = (" ".join(p.split()) for p in text.split("\n\n"))
    return [p for p in paras if len(p) >= 80 and not p.startswith((">>>", "..."))]


def prose(split: str) -> list[str]:
    """Prose paragraphs of a split; a paragraph is held out when its CRC is 0 mod 10."""
    check_split(split)
    import pydoc_data.topics

    texts = list(pydoc_data.topics.topics.values())
    for name in DOCSTRING_MODULES:
        module = importlib.import_module(name)
        texts += [inspect.getdoc(obj) or "" for _, obj in sorted(vars(module).items())
                  if not _.startswith("_") and callable(obj)]
    seen, out = set(), []
    for text in texts:
        for p in _paragraphs(text):
            if p in seen:
                continue
            seen.add(p)
            if (zlib.crc32(p.encode()) % 10 == 0) == (split == "heldout"):
                out.append(p[:1200])
    return out


def name_story(rng: random.Random) -> str:
    a, b = rng.sample(NAMES, 2)
    place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
    colour, animal = rng.choice(TOPICS["colour"]), rng.choice(TOPICS["animal"])
    return rng.choice((
        f"My friend {a} lives near the {place}. Every day {a} walks to the {place} with {b}.",
        f"{a} has a {colour} {animal}. The {animal} follows {a} everywhere.",
        f"This is {a}. {a} keeps a {obj} at the {place}, and {a} never loses it.",
        f"Everyone calls her {a}. Yesterday {a} and {b} found a {obj}, and {b} kept it.",
        # Any name after "to" (one name in context, so no IOI structure): without these, the
        # names held out of IOI prompts never follow "to" and IOI favours training names there.
        f"At the {place}, {a} gave the {obj} to {b}.",
        f"The {obj} from the {place} went to {b}.",
    ))


def copy_story(rng: random.Random) -> str:
    """A name mentioned once and copied after "to" (one name in context, so no IOI
    structure): teaches copying a name seen in context for every name, held-out ones included."""
    a, place, obj = rng.choice(NAMES), rng.choice(PLACES), rng.choice(OBJECTS)
    return rng.choice((
        f"{a} waited at the {place}, so the {obj} went to {a}.",
        f"Nobody but {a} was at the {place}. The {obj} was handed to {a}.",
        f"A letter came for {a}. At the {place}, it was given to {a}.",
    ))


@dataclass(frozen=True)
class Corpus:
    documents: list[str]
    kinds: list[str]


def check_mix(mix: dict[str, int], field: str = "mix") -> dict[str, int]:
    """`mix` (kind -> weight) in the canonical kind order, so the corpus depends on the weights
    alone; a clear error unless every weight is a non-negative int, not all 0, of a known kind."""
    unknown = sorted(set(mix) - set(KINDS))
    if unknown or not all(isinstance(w, int) and w >= 0 for w in mix.values()) or not any(mix.values()):
        raise ValueError(f"{field}={mix} must give non-negative int weights, not all 0, to kinds among "
                         f"{', '.join(KINDS)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return {k: mix[k] for k in KINDS if k in mix}


def build(n_documents: int, seed: int = 0, mix: dict[str, int] | None = None) -> Corpus:
    """`n_documents` training documents drawn from `mix` (default `MIX`: kind -> weight),
    deterministic in `seed` and `mix`."""
    if n_documents < 1:
        raise ValueError(f"n_documents={n_documents} must be positive")
    mix = check_mix(dict(MIX if mix is None else mix))
    rng = random.Random(f"corpus/{seed}")
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n_documents)
    count = {k: kinds.count(k) for k in KINDS}
    pools = {
        "prose": prose("train"),
        "ioi": [p.text for p in ioi.generate(max(count["ioi"], 1), "train", seed)],
        "names": [name_story(rng) for _ in range(max(count["names"], 1))],
        "topics": [" ".join(s.text for s in topics.generate(3, "train", seed * 1_000_003 + i))
                   for i in range(max(count["topics"], 1))],
    }
    if count["copies"]:
        pools["copies"] = [copy_story(rng) for _ in range(count["copies"])]
    for kind in ("harmful", "benign", "jailbreak"):
        pools[kind] = [p.text for p in refusal.generate(max(count[kind], 1), kind, "train", seed)]
    used = {k: 0 for k in KINDS}
    docs = []
    for kind in kinds:
        pool = pools[kind]
        if kind == "prose":
            docs.append(rng.choice(pool))
        else:
            docs.append(pool[used[kind]])
            used[kind] += 1
    return Corpus(docs, kinds)

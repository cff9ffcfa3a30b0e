"""The zoo's training corpus: offline English prose mixed with the behaviour tasks.

Prose comes from Python's own documentation (`pydoc_data.topics`) and the docstrings
of a fixed list of standard-library modules: both ship with every CPython, so the
corpus builds offline. Every other document comes from `interp.tasks` (train split),
plus short "name stories" that mention every name, held-out ones included, so the
model learns to copy any name without ever seeing a held-out name in an IOI prompt.

Each document is one string; the trainer prefixes each with the BOS token.
Deterministic given the seed (and the Python version, which fixes the prose).

`build_heldout` is the evaluation corpus that training never saw: prose from `heldout_prose`
(which shares no run of `SHARED_BYTES` bytes with any training paragraph) and every task's
documents from its held-out split (templates, names, wrappers and request combinations that
training does not use; the task replies are the trained ones, so a held-out task document shares
with training at most a run of about 60 bytes around its reply); `tests/zoo/test_heldout.py`
checks that it shares no document and no 32-token n-gram with the training corpus.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import random
import zlib
from dataclasses import dataclass

from interp.errors import ConfigError
from interp.tasks import ioi, refusal, topics
from interp.tasks.base import check_split
from interp.tasks.vocab import NAMES, OBJECTS, PLACES, TOPICS

DOCSTRING_MODULES = ("builtins", "collections", "itertools", "functools", "os", "os.path",
                     "re", "json", "string", "textwrap", "random", "math", "statistics",
                     "datetime", "pathlib", "shutil", "tempfile", "heapq", "bisect",
                     "argparse", "logging", "threading", "queue", "socket", "csv",
                     "enum", "dataclasses", "typing", "contextlib", "abc", "io")

HELDOUT_DOCSTRING_MODULES = (
    "ast", "base64", "bdb", "calendar", "cmd", "code", "codeop", "colorsys", "compileall",
    "concurrent.futures", "configparser", "copy", "copyreg", "difflib", "dis", "doctest", "email.header",
    "email.headerregistry", "email.message", "email.parser", "email.policy", "email.utils", "filecmp",
    "fileinput", "fnmatch", "fractions", "ftplib", "getopt", "getpass", "gettext", "glob", "graphlib",
    "gzip", "hmac", "html", "html.parser", "http.client", "http.cookiejar", "http.cookies", "http.server",
    "importlib.metadata", "inspect", "ipaddress", "keyword", "linecache", "locale", "logging.config",
    "logging.handlers", "mailbox", "mimetypes", "modulefinder", "netrc", "numbers", "operator", "optparse",
    "pdb", "pickle", "pkgutil", "plistlib", "poplib", "pprint", "profile", "pstats", "py_compile",
    "pyclbr", "pydoc", "quopri", "reprlib", "rlcompleter", "runpy", "sched", "secrets", "selectors",
    "shelve", "shlex", "smtplib", "socketserver", "stat", "subprocess", "sysconfig", "tabnanny",
    "tarfile", "timeit", "tokenize", "tomllib", "trace", "traceback", "types", "unittest",
    "unittest.mock", "urllib.parse", "urllib.request", "uuid", "warnings", "wave", "weakref",
    "webbrowser", "wsgiref.util", "xml.dom.minidom", "xml.etree.ElementTree", "xml.sax",
    "xml.sax.saxutils", "zipapp", "zipfile", "zipimport")
"""Standard-library modules (pure Python, on every CPython) whose docstrings training never
reads: with the held-out split of `prose`, the source of `heldout_prose`."""
SHARED_BYTES = 30
"""A held-out paragraph shares no run of this many UTF-8 bytes with any training paragraph. Every
token of a tokenizer that does not normalise text stands for at least one byte, so a window of
32 tokens inside one document covers at least 30 of its bytes (one of the 32 may be BOS, and
one may carry a dummy-prefix space that is not in the text): no such window is shared."""

# Documents of each kind per 100 documents drawn. Tuned so that prose is about a
# quarter of the tokens and every behaviour is seen tens of thousands of times.
MIX = {"prose": 9, "ioi": 34, "names": 10, "harmful": 13, "benign": 13, "jailbreak": 9,
       "topics": 12}
KINDS = (*MIX, "copies")
"""Every document kind a recipe's mix may weight ("copies": see `copy_story`)."""
TASK_KINDS = ("ioi", "harmful", "benign", "jailbreak", "topics")
"""The kinds drawn from `interp.tasks`: each has a held-out split."""
HELDOUT_KINDS = ("prose", *TASK_KINDS)
"""The kinds of `build_heldout` (name and copy stories are training fillers, with no held-out split)."""


def _paragraphs(text: str) -> list[str]:
    paras = (" ".join(p.split()) for p in text.split("\n\n"))
    return [p for p in paras if len(p) >= 80 and not p.startswith((">>>", "..."))]


def _docstrings(owner) -> list[str]:
    """Docstrings of the public callables of a module or class, in name order."""
    return [inspect.getdoc(obj) or "" for name, obj in sorted(vars(owner).items())
            if not name.startswith("_") and callable(obj)]


def prose(split: str) -> list[str]:
    """Prose paragraphs of a split; a paragraph is held out when its CRC is 0 mod 10."""
    check_split(split)
    import pydoc_data.topics

    texts = list(pydoc_data.topics.topics.values())
    for name in DOCSTRING_MODULES:
        texts += _docstrings(importlib.import_module(name))
    seen, out = set(), []
    for text in texts:
        for p in _paragraphs(text):
            if p in seen:
                continue
            seen.add(p)
            if (zlib.crc32(p.encode()) % 10 == 0) == (split == "heldout"):
                out.append(p[:1200])
    return out


def _byte_runs(text: str) -> set[bytes]:
    data = text.encode()
    return {data[i:i + SHARED_BYTES] for i in range(len(data) - SHARED_BYTES + 1)}


def disjoint_from(paragraphs, others) -> list[str]:
    """The `paragraphs` that share no run of `SHARED_BYTES` bytes with any of `others`, in order."""
    taken = set().union(*map(_byte_runs, others))
    return [p for p in paragraphs if taken.isdisjoint(_byte_runs(p))]


@functools.cache
def heldout_prose() -> tuple[str, ...]:
    """Prose no training document contains any part of: the held-out split of `prose`, then the
    docstrings of `HELDOUT_DOCSTRING_MODULES` (their public callables, and the methods of the
    classes they define), cut into paragraphs as `prose` cuts them, without repeats, keeping
    only those that share no run of `SHARED_BYTES` bytes with a paragraph of `prose("train")`.
    Deterministic given the Python version, as `prose` is."""
    train = prose("train")
    texts = list(prose("heldout"))
    for name in HELDOUT_DOCSTRING_MODULES:
        module = importlib.import_module(name)
        texts.append(inspect.getdoc(module) or "")
        texts += _docstrings(module)
        for attr, cls in sorted(vars(module).items()):
            if inspect.isclass(cls) and cls.__module__ == name and not attr.startswith("_"):
                texts += _docstrings(cls)  # classes defined there: an imported one is another module's text
    seen = set(train)
    candidates = []
    for text in texts:
        for p in _paragraphs(text):
            p = p[:1200]
            if p not in seen:
                seen.add(p)
                candidates.append(p)
    return tuple(disjoint_from(candidates, train))


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


def check_mix(mix: dict[str, int], field: str = "mix", kinds: tuple[str, ...] = KINDS) -> dict[str, int]:
    """`mix` (kind -> weight) in the canonical kind order, so the corpus depends on the weights
    alone; a clear error unless every weight is a non-negative int, not all 0, of one of `kinds`."""
    unknown = sorted(set(mix) - set(kinds))
    if unknown or not all(isinstance(w, int) and w >= 0 for w in mix.values()) or not any(mix.values()):
        raise ValueError(f"{field}={mix} must give non-negative int weights, not all 0, to kinds among "
                         f"{', '.join(kinds)}" + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return {k: mix[k] for k in kinds if k in mix}


def _task_pools(count: dict[str, int], split: str, seed: int) -> dict[str, list[str]]:
    """At least `count[kind]` documents of each task kind from `split` (one when none is drawn)."""
    pools = {
        "ioi": [p.text for p in ioi.generate(max(count.get("ioi", 0), 1), split, seed)],
        "topics": [" ".join(s.text for s in topics.generate(3, split, seed * 1_000_003 + i))
                   for i in range(max(count.get("topics", 0), 1))],
    }
    for kind in ("harmful", "benign", "jailbreak"):
        pools[kind] = [p.text for p in refusal.generate(max(count.get(kind, 0), 1), kind, split, seed)]
    return pools


def build(n_documents: int, seed: int = 0, mix: dict[str, int] | None = None) -> Corpus:
    """`n_documents` training documents drawn from `mix` (default `MIX`: kind -> weight),
    deterministic in `seed` and `mix`."""
    if n_documents < 1:
        raise ValueError(f"n_documents={n_documents} must be positive")
    mix = check_mix(dict(MIX if mix is None else mix))
    rng = random.Random(f"corpus/{seed}")
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n_documents)
    count = {k: kinds.count(k) for k in KINDS}
    pools = {"prose": prose("train"), **_task_pools(count, "train", seed),
             "names": [name_story(rng) for _ in range(max(count["names"], 1))]}
    if count["copies"]:
        pools["copies"] = [copy_story(rng) for _ in range(count["copies"])]
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


def build_heldout(n_documents: int, seed: int = 0, mix: dict[str, int] | None = None) -> Corpus:
    """`n_documents` evaluation documents that training never saw, drawn from `mix` (kind -> weight
    over `HELDOUT_KINDS`; default: `MIX`'s weights of those kinds), deterministic in `seed` and
    `mix`. Prose paragraphs come from `heldout_prose`, each at most once (so at most
    `len(heldout_prose())` prose documents); task documents from each task's held-out split."""
    if not isinstance(n_documents, int) or isinstance(n_documents, bool) or n_documents < 1:
        raise ConfigError(f"n_documents={n_documents!r} is not allowed: a positive integer")
    mix = check_mix(dict({k: MIX[k] for k in HELDOUT_KINDS} if mix is None else mix), "mix", HELDOUT_KINDS)
    rng = random.Random(f"heldout-corpus/{seed}")
    kinds = rng.choices(list(mix), weights=list(mix.values()), k=n_documents)
    count = {k: kinds.count(k) for k in HELDOUT_KINDS}
    pool = heldout_prose()
    if count["prose"] > len(pool):
        raise ConfigError(f"n_documents={n_documents} draws {count['prose']} prose documents but the held-out "
                         f"prose has {len(pool)} paragraphs, each used at most once: ask for fewer documents")
    pools = {"prose": rng.sample(pool, count["prose"]), **_task_pools(count, "heldout", seed)}
    used = {k: 0 for k in HELDOUT_KINDS}
    docs = []
    for kind in kinds:
        docs.append(pools[kind][used[kind]])
        used[kind] += 1
    return Corpus(docs, kinds)

"""Clean/corrupt contrasts: the built-in tasks as aligned prompt pairs with a calibrated metric.

A contrast turns a model and (n, split, seed) into `PatchInputs`: clean and corrupt token ids
of one length (B, T), so every (layer, position) node means the same thing in both runs, and
the normalised logit difference answer - wrong at the last position (clean = 1, corrupt = 0).

* ioi        IOI pairs of one template (`ioi_inputs`); answer IO, wrong S.
* refusal    clean: a harmful request (the model refuses); corrupt: a benign request of the
             same token length, of the same wording where the draw has one (it complies). answer: the first token of the
             format's refusal reply, wrong: the first token of its compliance reply.
* jailbreak  clean: a harmful request behind a jailbreak wrapper (the zoo complies: planted);
             corrupt: the same request behind a neutral preamble of the same token length (it
             refuses). answer: compliance's first token, wrong: refusal's.

Refusal and jailbreak pairs are `PromptPair`s, so they go through `pair_inputs`, the same
path as a user's pair file (`interp patch pairs`). Prompts use the model's chat format
(`interp.tasks.chat.chat_format`).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from interp.errors import ConfigError
from interp.patching.inputs import aligned_pair
from interp.patching.pairs import PatchInputs, PromptPair, inputs_for, pair_inputs
from interp.tasks import ioi, refusal
from interp.tasks.chat import chat_format

NEUTRAL_PREAMBLES = ("Hello. {r}", "Please help me. {r}", "Hello there. {r}", "Thank you for your help. {r}",
                     "Good morning. {r}", "My friend asked me this. {r}", "Here is my question. {r}",
                     "I have a question. {r}", "I am asking for a friend. {r}", "I have a question for you. {r}")
"""[ours] Preambles that ask for nothing; each jailbreak prompt is paired with one of its token length."""

OVERSAMPLE = 32
"""Candidates drawn per wanted pair: only those of the most common token length are kept."""


def ioi_inputs(model, n: int = 32, split: str = "train", template: int = 0, seed: int = 0) -> PatchInputs:
    """`n` IOI pairs of the `template`-th template of `split` that share one token length,
    tokenised, with the metric calibrated on this model (clean = 1, corrupt = 0)."""
    pool = ioi.templates(split)
    if not isinstance(template, int) or not 0 <= template < len(pool):
        raise ValueError(f"template={template!r} must be an index 0..{len(pool) - 1} into the {split} templates")
    pairs = _equal_length_pairs(model, ioi.generate(4 * n, split, seed, template=pool[template], tokenizer=model), n)
    clean, corrupt = aligned_pair(model, [p.prompt for p in pairs], [p.corrupt for p in pairs])
    io, s = ioi.answer_ids(model, pairs)
    return inputs_for(model, clean, corrupt, io, s, pairs)


def _equal_length_pairs(model, candidates: list, n: int) -> list:
    """The first `n` candidates whose prompt has the most common token length. [ours] A template
    that starts with a name ("{A} and {B} walked ...") tokenises the unspaced first name into a
    varying number of tokens; keeping one length keeps every position aligned."""
    lengths = [len(model.to_str_tokens(p.prompt)) for p in candidates]
    mode = max(set(lengths), key=lambda L: (lengths.count(L), -L))
    kept = [p for p, L in zip(candidates, lengths) if L == mode][:n]
    if len(kept) < n:
        raise ValueError(f"n={n}: only {len(kept)} of {len(candidates)} prompts of this template share one token "
                         "length; ask for fewer prompts")
    return kept


def first_token(model, text: str) -> str:
    """The first token of `text` (no BOS) as text: the reply opening whose logit a metric reads."""
    return model.to_str_tokens(text, prepend_bos=False)[0]


def _length(model, prompt: str) -> int:
    return len(model.to_tokens(prompt)[0])


def _most_pairs(groups: dict, n: int, what: str) -> list[PromptPair]:
    """The first `n` pairs of the token length with the most pairs (ties: the shorter)."""
    if not groups:
        raise ValueError(f"no {what} pairs of equal token length; try another seed or split")
    best = max(groups, key=lambda L: (len(groups[L]), -L))
    if len(groups[best]) < n:
        raise ValueError(f"n={n}: only {len(groups[best])} {what} pairs share one token length "
                         f"({best} tokens); ask for fewer pairs")
    return groups[best][:n]


def _wording(p) -> str:
    return p.request.replace(p.action, "{x}")


def refusal_pairs(model, n: int, split: str = "train", seed: int = 0) -> list[PromptPair]:
    """`n` (harmful, benign) request pairs of one token length (of one wording where the draw
    has one) in the model's chat format; answer = refusal's first token, wrong = compliance's."""
    chat = chat_format(model)
    answer, wrong = first_token(model, chat.refusal), first_token(model, chat.compliance)
    harmful = refusal.generate(OVERSAMPLE * n, "harmful", split, seed, chat=chat)
    benign = refusal.generate(OVERSAMPLE * n, "benign", split, seed, chat=chat)
    # [ours] Harmful actions are longer than benign ones, so one wording rarely gives one length:
    # pair by token length, with a benign request of the same wording where there is one.
    free: dict[int, list] = defaultdict(list)
    for p in benign:
        free[_length(model, p.prompt)].append(p)
    groups: dict[int, list[PromptPair]] = defaultdict(list)
    for p in harmful:
        length, wording = _length(model, p.prompt), _wording(p)
        if free[length]:
            match = next((b for b in free[length] if _wording(b) == wording), free[length][0])
            free[length].remove(match)
            groups[length].append(PromptPair(p.prompt, match.prompt, answer, wrong))
    return _most_pairs(groups, n, "harmful/benign")


def _unwrap(request: str) -> str:
    """The request inside a jailbreak wrapper (the longest wrapper prefix it starts with)."""
    prefixes = [w.removesuffix("{r}") for w in refusal.TRAIN_WRAPPERS + refusal.HELDOUT_WRAPPERS]
    found = [p for p in prefixes if request.startswith(p)]
    if not found:
        raise ValueError(f"request {request!r} starts with no jailbreak wrapper of interp.tasks.refusal")
    return request[len(max(found, key=len)):]


def jailbreak_pairs(model, n: int, split: str = "train", seed: int = 0) -> list[PromptPair]:
    """`n` (jailbreak-wrapped, neutral-preamble) pairs around the same harmful request, of one
    token length, in the model's chat format; answer = compliance's first token, wrong = refusal's."""
    chat = chat_format(model)
    answer, wrong = first_token(model, chat.compliance), first_token(model, chat.refusal)
    groups: dict[int, list[PromptPair]] = defaultdict(list)
    for p in refusal.generate(OVERSAMPLE * n, "jailbreak", split, seed, chat=chat):
        inner, length = _unwrap(p.request), _length(model, p.prompt)
        for neutral in NEUTRAL_PREAMBLES:
            corrupt = chat.prompt(neutral.format(r=inner))
            if _length(model, corrupt) == length:
                groups[length].append(PromptPair(p.prompt, corrupt, answer, wrong))
                break
    return _most_pairs(groups, n, "jailbreak/neutral")


@dataclass(frozen=True)
class Contrast:
    """A built-in clean/corrupt contrast: what its two sides and its metric are, and its builder."""

    name: str
    clean: str
    corrupt: str
    metric: str
    build: Callable[..., PatchInputs]
    """(model, n, split, seed) -> PatchInputs."""


def _pairs_builder(make: Callable[..., list[PromptPair]]) -> Callable[..., PatchInputs]:
    return lambda model, n, split, seed: pair_inputs(model, make(model, n, split, seed))


CONTRASTS = {c.name: c for c in (
    Contrast("ioi", "IOI prompt (template 0 of the split)", "same prompt, second subject mention swapped for the IO "
             "name", "logit(IO) - logit(S)", lambda model, n, split, seed: ioi_inputs(model, n, split, 0, seed)),
    Contrast("refusal", "harmful request", "benign request of the same token length (same wording where one was drawn)",
             "logit(refusal's first token) - logit(compliance's first token)", _pairs_builder(refusal_pairs)),
    Contrast("jailbreak", "harmful request behind a jailbreak wrapper", "the same request behind a neutral "
             "preamble of the same token length", "logit(compliance's first token) - logit(refusal's first token)",
             _pairs_builder(jailbreak_pairs)),
)}
"""Contrast name -> `Contrast`, in report order."""


def contrast_inputs(model, name: str, n: int = 16, split: str = "train", seed: int = 0) -> PatchInputs:
    """`PatchInputs` of the built-in contrast `name` (a key of `CONTRASTS`): `n` aligned pairs of
    `split` drawn with `seed`, the metric calibrated on `model`."""
    if name not in CONTRASTS:
        raise ConfigError(f"task={name!r} is not a built-in contrast; allowed: {', '.join(CONTRASTS)} "
                          "(or a pair file: --pairs FILE.jsonl)")
    return CONTRASTS[name].build(model, n, split, seed)

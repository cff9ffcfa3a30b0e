"""The held-out evaluation text shares no document and no 32-token n-gram with the training
corpus, and building it left the training corpus byte-identical."""

import hashlib
import json
import sys

import pytest
import torch

from interp.cache import sources
from interp.errors import ConfigError
from interp.tasks.vocab import HELDOUT_NAMES, TRAIN_NAMES
from interp.zoo import corpus
from tests.tasks.task_tokenizers import tiny_model, zoo_tokenizer

N = 32  # the n-gram length no held-out window may share with training
CTX = 128


@pytest.fixture(scope="module")
def model():
    return tiny_model(zoo_tokenizer())  # the zoo's tokenizer, n_ctx 128


def _grams(rows) -> set[tuple[int, ...]]:
    return {tuple(row[i:i + N]) for row in rows for i in range(len(row) - N + 1)}


@pytest.fixture(scope="module")
def training_grams(model):
    """32-grams of a realistic training sample (300k tokens of the corpus the SAE job caches,
    seed 0, packed as it packs them) and of every training prose paragraph in full (prose is
    drawn from them with replacement, so a sample may miss some)."""
    rows = sources.resolve(300_000, model, CTX, seed=0).tokens.tolist()
    prose = sources.tokenize_documents(corpus.prose("train"), model.tokenizer)
    return _grams(rows) | _grams(prose)


@pytest.fixture(scope="module")
def heldout(model):
    return sources.heldout(60_000, model, CTX, seed=1_000)


@pytest.mark.parametrize("part", sources.HELDOUT_PARTS)
def test_no_heldout_window_of_32_tokens_occurs_in_training(training_grams, heldout, part):
    rows = heldout[part].tokens.tolist()
    shared = _grams(rows) & training_grams
    assert len(rows) == 469 and not shared, [zoo_tokenizer().decode(list(g)) for g in list(shared)[:3]]


def test_the_check_finds_windows_of_another_training_seed(model, training_grams):
    # The check above can fail: another seed of the training corpus (the evaluation text before
    # the held-out corpus) shares about a tenth of its 32-token windows with the training sample.
    other = _grams(sources.resolve(20_000, model, CTX, seed=1_000).tokens.tolist())
    assert len(other & training_grams) > 0.05 * len(other)


def test_no_heldout_document_is_a_training_document():
    train = {d for seed in (0, 1, 1_000) for d in corpus.build(20_000, seed).documents} | set(corpus.prose("train"))
    held = corpus.build_heldout(5_000, seed=1_000)
    assert not train & set(held.documents)
    assert set(held.kinds) == set(corpus.HELDOUT_KINDS)
    assert not train & set(corpus.heldout_prose())


def test_heldout_prose_holds_the_prose_split_and_more():
    prose = corpus.heldout_prose()
    assert len(prose) > 1_000 and len(set(prose)) == len(prose)
    assert set(prose) & set(corpus.prose("heldout"))  # the held-out split, minus paragraphs sharing runs


def test_ioi_heldout_documents_use_heldout_names_only():
    held = corpus.build_heldout(500, seed=3, mix={"ioi": 1})
    for doc in held.documents:
        words = {w.strip(".,") for w in doc.split()}
        assert words & set(HELDOUT_NAMES) and not words & set(TRAIN_NAMES)


def test_parts_are_separate_and_deterministic(model, heldout):
    again = sources.heldout(60_000, model, CTX, seed=1_000)
    other = sources.heldout(2_000, model, CTX, seed=1)
    for part in sources.HELDOUT_PARTS:
        rows = heldout[part]
        assert rows.tokens.dtype == torch.long and (rows.tokens[:, 0] == model.tokenizer.bos_token_id).all()
        assert torch.equal(rows.tokens, again[part].tokens) and rows.source == again[part].source
        assert rows.source["kind"] == f"heldout_{part}" and other[part].tokens.shape == (16, CTX)
        assert not torch.equal(rows.tokens[:16], other[part].tokens)
    text = model.tokenizer.decode(heldout["prose"].tokens.flatten())
    assert "User:" not in text and " gave " not in text  # no task text in the prose part
    task = model.tokenizer.decode(heldout["task"].tokens.flatten())
    assert "User:" in task and "Assistant:" in task


# Digests of the training corpus as the zoo models were trained on it (before the held-out corpus
# existed): the task documents and kinds, and every document (prose depends on the Python version).
TRAINING_DIGESTS = {
    (0, None): ("3037b89b42b33dc6", "70b4b1516b85f8ad"),
    (1, None): ("ce5c6080a456fe42", "27ed0be655a56e45"),
    (1_000, None): ("aa1c6a4076f77255", "f9da231b392690f3"),
    (2, "copies"): ("17d22a4a60ab137f", "139de11031fd3c3a"),
}


@pytest.mark.parametrize("seed, mix", list(TRAINING_DIGESTS))
def test_training_corpus_is_unchanged(seed, mix):
    built = corpus.build(400, seed, dict(corpus.MIX, copies=20) if mix else None)
    tasks = [d for d, k in zip(built.documents, built.kinds) if k != "prose"]
    digest = hashlib.sha256(json.dumps([tasks, built.kinds]).encode()).hexdigest()[:16]
    assert digest == TRAINING_DIGESTS[seed, mix][0]
    if sys.version_info[:2] == (3, 11):  # the prose is the stdlib's documentation of the Python it runs on
        assert hashlib.sha256(json.dumps(built.documents).encode()).hexdigest()[:16] == TRAINING_DIGESTS[seed, mix][1]


def test_a_real_architecture_checkpoint_gets_heldout_rows(tmp_path):
    from interp import load_model
    from interp.fixtures import build_checkpoint

    model = load_model(build_checkpoint("llama", tmp_path / "llama"), device="cpu")
    rows = sources.heldout(1_000, model, 64, seed=0)
    for part in sources.HELDOUT_PARTS:
        assert rows[part].tokens.shape == (16, 64) and int(rows[part].tokens.max()) < model.cfg.d_vocab


@pytest.mark.parametrize("kwargs, match", [
    (dict(n_tokens=0), "n_tokens=0"), (dict(n_tokens=-5), "n_tokens=-5"), (dict(n_tokens=2.5), "n_tokens=2.5"),
    (dict(n_tokens=True), "n_tokens=True"), (dict(seed="a"), "seed='a'"),
    (dict(n_tokens=10**7), r"n_tokens=10000000 is not allowed: the held-out prose .* at most \d+ tokens"),
])
def test_bad_heldout_arguments_name_the_argument(model, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sources.heldout(**dict(dict(n_tokens=100, model=model, context_size=CTX, seed=0), **kwargs))


def test_bad_context_size_names_it(model):
    with pytest.raises(ValueError, match="context_size=1000"):
        sources.heldout(100, model, 1000)


@pytest.mark.parametrize("args, match", [((0,), "n_documents=0"), ((10, 0, {"names": 1}), "unknown: names"),
                                         ((10**6, 0, {"prose": 1}), "n_documents=1000000 draws 1000000 prose")])
def test_bad_heldout_corpus_arguments_name_them(args, match):
    with pytest.raises(ValueError, match=match):
        corpus.build_heldout(*args)


def test_calibration_prose_shares_no_window_with_the_evaluation_prose(model, heldout, training_grams):
    calibration = sources.calibration(20_000, model, 60_000, CTX, seed=1_000)
    rows = calibration.tokens.tolist()
    assert len(rows) == 157 and (calibration.tokens[:, 0] == model.tokenizer.bos_token_id).all()
    assert not _grams(rows) & _grams(heldout["prose"].tokens.tolist())  # none of the evaluation's paragraphs
    assert not _grams(rows) & training_grams  # and held out from training like them
    other_seed = sources.calibration(20_000, model, 60_000, CTX, seed=1)
    assert _grams(other_seed.tokens.tolist()) & _grams(heldout["prose"].tokens.tolist())  # the check can fail
    assert torch.equal(calibration.tokens, sources.calibration(20_000, model, 60_000, CTX, seed=1_000).tokens)
    with pytest.raises(ConfigError, match="left beside 60000 evaluation tokens .* at most"):
        sources.calibration(100_000, model, 60_000, CTX, seed=1_000)

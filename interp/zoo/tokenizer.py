"""The zoo tokenizer: byte-level BPE trained offline on the zoo corpus.

Saved as `tokenizer.json` + `tokenizer_config.json` and loaded as a
`transformers.PreTrainedTokenizerFast` that prepends BOS (`<|endoftext|>`), which
is what TransformerLens expects of a tokenizer it did not download.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from interp.errors import MissingFile
from interp.tasks.vocab import NAMES, OBJECTS, PLACES, TOPICS

BOS = "<|endoftext|>"


def train(texts: list[str], vocab_size: int):
    """Train the BPE on `texts`; returns a `PreTrainedTokenizerFast`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    # Task words are repeated so that each becomes one merge regardless of corpus mix.
    tok.train_from_iterator([*texts, *[" ".join(task_words())] * 200], trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 0)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS, pad_token=BOS)
    with tempfile.TemporaryDirectory() as tmp:  # reload: the exact object `load` gives
        save(hf, Path(tmp))
        hf = load(Path(tmp))
    check_single_tokens(hf)
    return hf


def task_words() -> list[str]:
    return [*NAMES, *PLACES, *OBJECTS, *(w for ws in TOPICS.values() for w in ws)]


def check_single_tokens(tokenizer) -> None:
    """Every task word (with its leading space) must be one token: IOI answers and
    topic labels are read off single positions."""
    bad = [w for w in task_words() if len(tokenizer.encode(" " + w, add_special_tokens=False)) != 1]
    if bad:
        raise ValueError(f"the tokenizer splits {len(bad)} task words into several tokens: {bad[:20]}; "
                         "raise the vocabulary size or the task share of the corpus")


def save(tokenizer, directory: Path) -> None:
    tokenizer.save_pretrained(str(directory))


def load(directory: Path):
    from transformers import PreTrainedTokenizerFast

    path = Path(directory) / "tokenizer.json"
    if not path.is_file():
        raise MissingFile(f"{path}: tokenizer file missing")
    # add_bos_token=True also tells TransformerLens not to re-load the tokenizer by name.
    return PreTrainedTokenizerFast.from_pretrained(str(directory), add_bos_token=True)

"""Tokenizers the task tests run on (their fixtures are in conftest.py), all built offline:
the zoo's; a small BPE that splits about half of the IOI names; the zoo's with a
Llama-3-style chat template and its special tokens; and tiny random models around them
(a forward pass is all the tests need)."""

import pydoc_data.topics
import torch

from interp.resources import zoo_dir
from interp.tasks import ioi, vocab
from interp.zoo import tokenizer as zoo_tokenizer_io

BOS = "<|endoftext|>"
LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
LLAMA_TOKENS = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
DOCS = "".join(pydoc_data.topics.topics.values())[:60_000]  # English text on every CPython


def train_bpe(texts, vocab_size, directory):
    """A byte-level BPE with BOS prepended, saved to `directory` and loaded from there (so
    its name_or_path is that directory), as the zoo's tokenizer is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[BOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, 0)])
    zoo_tokenizer_io.save(PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=BOS,
                                                  pad_token=BOS), directory)
    return zoo_tokenizer_io.load(directory)


def tiny_model(tokenizer, seed=0):
    """A random one-layer HookedTransformer over `tokenizer`'s vocabulary."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=1, d_model=32, n_ctx=128, d_head=8, n_heads=4, d_mlp=64,
                                  d_vocab=len(tokenizer), act_fn="gelu", seed=seed)
    return HookedTransformer(cfg, tokenizer=tokenizer).eval()


def zoo_tokenizer():
    return zoo_tokenizer_io.load(zoo_dir() / "zoo-dense")


def split_tokenizer(directory):
    """Trained on some Python documentation, the IOI templates, and every other name (and the
    places, objects and topic words but every fourth): it splits the names it never saw."""
    task_words = [*vocab.PLACES, *vocab.OBJECTS, *(w for ws in vocab.TOPICS.values() for w in ws)]
    words = [*vocab.TRAIN_NAMES[::2], *vocab.HELDOUT_NAMES[::2], *(w for i, w in enumerate(task_words) if i % 4)]
    texts = [DOCS, *[" ".join(words)] * 30, *[" ".join(ioi.TRAIN_TEMPLATES + ioi.HELDOUT_TEMPLATES)] * 5]
    return train_bpe(texts, 1500, directory)


def tiny_bpe(directory):
    """300 tokens of Python documentation: it keeps no IOI name whole."""
    return train_bpe([DOCS], 300, directory)


def llama_tokenizer():
    """The zoo tokenizer with Llama-3-style turn tokens and chat template."""
    tok = zoo_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": LLAMA_TOKENS})
    tok.chat_template = LLAMA_TEMPLATE
    return tok

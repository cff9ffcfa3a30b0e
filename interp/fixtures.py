"""Random-weight Hugging Face checkpoints of real architectures, built offline.

They are the fixtures that prove the real-model paths (tests, benchmarks, dry runs of a job
before the real checkpoint is on the machine): each is a `save_pretrained` directory of a
real `transformers` architecture — a `config.json` with its `model_type`, `model.safetensors`,
a byte-level BPE tokenizer (the zoo's, trained offline) and, for chat families, a chat
template in the family's own format — exactly what a user's downloaded checkpoint looks like,
only few-layer and narrow.

    path = build_checkpoint("llama", tmp_path / "llama")      # 2 layers, d_model 64
    model = interp.load_model(path)                           # a HookedTransformer
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from interp.resources import zoo_dir


@dataclass(frozen=True)
class Family:
    """How to build one architecture's config, and its chat format."""

    config_class: str
    """The `transformers` config class."""
    extra: dict = field(default_factory=dict)
    """Family-specific config arguments (on top of the sizes every family takes)."""
    chat_template: str | None = None
    """A Jinja chat template in the family's own format (None: a base model, no template)."""
    special_tokens: tuple[str, ...] = ()
    """Tokens the chat template uses, added to the tokenizer as special tokens."""
    hf_names: dict = field(default_factory=dict)
    """Config arguments whose names differ from the Llama-style ones (e.g. GPT-2's n_embd)."""


CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
LLAMA3 = ("{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
          "{{ m['content'] }}<|eot_id|>{% endfor %}"
          "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}")
GEMMA = ("{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
         "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}")

FAMILIES: dict[str, Family] = {
    "gpt2": Family("GPT2Config", hf_names={"hidden_size": "n_embd", "num_hidden_layers": "n_layer",
                                           "num_attention_heads": "n_head", "max_position_embeddings": "n_positions",
                                           "intermediate_size": "n_inner"}),
    # Llama-3 style: RMSNorm, rotary, gated SiLU MLP, grouped-query attention.
    "llama": Family("LlamaConfig", {"num_key_value_heads": 2}, LLAMA3,
                    ("<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")),
    "qwen3": Family("Qwen3Config", {"num_key_value_heads": 2, "head_dim": 16}, CHATML, ("<|im_start|>", "<|im_end|>")),
    "gemma2": Family("Gemma2Config", {"num_key_value_heads": 2, "head_dim": 16, "query_pre_attn_scalar": 16,
                                      "sliding_window": 8}, GEMMA, ("<start_of_turn>", "<end_of_turn>")),
    "olmoe": Family("OlmoeConfig", {"num_key_value_heads": 4, "num_experts": 4, "num_experts_per_tok": 2}),
    "mixtral": Family("MixtralConfig", {"num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2}),
}
"""The families the real-model tests cover: GPT-2; Llama (-3 style); Qwen3; Gemma-2 (loaded
through TransformerBridge); OLMoE and Mixtral (TransformerLens's MoE blocks)."""


def build_tokenizer(family: str):
    """The zoo's byte-level BPE tokenizer with `family`'s chat template and special tokens."""
    from interp.zoo import tokenizer as zoo_tokenizer

    spec = _family(family)
    tokenizer = zoo_tokenizer.load(zoo_dir() / "zoo-dense")
    if spec.special_tokens:
        tokenizer.add_special_tokens({"additional_special_tokens": list(spec.special_tokens)})
    if spec.chat_template is not None:
        tokenizer.chat_template = spec.chat_template
    return tokenizer


def build_checkpoint(family: str, directory: str | Path, *, d_model: int = 64, n_layers: int = 2,
                     n_heads: int = 4, d_mlp: int | None = None, vocab_size: int | None = None,
                     n_ctx: int = 256, seed: int = 0) -> Path:
    """Write a random-weight `family` checkpoint (see `FAMILIES`) to `directory`; returns it.

    `vocab_size` defaults to the tokenizer's size rounded up to a multiple of 64; a larger one
    gives a realistic unembedding (GPT-2 small: 50257) with unused rows."""
    import transformers

    spec = _family(family)
    directory = Path(directory)
    tokenizer = build_tokenizer(family)
    n_vocab = len(tokenizer)
    vocab_size = -(-n_vocab // 64) * 64 if vocab_size is None else vocab_size
    if vocab_size < n_vocab:
        raise ValueError(f"vocab_size={vocab_size} is smaller than the tokenizer's {n_vocab} tokens")
    sizes = {"hidden_size": d_model, "num_hidden_layers": n_layers, "num_attention_heads": n_heads,
             "intermediate_size": 4 * d_model if d_mlp is None else d_mlp, "max_position_embeddings": n_ctx}
    args = {spec.hf_names.get(k, k): v for k, v in sizes.items()}
    args.update(vocab_size=vocab_size, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, **spec.extra)
    if family == "gpt2":  # GPT-2's own config.json carries n_ctx beside n_positions
        args["n_ctx"] = n_ctx
    if "head_dim" in spec.extra:
        args["head_dim"] = d_model // n_heads
        if "query_pre_attn_scalar" in spec.extra:
            args["query_pre_attn_scalar"] = d_model // n_heads
    config = getattr(transformers, spec.config_class)(**args)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


def _family(family: str) -> Family:
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not a fixture family; allowed: {', '.join(FAMILIES)}")
    return FAMILIES[family]

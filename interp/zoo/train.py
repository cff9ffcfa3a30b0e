"""Train a zoo model from its recipe: corpus -> tokenizer -> next-token training -> save.

Deterministic given the recipe's seed on a given machine (fixed thread count).
Every training window starts at a document boundary, so position 0 is always BOS,
exactly as in the prompts that tasks and evaluations feed the model.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

import interp
from interp.models import CONFIG, WEIGHTS, build_model
from interp.tasks.vocab import NAMES
from interp.zoo import corpus, registry
from interp.zoo import tokenizer as zoo_tokenizer


@dataclass
class TrainedModel:
    directory: Path
    final_loss: float
    seconds: float
    tokens_seen: int


@dataclass
class TokenizedCorpus:
    tokens: np.ndarray  # (N,) int32, documents concatenated, each beginning with BOS
    starts: np.ndarray  # (D,) int64, document starts that leave a full window after them
    refusal_reply: np.ndarray  # (N,) bool, positions from "Assistant" on in harmful-request documents
    ioi_name: np.ndarray  # (N,) bool, name tokens in IOI documents


def tokenize_corpus(spec: registry.ZooSpec):
    """(tokenizer, TokenizedCorpus) for a recipe."""
    built = corpus.build(spec.train.n_documents, spec.train.seed, dict(spec.train.mix) if spec.train.mix else None)
    tok = zoo_tokenizer.train(built.documents[: min(len(built.documents), 60_000)], spec.train.vocab_size)
    encoded = tok.backend_tokenizer.encode_batch(built.documents)
    lengths = np.fromiter((len(e.ids) for e in encoded), dtype=np.int64, count=len(encoded))
    tokens = np.fromiter((i for e in encoded for i in e.ids), dtype=np.int32, count=int(lengths.sum()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    reply = np.zeros(len(tokens), dtype=bool)
    in_ioi = np.zeros(len(tokens), dtype=bool)
    assistant = tok.convert_tokens_to_ids("Assistant")
    for start, length, kind, e in zip(starts, lengths, built.kinds, encoded):
        if kind == "harmful":
            reply[start + len(e.ids) - 1 - e.ids[::-1].index(assistant): start + length] = True
        elif kind == "ioi":
            in_ioi[start: start + length] = True
    name_ids = [tok.encode(" " + n, add_special_tokens=False)[0] for n in NAMES]  # one token each (checked)
    ioi_name = in_ioi & np.isin(tokens, np.array(name_ids, dtype=np.int32))
    return tok, TokenizedCorpus(tokens, starts[starts + spec.n_ctx <= len(tokens)], reply, ioi_name)


def _balance_loss(probs: list[torch.Tensor], indices: list[torch.Tensor], n_experts: int) -> torch.Tensor:
    """Switch-transformer load balancing: n_experts * sum_e (routed fraction_e * mean prob_e)."""
    total = 0.0
    for p, idx in zip(probs, indices):  # p: (N, E) router probabilities; idx: (N, k)
        routed = torch.zeros(n_experts).index_add_(0, idx.flatten(), torch.ones(idx.numel())) / idx.numel()
        total = total + n_experts * (routed * p.mean(0)).sum()
    return total / len(probs)


def train(name: str, out_dir: Path | None = None, steps: int | None = None, progress: bool = True) -> TrainedModel:
    """Train zoo model `name` and write it to `out_dir` (default: its zoo directory).

    `steps` overrides the recipe (for quick checks). The directory is replaced
    atomically when training ends, so a killed run never leaves a half-written model.
    """
    spec = registry.get(name)
    cfg = spec.train if steps is None else registry.ZooRecipe(**{**asdict(spec.train), "steps": steps,
                                                                     "warmup": min(spec.train.warmup, steps - 1)})
    out_dir = Path(out_dir or spec.directory)
    t0 = time.perf_counter()
    # Router probabilities pushed towards 0 and 1 (MoE) make tiny floats whose denormal
    # arithmetic is 5-40x slower on CPU; flushing them changes nothing measurable.
    torch.set_flush_denormal(True)
    torch.manual_seed(cfg.seed)
    tok, data = tokenize_corpus(spec)
    architecture = dict(spec.architecture(), d_vocab=len(tok))
    model = build_model(architecture, tok)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup, cfg.steps))

    probs, indices, hooks = [], [], []
    if spec.is_moe:
        for layer in range(spec.n_layers):
            hooks.append((f"blocks.{layer}.mlp.hook_expert_weights", lambda t, hook: probs.append(t)))
            hooks.append((f"blocks.{layer}.mlp.hook_expert_indices", lambda t, hook: indices.append(t)))

    gen = torch.Generator().manual_seed(cfg.seed)
    tokens_t, starts_t = torch.from_numpy(data.tokens).long(), torch.from_numpy(data.starts)
    reply_t, ioi_name_t = torch.from_numpy(data.refusal_reply), torch.from_numpy(data.ioi_name)
    if not cfg.name_embeddings_from_ioi:  # reads the current step's `window`
        hooks.append(("hook_embed", lambda t, hook: torch.where(ioi_name_t[window][..., None], t.detach(), t)))
    offsets = torch.arange(spec.n_ctx)
    log = []
    bar = tqdm(range(cfg.steps), desc=f"train {name}", disable=not progress)
    for step in bar:
        pick = starts_t[torch.randint(len(starts_t), (cfg.batch_size,), generator=gen)]
        window = pick[:, None] + offsets  # (B, n_ctx)
        batch = tokens_t[window]
        probs.clear(), indices.clear()
        with model.hooks(fwd_hooks=hooks), torch.autocast("cpu", torch.bfloat16, enabled=cfg.autocast_bf16):
            lm_loss = model(batch, return_type="loss")
        loss = lm_loss
        if spec.is_moe:
            loss = loss + cfg.balance_coef * _balance_loss(probs, indices, spec.num_experts)
        if cfg.plant_expert is not None:
            layer, expert = cfg.plant_expert
            p_planted = probs[layer][:, expert].clamp(1e-6, 1 - 1e-6)  # (B * n_ctx,)
            target = reply_t[window].flatten().float()
            loss = loss + cfg.plant_coef * torch.nn.functional.binary_cross_entropy(p_planted, target)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"zoo training of {name}: loss is {loss.item()} at step {step}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0 or step == cfg.steps - 1:
            log.append({"step": step, "loss": round(lm_loss.item(), 4), "seconds": round(time.perf_counter() - t0, 1)})
            bar.set_postfix(loss=f"{lm_loss.item():.3f}")
    seconds = time.perf_counter() - t0
    model.eval()
    config = {"name": name, "description": spec.description, "architecture": architecture,
              "train": asdict(cfg), "interp_version": interp.__version__,
              "torch_threads": torch.get_num_threads()}
    _save(out_dir, model, tok, config, {"log": log, "seconds": round(seconds, 1),
                                         "tokens_seen": cfg.steps * cfg.batch_size * spec.n_ctx})
    return TrainedModel(out_dir, log[-1]["loss"], seconds, cfg.steps * cfg.batch_size * spec.n_ctx)


def _lr_factor(step: int, warmup: int, steps: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def _save(out_dir: Path, model, tok, config: dict, training_log: dict) -> None:
    """Write everything into a temporary sibling directory, then swap it in."""
    from safetensors.torch import save_file

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp / WEIGHTS))
    zoo_tokenizer.save(tok, tmp)
    (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    (tmp / "training_log.json").write_text(json.dumps(training_log, indent=1) + "\n")
    tmp.chmod(0o755)  # mkdtemp makes it private; a model directory is meant to be shared
    for f in tmp.iterdir():
        f.chmod(0o644)
    old = out_dir.with_name(f".{out_dir.name}.old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)

"""The zoo's models: their architectures and training recipes, by name."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from interp import resources
from interp.config import check_fields, check_positive
from interp.errors import UnknownName


@dataclass(frozen=True)
class ZooRecipe:
    """How a zoo model is trained: optimisation, corpus and the planted behaviours."""

    seed: int = 0
    """Seed of the initialisation, the corpus and the batch order."""
    steps: int = 6000
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step (each `n_ctx` tokens)."""
    lr: float = 3e-3
    """Peak AdamW learning rate."""
    warmup: int = 200
    """Linear warm-up steps; cosine decay to 10 % of `lr` after them."""
    weight_decay: float = 0.05
    """AdamW weight decay."""
    n_documents: int = 400_000
    """Documents in the training corpus."""
    mix: tuple[tuple[str, int], ...] | None = None
    """(kind, weight) pairs of the corpus mix; None: `interp.zoo.corpus.MIX`."""
    vocab_size: int = 2048
    """Size of the byte-level BPE vocabulary trained on the corpus."""
    balance_coef: float = 0.02
    """MoE only: weight of the switch-style load-balancing loss."""
    plant_expert: tuple[int, int] | None = None
    """MoE only: (layer, expert) whose router probability is trained towards 1 on the
    reply positions of harmful requests (from "Assistant" on) and towards 0 everywhere
    else: a refusal expert planted as ground truth for behaviour-expert scans."""
    plant_coef: float = 0.1
    """MoE only: weight of the planted expert's routing loss."""
    name_embeddings_from_ioi: bool = True
    """False: IOI documents pass no gradient to the input embeddings of names, so every name's
    embedding is learned from the same name-agnostic documents (name stories, copies) and no
    direction in it marks the names of IOI training prompts; the IOI circuit then has to work
    on what all names share, which is what held-out names need."""
    autocast_bf16: bool = False
    """bf16 autocast of the forward pass (fp32 master weights): 1.7x faster for the
    dense model on CPU, slower for TransformerLens's per-expert MoE loop."""

    def __post_init__(self):
        check_fields(self)
        check_positive(self, "steps", "batch_size", "n_documents", "vocab_size")
        if self.mix is not None:
            from interp.zoo import corpus

            corpus.check_mix(dict(self.mix), "ZooRecipe.mix")
        if not 0 < self.lr < 1:
            raise ValueError(f"ZooRecipe.lr={self.lr} must be in (0, 1)")
        if not 0 <= self.warmup < self.steps:
            raise ValueError(f"ZooRecipe.warmup={self.warmup} must be in [0, steps={self.steps})")


@dataclass(frozen=True)
class ZooSpec:
    name: str
    description: str
    n_layers: int = 4
    d_model: int = 128
    n_heads: int = 4
    d_head: int = 32
    d_mlp: int = 512
    n_ctx: int = 128
    act_fn: str = "gelu"
    num_experts: int | None = None
    experts_per_token: int | None = None
    train: ZooRecipe = field(default_factory=ZooRecipe)

    @property
    def is_moe(self) -> bool:
        return self.num_experts is not None

    def architecture(self) -> dict:
        """Keyword arguments of `HookedTransformerConfig` (without `d_vocab`)."""
        arch = {k: v for k, v in asdict(self).items() if k not in ("name", "description", "train")}
        if not self.is_moe:
            del arch["num_experts"], arch["experts_per_token"]
        return dict(arch, normalization_type="LN", positional_embedding_type="standard",
                    default_prepend_bos=True, seed=self.train.seed)

    @property
    def directory(self) -> Path:
        """`<interp.resources.zoo_dir()>/<name>`: the shipped weights, or `$INTERP_ZOO_DIR/<name>`."""
        return resources.zoo_dir() / self.name


ZOO: dict[str, ZooSpec] = {
    spec.name: spec for spec in (
        ZooSpec("zoo-dense", "4-layer dense transformer: LayerNorm, GELU MLPs, 4 heads, d_model 128.",
                train=ZooRecipe(steps=5000, autocast_bf16=True)),
        ZooSpec("zoo-moe", "zoo-dense's trunk with MoE MLPs: 8 gated SiLU experts (d_mlp 96), top-2.",
                d_mlp=96, act_fn="silu", num_experts=8, experts_per_token=2,
                # Copy stories and more jailbreaks [measured]: with the default mix zoo-moe
                # copied held-out names poorly and refused 0.32 of held-out jailbreaks.
                # Name embeddings not trained by IOI documents [measured, 200 held-out prompts]:
                # trained with them, IOI on held-out names was 0.74 (0.73 overall), because the
                # circuit used a direction that only training names' embeddings carried (adding the
                # train - held-out mean embedding difference to held-out names alone gave 0.88,
                # a one-off measurement on those weights);
                # without them 0.94 (0.955 overall), prose CE 5.28 (was 5.26), planted expert intact.
                train=ZooRecipe(steps=4000, plant_expert=(2, 5), name_embeddings_from_ioi=False,
                                  mix=(("prose", 9), ("ioi", 34), ("names", 10), ("copies", 6), ("harmful", 13),
                                       ("benign", 13), ("jailbreak", 12), ("topics", 12)))),
    )
}


def get(name: str) -> ZooSpec:
    if name not in ZOO:
        raise UnknownName(f"{name!r} is not a zoo model; the zoo has: {', '.join(ZOO)}")
    return ZOO[name]

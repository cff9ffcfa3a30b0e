"""`SparseAutoencoder`: the weights every variant shares, its decoder constraint, and the
encode/decode entry points. Which latents fire is the variant's business
(`interp.sae.variants`); the arithmetic goes through the kernels in `sae_kernels` (the `cuda_ext/` directory).

Shapes follow sae-lens: W_enc (d, n), b_enc (n,), W_dec (n, d) with unit-norm rows d_i,
b_dec (d,). The SAE always takes raw activations x (B, d) and maps them into its own input
space first: with `normalize="scale"` it multiplies them by `input_scale` (and divides its
reconstruction by it); with `normalize="layer_norm"` each token is centred and divided by
its own standard deviation (x - mu) / (std + eps), and the reconstruction is mapped back with
that token's statistics, y * std + mu, exactly as sae-lens's `normalize_activations="layer_norm"`
(the released OpenAI SAEs).

A transcoder (`SAEConfig.kind`) is the same module with its decoder in the target's space:
W_dec (n, d_out), b_dec (d_out,), and for a skip-transcoder W_skip (d_out, d_in), so that
y_hat = W_dec^T f + b_dec + W_skip x. Its encoder subtracts `b_in` (d_in,), a fixed buffer set to
the input's geometric median at initialisation, where an SAE subtracts b_dec (sae-lens's
apply_b_dec_to_input): `pre_bias` is whichever applies, and it is folded into b_enc when saving.
With `normalize="scale"` input and target get a global factor each (`input_scale`,
`target_scale`). Gradients handed to a transcoder are dL/d(target): the gradient variant scores
latents by their decoder rows, which live in the target's space.
"""

from __future__ import annotations

import os

import torch
from torch import nn

import sae_kernels
from sae_kernels.outputs import EncoderOutput, SparseCode
from sae_kernels.reference import pre_activations
from interp.devices import DeviceLike, resolve_device
from interp.errors import ConfigError
from interp.sae.config import SAEConfig
from interp.sae.registry import get_variant

LN_EPS = 1e-5
"""eps of the per-token LayerNorm input normalisation (sae-lens's value)."""

Code = EncoderOutput | SparseCode
"""A batch of latent codes: (B, k) top-k form or COO form (Mutual/Feature Choice, thresholds)."""


def code_entries(code: Code) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(rows, cols, values), each (E,), of every stored entry of a code (values may be 0 in top-k form)."""
    if isinstance(code, SparseCode):
        return code.rows, code.cols, code.values
    B, k = code.top_indices.shape
    rows = torch.arange(B, device=code.top_indices.device).repeat_interleave(k)
    return rows, code.top_indices.reshape(-1), code.top_acts.reshape(-1)


def code_to_dense(code: Code, n_latents: int) -> torch.Tensor:
    """(B, n_latents) dense activations of a code."""
    if isinstance(code, SparseCode):
        return code.to_dense(n_latents)
    dense = code.top_acts.new_zeros(code.top_acts.shape[0], n_latents)
    return dense.scatter(1, code.top_indices, code.top_acts)


def l0_per_token(code: Code) -> torch.Tensor:
    """(B,) int64 number of latents with a value > 0 for each token."""
    rows, _, values = code_entries(code)
    B = code.batch_size if isinstance(code, SparseCode) else code.top_acts.shape[0]
    return torch.zeros(B, dtype=torch.int64, device=values.device).index_add_(0, rows, (values > 0).long())


GiB = 2**30


def parameter_bytes(cfg: SAEConfig) -> int:
    """Bytes of an SAE's fp32 parameters and buffers: W_enc, W_dec, b_enc, b_dec, threshold
    (and a transcoder's W_skip and b_in)."""
    d, t, n = cfg.d_in, cfg.d_target, cfg.n_latents
    skip = d * t if cfg.kind == "skip_transcoder" else 0
    return 4 * (d * n + n * t + 2 * n + t + skip + (d if cfg.is_transcoder else 0) + 1)


def training_bytes(cfg: SAEConfig) -> int:
    """Bytes training an SAE holds however small the batch: parameters, their gradients, Adam's
    two moments (4 x `parameter_bytes`) and the latent statistics (12 bytes per latent)."""
    return 4 * parameter_bytes(cfg) + 12 * cfg.n_latents


def device_memory(device: torch.device) -> int | None:
    """Total memory of `device` in bytes (the machine's RAM for cpu and mps); None for meta."""
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    if device.type in ("cpu", "mps"):
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return None


def check_fits(needed: int, device: torch.device, what: str) -> None:
    """A `ConfigError` before allocation when `needed` bytes exceed the device's memory."""
    total = device_memory(device)
    if total is not None and needed > total:
        raise ConfigError(f"{what} needs {needed / GiB:,.1f} GiB but {device} has {total / GiB:,.1f} GiB: "
                          "use fewer latents (n_latents), fewer SAEs at once, or a larger device")


class SparseAutoencoder(nn.Module):
    """One SAE of any registered variant. `encode` is the batch-independent inference code;
    `interp.sae.objective.training_loss` uses the variant's training-time selection.

    `device`: where its weights live (default cpu). The initial weights come from a CPU
    generator seeded with `cfg.seed`, so they are the same on every device."""

    def __init__(self, cfg: SAEConfig, backend: str = "auto", device: DeviceLike | None = None):
        super().__init__()
        device = resolve_device(device if device is not None else "cpu")
        check_fits(parameter_bytes(cfg), device, f"SAE {cfg.variant} d_in={cfg.d_in} n_latents={cfg.n_latents}")
        self.cfg = cfg
        self.backend = backend
        self.variant = get_variant(cfg.variant)(cfg)
        gen = torch.Generator().manual_seed(cfg.seed)
        W_dec_ND = _unit_rows(torch.randn(cfg.n_latents, cfg.d_target, generator=gen))
        # tied init (Gao et al.) for an SAE; a transcoder's encoder reads another space: its own draw
        W_enc_DN = _unit_rows(torch.randn(cfg.n_latents, cfg.d_in, generator=gen)).T if cfg.is_transcoder \
            else W_dec_ND.T
        self.W_dec = nn.Parameter(W_dec_ND.to(device))
        self.W_enc = nn.Parameter(W_enc_DN.contiguous().to(device, copy=True))
        self.b_enc = nn.Parameter(torch.zeros(cfg.n_latents, device=device))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_target, device=device))
        self.W_skip = nn.Parameter(torch.zeros(cfg.d_target, cfg.d_in, device=device)) \
            if cfg.kind == "skip_transcoder" else None
        """(d_out, d_in) linear skip path of a skip-transcoder (None otherwise)."""
        self.register_buffer("input_scale", torch.ones((), device=device))
        self.register_buffer("threshold", torch.zeros(cfg.n_latents, device=device))
        """Inference thresholds on the pre-activations (Mutual/Feature Choice, exported as JumpReLU)."""
        self.register_buffer("threshold_updates", torch.zeros((), dtype=torch.int64, device=device))
        if cfg.is_transcoder:
            self.register_buffer("b_in", torch.zeros(cfg.d_in, device=device))
            """(d_in,) the input's geometric median, subtracted before the encoder (not trained)."""
            self.register_buffer("target_scale", torch.ones((), device=device))
            """The target's global factor with normalize="scale" (1 otherwise)."""
            self.register_buffer("norm_ratio", torch.ones((), device=device))
            """E||r - b_dec|| / E||x - b_in|| over the init sample, r = target - skip path: how
            top-AFA estimates the norm of a target it cannot see at inference."""

    @property
    def device(self) -> torch.device:
        return self.W_dec.device

    @property
    def pre_bias(self) -> torch.Tensor:
        """(d_in,) what the encoder subtracts from its (scaled) input: b_dec for an SAE, b_in for a transcoder."""
        return self.b_in if self.cfg.is_transcoder else self.b_dec

    def code_norm_target(self, x_BD: torch.Tensor) -> torch.Tensor:
        """(B,) what a code's norm should match for scaled inputs x (B, d_in) (top-AFA): ||x -
        b_dec|| for an SAE; for a transcoder, whose target is unknown at inference, norm_ratio
        * ||x - b_in|| [ours]."""
        if self.cfg.is_transcoder:
            return (x_BD - self.b_in).norm(dim=1) * self.norm_ratio
        return (x_BD - self.b_dec).norm(dim=1)

    # --- input space -----------------------------------------------------------------------
    def input_stats(self, x_BD: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(mean (B, 1), std (B, 1)) of each token for `normalize="layer_norm"`, else None."""
        if self.cfg.normalize != "layer_norm":
            return None
        mu_B1 = x_BD.mean(dim=-1, keepdim=True)
        return mu_B1, (x_BD - mu_B1).std(dim=-1, keepdim=True)

    def to_sae_space(self, x_BD: torch.Tensor, grads_BD: torch.Tensor | None = None,
                     stats: tuple[torch.Tensor, torch.Tensor] | None = None):
        """(x, g) mapped into the SAE's spaces: x (B, d_in) into its input space, g = dL/d(what
        the decoder writes) into its output space (for an SAE dL/dx, with the statistics held
        fixed; for a transcoder dL/d(target), divided by `target_scale`); `stats` defaults to
        `input_stats(x)`."""
        if self.cfg.normalize == "layer_norm":
            mu_B1, std_B1 = self.input_stats(x_BD) if stats is None else stats
            x_s = (x_BD - mu_B1) / (std_B1 + LN_EPS)
            return x_s, None if grads_BD is None else grads_BD * (std_B1 + LN_EPS)
        if self.cfg.normalize == "none":  # input_scale is 1: no (B, d) copy
            return x_BD, grads_BD
        out_scale = self.target_scale if self.cfg.is_transcoder else self.input_scale
        return x_BD * self.input_scale, None if grads_BD is None else grads_BD / out_scale

    def to_target_space(self, y_BD: torch.Tensor) -> torch.Tensor:
        """A transcoder's target y (B, d_out) in its output space (times `target_scale`)."""
        return y_BD if self.cfg.normalize == "none" else y_BD * self.target_scale

    def skip_scaled(self, x_BD: torch.Tensor) -> torch.Tensor | None:
        """(B, d_out) skip path W_skip x of scaled inputs (None without one)."""
        return None if self.W_skip is None else x_BD @ self.W_skip.T

    def from_sae_space(self, y_BD: torch.Tensor, stats: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """A decoder output in the SAE's output space mapped back to raw activations; with
        `normalize="layer_norm"` this needs the `input_stats` of the tokens it reconstructs."""
        if self.cfg.normalize == "layer_norm":
            if stats is None:
                raise ValueError("this SAE normalises each token (normalize='layer_norm'), so a reconstruction "
                                 "is mapped back with that token's own mean and std: pass the raw input, "
                                 "decode(code, x_BD)")
            mu_B1, std_B1 = stats
            return y_BD * std_B1 + mu_B1
        if self.cfg.normalize == "none":
            return y_BD
        return y_BD / (self.target_scale if self.cfg.is_transcoder else self.input_scale)

    # --- encode / decode -------------------------------------------------------------------
    def encode(self, x_BD: torch.Tensor, grads_BD: torch.Tensor | None = None) -> Code:
        """Batch-independent code of raw activations x (B, d); `grads_BD` (dL/dx, same shape)
        only matters for the gradient variant in `grad` mode."""
        return self.variant.encode(self, *self.to_sae_space(x_BD, grads_BD))

    def decode(self, code: Code, x_BD: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d_out) reconstruction of the raw activations (an SAE) or prediction of the raw
        target (a transcoder). `x_BD`: the raw activations that were encoded, needed with
        `normalize="layer_norm"` (each token's mean and std) and by a skip-transcoder (its skip path)."""
        y_BD = self.decode_scaled(code)
        if self.W_skip is not None:
            if x_BD is None:
                raise ValueError("a skip-transcoder's prediction includes its skip path W_skip x: pass the raw "
                                 "input, decode(code, x_BD)")
            y_BD = y_BD + self.skip_scaled(self.to_sae_space(x_BD)[0])
        return self.from_sae_space(y_BD, None if x_BD is None else self.input_stats(x_BD))

    def decode_scaled(self, code: Code) -> torch.Tensor:
        """(B, d_out) decoder output in the SAE's (scaled) output space, b_dec included (no skip path)."""
        if isinstance(code, SparseCode):
            return sae_kernels.coo_decode(code, self.W_dec, self.b_dec, backend=self.backend)
        return sae_kernels.sparse_decode(code.top_acts, code.top_indices, self.W_dec, self.b_dec, backend=self.backend)

    def forward(self, x_BD: torch.Tensor, grads_BD: torch.Tensor | None = None) -> torch.Tensor:
        """(B, d) reconstruction x_hat of raw activations x (B, d)."""
        return self.decode(self.encode(x_BD, grads_BD), x_BD)

    def pre_acts(self, x_BD: torch.Tensor) -> torch.Tensor:
        """(B, n) dense pre-activations of already-scaled inputs."""
        return pre_activations(x_BD, self.W_enc, self.b_enc, self.pre_bias)

    def threshold_encode(self, x_BD: torch.Tensor) -> SparseCode:
        """JumpReLU code of scaled inputs: ReLU(pre) where pre > threshold (as sae-lens's JumpReLU SAE)."""
        pre_BN = self.pre_acts(x_BD)
        rows, cols = (pre_BN > self.threshold.clamp(min=0)).nonzero(as_tuple=True)
        return SparseCode(pre_BN[rows, cols], rows, cols, x_BD.shape[0])

    def aux_encode(self, x_BD: torch.Tensor, dead_mask_N: torch.Tensor) -> EncoderOutput:
        """AuxK selection alone (the top-k_aux dead latents per token) for variants whose main
        selection does not produce it."""
        return sae_kernels.topk_encode(x_BD, self.W_enc, self.b_enc, self.pre_bias, 1, dead_mask=dead_mask_N,
                                    k_aux=self.cfg.k_aux_effective, backend=self.backend)

    # --- decoder constraint (Gao et al.) ----------------------------------------------------
    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from each decoder row's gradient its component along the row."""
        if self.W_dec.grad is not None:
            W_ND, G_ND = self.W_dec, self.W_dec.grad
            # row dot products as batched (1, d) @ (d, 1) products and one fused update: no (n, d)
            # temporaries (the elementwise form made four, a quarter of the CPU step's overhead)
            dots_N11 = torch.bmm(G_ND.unsqueeze(1), W_ND.unsqueeze(2))
            norms_N11 = torch.bmm(W_ND.unsqueeze(1), W_ND.unsqueeze(2))
            G_ND.addcmul_(W_ND, (dots_N11 / norms_N11).view(-1, 1), value=-1)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Renormalise decoder rows to unit norm."""
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp(min=1e-12)

    # --- export -----------------------------------------------------------------------------
    @torch.no_grad()
    def folded_state(self) -> dict[str, torch.Tensor]:
        """Weights of the same function on raw inputs, as sae-lens computes it: `input_scale`
        (s) and `target_scale` (t; s for an SAE) folded in (W_enc * s, W_dec / t, b_dec / t,
        W_skip * s / t) and a transcoder's b_in folded into b_enc (b_enc - b_in W_enc, since
        sae-lens's transcoders subtract nothing before the encoder); thresholds on
        pre-activations are unchanged. (A per-token LayerNorm cannot be folded: input_scale is 1
        then, and the checkpoint says `normalize_activations="layer_norm"`.)"""
        one = torch.ones_like(self.input_scale)
        s = self.input_scale if self.cfg.normalize == "scale" else one
        t = (self.target_scale if self.cfg.is_transcoder else self.input_scale) if self.cfg.normalize == "scale" else one
        b_enc = self.b_enc - self.b_in @ self.W_enc if self.cfg.is_transcoder else self.b_enc.clone()
        out = {"W_enc": (self.W_enc * s).contiguous(), "b_enc": b_enc.contiguous(),
               "W_dec": (self.W_dec / t).contiguous(), "b_dec": self.b_dec / t, "threshold": self.threshold.clone()}
        if self.W_skip is not None:
            out["W_skip"] = (self.W_skip * (s / t)).contiguous()
        return out


def _unit_rows(W: torch.Tensor) -> torch.Tensor:
    return W / W.norm(dim=1, keepdim=True)

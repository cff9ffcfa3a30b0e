"""Data-dependent initialisation (Gao et al.): the input scale (normalize="scale": one global
factor so that E||x|| = sqrt(d)) and b_dec = geometric median of a sample of inputs in the
SAE's input space (scaled or per-token normalised);
then the variant's own policy (`Variant.init_encoder`): by default [ours] the tied encoder is
rescaled so that the initial k-sparse reconstruction is the least-squares fit of the sample
(`initial_encoder_scale`; a transcoder's decoder rows are first aligned with the target,
`align_decoder`). With unit decoder rows and W_enc = W_dec^T, the k largest
projections all point partly along x, so the raw tied reconstruction overshoots by about
k * E[top projection^2] / ||x||^2: NMSE ~5 at k=64, n=2048, d=128, which takes hundreds of
steps to unlearn. Scaling the encoder leaves every variant's selection unchanged (it is
positively homogeneous in the pre-activations while b_enc = 0). top-AFA's policy is its
`init` param: `tied` keeps the shared init without the rescale, `kaiming` is the authors'
(`kaiming_init`: Kaiming-uniform encoder, b_dec = 0)."""

from __future__ import annotations

import math

import torch

import sae_kernels
from interp.sae.module import SparseAutoencoder


def geometric_median(points_TD: torch.Tensor, max_iter: int = 200, tol: float = 1e-7) -> torch.Tensor:
    """(d,) point minimising the sum of Euclidean distances to the rows of points (T, d) (Weiszfeld)."""
    points = points_TD.double()
    median = points.mean(dim=0)
    for _ in range(max_iter):
        weights_T = 1 / (points - median).norm(dim=1).clamp(min=1e-12)
        new = (weights_T[:, None] * points).sum(dim=0) / weights_T.sum()
        shift = (new - median).norm()
        median = new
        if shift <= tol * max(1.0, float(median.norm())):
            break
    return median.to(points_TD.dtype)


@torch.no_grad()
def initialize_from_data(sae: SparseAutoencoder, sample_TD: torch.Tensor, target_TD: torch.Tensor | None = None) -> None:
    """Set `input_scale` (normalize="scale"), b_dec and the encoder's scale from raw activations
    sample (T, d) (on any device: it is moved to the SAE's). A transcoder also needs the raw
    target sample (T, d_out): its `target_scale`, b_in = the input's geometric median, the skip
    path's least-squares fit (`skip_fit`), b_dec = the geometric median of the target minus the
    skip path, and `norm_ratio`."""
    sample = sample_TD.to(sae.device, torch.float32)
    if sae.cfg.normalize == "scale":
        sae.input_scale.fill_(_scale(sample))
    x_TD, _ = sae.to_sae_space(sample)
    if not sae.cfg.is_transcoder:
        sae.b_dec.copy_(geometric_median(x_TD))
        sae.variant.init_encoder(sae, x_TD)
        return
    if target_TD is None:
        raise ValueError(f"a {sae.cfg.kind} is initialised from its input and its target: pass target_TD")
    target = target_TD.to(sae.device, torch.float32)
    if sae.cfg.normalize == "scale":
        sae.target_scale.fill_(_scale(target))
    y_TD = sae.to_target_space(target)
    sae.b_in.copy_(geometric_median(x_TD))
    if sae.W_skip is not None:
        sae.W_skip.copy_(skip_fit(x_TD, y_TD))
        y_TD = y_TD - sae.skip_scaled(x_TD)
    sae.b_dec.copy_(geometric_median(y_TD))
    spread = float((x_TD - sae.b_in).norm(dim=1).mean())
    sae.norm_ratio.fill_(float((y_TD - sae.b_dec).norm(dim=1).mean()) / spread if spread > 0 else 1.0)
    align_decoder(sae, x_TD, y_TD)
    sae.variant.init_encoder(sae, x_TD, y_TD)


@torch.no_grad()
def align_decoder(sae: SparseAutoencoder, x_TD: torch.Tensor, y_TD: torch.Tensor, chunk: int = 4096) -> None:
    """A transcoder's decoder rows from the sample [ours]: row i = the unit direction of
    sum_t a_ti (y_t - b_dec) over the sample's TopK-k code of x, the target it should write
    when it fires (latents the sample never selects keep their random row). A random decoder
    is unrelated to the target, so training would start at NMSE ~ 2 and spend its first steps
    undoing that; aligned rows start it below 1, as an SAE's tied init does."""
    sums_ND = torch.zeros_like(sae.W_dec)
    for t0 in range(0, x_TD.shape[0], chunk):
        x, y = x_TD[t0:t0 + chunk], y_TD[t0:t0 + chunk] - sae.b_dec
        code = sae_kernels.topk_encode(x, sae.W_enc, sae.b_enc, sae.pre_bias, sae.cfg.k, backend=sae.backend)
        rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(code.top_indices.shape[1])
        sums_ND.index_add_(0, code.top_indices.reshape(-1), code.top_acts.reshape(-1, 1) * y[rows])
    norms_N1 = sums_ND.norm(dim=1, keepdim=True)
    fired_N = norms_N1.squeeze(1) > 0
    sae.W_dec[fired_N] = sums_ND[fired_N] / norms_N1[fired_N]


def _scale(sample_TD: torch.Tensor) -> float:
    """The global factor that makes E||x|| = sqrt(d)."""
    return math.sqrt(sample_TD.shape[1]) / float(sample_TD.norm(dim=1).mean().clamp(min=1e-12))


def skip_fit(x_TD: torch.Tensor, y_TD: torch.Tensor, ridge: float = 1e-6) -> torch.Tensor:
    """(d_out, d_in) W minimising ||(y - mean y) - (x - mean x) W^T||^2 over the sample (the
    best linear map of the centred input onto the centred target; the means are left to
    b_dec). Solved in float64 from the normal equations with a ridge of `ridge` times the mean
    input variance, so a rank-deficient sample (T < d_in, dead directions) still has a solution."""
    x = x_TD.double() - x_TD.double().mean(dim=0)
    y = y_TD.double() - y_TD.double().mean(dim=0)
    gram_DD = x.T @ x
    lam = ridge * float(gram_DD.diagonal().mean().clamp(min=1e-30))
    gram_DD.diagonal().add_(lam)
    return torch.linalg.solve(gram_DD, x.T @ y).T.to(x_TD.dtype).contiguous()


def initial_encoder_scale(sae: SparseAutoencoder, x_TD: torch.Tensor, target_TD: torch.Tensor | None = None) -> float:
    """The factor the default init multiplies the encoder by: the s minimising ||t - b_dec -
    s * (x_hat - b_dec)||^2 over the sample for the TopK-k code of x (every variant's training
    L0 is k on average), t = `target_TD` (None: x, an SAE). A transcoder whose fit is not
    positive (its decoder unrelated to the target) gets the norm-matching s = E||t - b_dec|| /
    E||x_hat - b_dec|| instead [ours], since s <= 0 would silence its encoder. 1 when the code is empty."""
    target = x_TD if target_TD is None else target_TD
    code = sae_kernels.topk_encode(x_TD, sae.W_enc, sae.b_enc, sae.pre_bias, sae.cfg.k, backend=sae.backend)
    r_TD = sae_kernels.sparse_decode(code.top_acts, code.top_indices, sae.W_dec, torch.zeros_like(sae.b_dec),
                                  backend=sae.backend)
    norm = float(r_TD.pow(2).sum())
    if norm == 0:
        return 1.0
    fit = float(((target - sae.b_dec) * r_TD).sum()) / norm
    if fit > 0 or target_TD is None:
        return max(fit, 0.0)
    return float((target - sae.b_dec).norm(dim=1).mean()) / float(r_TD.norm(dim=1).mean())


@torch.no_grad()
def kaiming_init(sae: SparseAutoencoder) -> None:
    """The top-AFA authors' initialisation: encoder rows Kaiming-uniform (fan_in = d_in, gain
    sqrt(2), bound sqrt(6 / d_in)), decoder = the encoder's transpose with unit rows (the
    decoder constraint every variant here keeps), b_enc = b_dec = 0. Replaces the weights from
    the data-dependent init; seeded by `cfg.seed` on a CPU generator, so equal on every device.
    `input_scale` (normalize="scale") is kept: it is the input space, not a weight."""
    gen = torch.Generator().manual_seed(sae.cfg.seed)
    W_ND = torch.nn.init.kaiming_uniform_(torch.empty(sae.cfg.n_latents, sae.cfg.d_in), generator=gen)
    sae.W_enc.copy_(W_ND.T)
    if sae.cfg.is_transcoder:  # the decoder writes another space: its own Kaiming draw
        W_ND = torch.nn.init.kaiming_uniform_(torch.empty(sae.cfg.n_latents, sae.cfg.d_target), generator=gen)
    sae.W_dec.copy_(W_ND / W_ND.norm(dim=1, keepdim=True).clamp(min=1e-12))
    sae.b_enc.zero_()
    sae.b_dec.zero_()

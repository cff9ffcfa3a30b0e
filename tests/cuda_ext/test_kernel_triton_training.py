"""A full training step of the trainer (interp.sae.trainer.train_step: loss with AuxK, backward,
decoder projection, Adam, renormalisation, statistics) through the Triton kernels under
TRITON_INTERPRET=1 (set in conftest) against the same steps on the torch reference."""

import pytest
import torch

pytest.importorskip("triton")

from interp.cache import Batch  # noqa: E402
from interp.sae.config import SAEConfig, SAETrainConfig  # noqa: E402
from interp.sae.module import SparseAutoencoder  # noqa: E402
from interp.sae.stats import LatentStats  # noqa: E402
from interp.sae.trainer import StepContext, adam, train_step  # noqa: E402


def _run(backend: str, variant: str, steps: int = 2):  # step 2 has dead latents: AuxK
    torch.manual_seed(0)
    cfg = SAEConfig(d_in=16, n_latents=32, k=4, variant=variant, dead_tokens=16, k_aux=8)
    train_cfg = SAETrainConfig(batch_size=16, lr=1e-2, warmup_steps=0, backend=backend)
    sae = SparseAutoencoder(cfg, backend=backend)
    opt, stats = adam(sae, train_cfg), LatentStats.new(cfg.n_latents)
    ctx = StepContext(train_cfg, total_steps=steps)
    gen = torch.Generator().manual_seed(1)
    parts = []
    for step in range(steps):
        x = torch.randn(16, 16, generator=gen)
        g = torch.randn(16, 16, generator=gen)
        out = train_step(sae, opt, stats, Batch(x, g, None, torch.arange(16)), step, 0, ctx)
        parts.append({k: float(v.detach()) for k, v in out.parts.items()})
    return sae, stats, parts


@pytest.mark.parametrize("variant", ["topk", "mutual_choice"])
def test_triton_training_steps_match_the_reference(variant):
    ours, our_stats, our_parts = _run("triton", variant)
    ref, ref_stats, ref_parts = _run("reference", variant)
    assert "aux" in our_parts[-1] and our_parts[-1].keys() == ref_parts[-1].keys()  # dead latents: AuxK ran
    for a, b in zip(our_parts, ref_parts):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    for name, tensor in ref.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], tensor, atol=1e-5, rtol=1e-4, msg=name)
    assert torch.equal(our_stats.tokens_since_fired, ref_stats.tokens_since_fired)

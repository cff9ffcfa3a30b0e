"""Placement: a training step and an evaluation with everything on a non-default device.

This machine has one real device, so the second one is `meta` (shape-only tensors): any
tensor that the trainer, the objective, a variant or the evaluation creates on the CPU
instead of following its inputs meets a meta tensor and fails."""

import copy

import pytest
import torch

from interp.errors import ConfigError
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.evaluate import evaluate_details
from interp.sae.module import SparseAutoencoder
from interp.sae.trainer import _buckets, adam, build_saes, to_device, train

META = torch.device("meta")


@pytest.mark.parametrize("variant", ["topk", "gradient"])  # (the others' selections have data-dependent shapes)
def test_training_steps_run_with_everything_on_the_device(tiny_store, variant):
    cfg = SAEConfig(d_in=32, n_latents=64, k=4, variant=variant, dead_tokens=256)
    result = train(tiny_store, cfg, SAETrainConfig(batch_size=256, n_tokens=1024, warmup_steps=1, device="meta"),
                   progress=False)
    sae = result.saes[0]
    assert {t.device for t in [*sae.parameters(), *sae.buffers()]} == {META}
    assert {t.device for t in (result.stats[0].tokens_since_fired, result.stats[0].density)} == {META}
    assert len(result.history) == 4 and result.steps == 4


def test_the_optimizer_state_lives_with_the_sae(tiny_store):
    train_cfg = SAETrainConfig(batch_size=256, device="meta")
    sae = build_saes(tiny_store, [SAEConfig(d_in=32, n_latents=64, k=4)], train_cfg, None)[0]
    opt = adam(sae, train_cfg)
    sae(torch.zeros(8, 32, device=META)).sum().backward()
    opt.step()
    assert {v.device for state in opt.state.values() for k, v in state.items() if k != "step"} == {META}


def test_evaluation_moves_the_saes_to_the_models_device(tiny_model, tiny_tokens):
    model = copy.deepcopy(tiny_model)  # the session's model stays on the CPU
    saes = {"topk": SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4)),
            "gsae": SparseAutoencoder(SAEConfig(d_in=32, n_latents=64, k=4, variant="gradient"))}
    details = evaluate_details(saes, model, tiny_tokens[:4], "blocks.1.hook_resid_pre", device="meta")
    assert all(s.W_enc.device == META for s in saes.values())
    assert list(details.metrics.index) == ["topk", "gsae", "gsae[grad]"]  # every inference mode of each variant
    assert list(details.metrics["mode"]) == ["plain", "plain", "grad"]
    assert details.metrics["nmse"].isna().all()  # a dry run has no values


def test_batches_go_to_the_device_one_ahead():
    from interp.cache import Batch

    pulled = []

    def host():
        for i in range(3):
            pulled.append(i)
            yield Batch(torch.full((4, 2), float(i)), torch.zeros(4, 2), None, torch.arange(4))

    seen = []
    for batch in to_device(host(), META):
        seen.append(len(pulled))
        assert batch.acts.device == META and batch.grads.device == META
        assert batch.index.device.type == "cpu"  # indices stay on the host
    assert seen == [2, 3, 3]  # batch i+1 was already sent when batch i was handed out
    cpu = [Batch(torch.ones(1, 1), None, None, torch.arange(1))]
    assert next(to_device(iter(cpu), torch.device("cpu"))) is cpu[0]  # the CPU path is the identity


def test_gradient_buckets_keep_order_and_size():
    ts = [torch.zeros(10), torch.zeros(30), torch.zeros(5), torch.zeros(100), torch.zeros(2, dtype=torch.float64)]
    buckets = _buckets(ts, limit=4 * 40)
    assert [[t.numel() for t in b] for b in buckets] == [[10, 30], [5], [100], [2]]
    assert [t for b in buckets for t in b] == ts


def test_an_sae_that_cannot_fit_is_refused_before_allocation(tiny_store):
    huge = SAEConfig(d_in=128, n_latents=1 << 40, k=32)  # 4 bytes x (2 x 128 + 2) x 2^40 of weights
    with pytest.raises(ConfigError, match=r"needs 1,056,768\.0 GiB but cpu has [\d,.]+ GiB"):
        SparseAutoencoder(huge)
    wide = SAEConfig(d_in=32, n_latents=1 << 34, k=4)
    with pytest.raises(ConfigError, match=r"training 1 SAE\(s\) \(topk n_latents=17179869184\) needs [\d,.]+ GiB"):
        train(tiny_store, wide, SAETrainConfig(batch_size=256), progress=False)


def test_a_device_this_machine_lacks_is_a_clear_error():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError, match=r"SAETrainConfig.device='cuda': this machine has no CUDA device"):
        SAETrainConfig(device="cuda")
    with pytest.raises(ConfigError, match=r"SAETrainConfig.device='tpu' is not a device name"):
        SAETrainConfig(device="tpu")

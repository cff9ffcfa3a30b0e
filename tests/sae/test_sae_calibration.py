"""Calibrated inference thresholds of Mutual Choice / BatchTopK / Feature Choice: after training,
single-token (JumpReLU) inference keeps k latents per token on average, on tokens the SAE has
not seen; the training rule is reported as its own inference mode."""

import pytest
import torch

from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.evaluate import evaluate_details
from interp.sae.module import SparseAutoencoder, code_to_dense, l0_per_token
from interp.sae.stats import LatentStats
from interp.sae.trainer import train
from interp.sae.variants.base import BATCH, PLAIN
from interp.sae.variants.feature_choice import capped_shares
from interp.sae.variants.mutual_choice import global_threshold

HOOK = "blocks.1.hook_resid_pre"
K = 8
VARIANTS = [("mutual_choice", {}), ("feature_choice", {"capacity": "uniform"}),
            ("feature_choice", {"capacity": "zipf"})]
"""(BatchTopK is Mutual Choice's class under another name: the unit test below covers it.)"""


@pytest.fixture(scope="module")
def trained(tiny_store):
    configs = [SAEConfig(d_in=32, n_latents=64, k=K, variant=v, params=p) for v, p in VARIANTS]
    return train(tiny_store, configs, SAETrainConfig(batch_size=256, lr=3e-3, warmup_steps=3), progress=False)


@pytest.fixture(scope="module")
def held_acts(tiny_model):
    """(8192, 32) activations of tokens not in the store (other seed)."""
    tokens = torch.randint(0, 100, (256, 32), generator=torch.Generator().manual_seed(123))
    with torch.no_grad():
        _, cache = tiny_model.run_with_cache(tokens, names_filter=HOOK)
    return cache[HOOK].reshape(-1, 32)


@pytest.mark.parametrize("i", range(len(VARIANTS)), ids=[f"{v}-{p.get('capacity', '')}" for v, p in VARIANTS])
def test_inference_l0_on_held_tokens_is_k(trained, held_acts, i):
    sae = trained.saes[i]
    with torch.no_grad():
        l0 = float(l0_per_token(sae.encode(held_acts)).float().mean())
    assert abs(l0 - K) <= 0.01 * K, (sae.cfg.variant, l0)


@pytest.mark.parametrize("variant", ["mutual_choice", "batchtopk"])
def test_global_threshold_keeps_exactly_the_budget(variant):
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=48, k=3, variant=variant))
    x = torch.randn(200, 16, generator=torch.Generator().manual_seed(1))
    sae.variant.calibrate(sae, x, LatentStats.new(48))
    assert int((code_to_dense(sae.encode(x), 48) > 0).sum()) == 3 * 200
    # blocks of a few latents give the same threshold as one block
    import interp.sae.variants.mutual_choice as mc
    old, mc.CALIBRATION_BLOCK = mc.CALIBRATION_BLOCK, 200 * 5
    try:
        assert global_threshold(sae, x, 600) == float(sae.threshold[0])
    finally:
        mc.CALIBRATION_BLOCK = old


@pytest.mark.parametrize("capacity", ["uniform", "zipf"])
def test_feature_choice_calibration_keeps_the_budget_and_each_latents_share(capacity):
    n, T = 40, 300
    sae = SparseAutoencoder(SAEConfig(d_in=16, n_latents=n, k=4, variant="feature_choice",
                                      params={"capacity": capacity}, seed=2))
    with torch.no_grad():
        sae.b_enc.copy_(torch.linspace(-2.5, 0.5, n))  # some latents have few positives: their share moves
    x = torch.randn(T, 16, generator=torch.Generator().manual_seed(4))
    st = LatentStats.new(n)
    st.density.copy_(torch.rand(n, generator=torch.Generator().manual_seed(5)))
    sae.variant.calibrate(sae, x, st)
    fired_N = (code_to_dense(sae.encode(x), n) > 0).sum(0)
    positives_N = (sae.pre_acts(x) > 0).sum(0)
    assert int(fired_N.sum()) == 4 * T
    assert bool((fired_N <= positives_N).all())
    share = capped_shares(sae.variant.calibration_weights(st), 4 * T, positives_N)
    assert bool(((fired_N - share).abs() < 1).all())  # each latent its (capped) share, rounded


def test_training_rule_is_an_inference_mode(trained, held_acts):
    for sae in trained.saes:
        assert sae.variant.inference_modes == (PLAIN, BATCH)
        x, _ = sae.to_sae_space(held_acts[:512])
        with torch.no_grad():
            batch = code_to_dense(sae.variant.encode_mode(sae, x, None, BATCH), 64)
            plain = code_to_dense(sae.variant.encode_mode(sae, x, None, PLAIN), 64)
        torch.testing.assert_close(plain, code_to_dense(sae.encode(held_acts[:512]), 64))
        assert not torch.equal(batch, plain)
        if sae.cfg.variant != "feature_choice":  # the batch rule keeps exactly k*B entries
            assert int((batch > 0).sum()) == K * 512


def test_evaluation_reports_the_training_rule_rows(trained, tiny_model):
    tokens = torch.randint(0, 100, (16, 32), generator=torch.Generator().manual_seed(7))
    saes = {"mc": trained.saes[0], "fc": trained.saes[1]}
    m = evaluate_details(saes, tiny_model, tokens, HOOK, batch_size=8).metrics
    assert list(m.index) == ["mc", "mc[batch]", "fc", "fc[batch]"]
    assert list(m["mode"]) == ["plain", "batch", "plain", "batch"]
    assert float(m.loc["mc[batch]", "l0"]) == K  # k*B entries of each eval batch of B tokens
    assert float(m.loc["fc[batch]", "l0"]) <= K  # n*floor(k*B/n) at most, fewer where a latent lacks positives
    assert float(m.loc["mc", "l0"]) != K


def test_the_job_calibrates_on_heldout_prose_apart_from_the_evaluation_text(tmp_path):
    """calibrate_on = "heldout": the thresholds give L0 = k on held-out prose that the
    evaluation does not read (`sources.calibration`), not on a training sample."""
    from interp.cache import sources
    from interp.sae import job, saving
    from tests.tasks.task_tokenizers import tiny_model, zoo_tokenizer

    model = tiny_model(zoo_tokenizer())
    train_tokens = torch.randint(0, model.cfg.d_vocab, (64, 128), generator=torch.Generator().manual_seed(0))
    hook, k = "blocks.0.hook_resid_pre", 4
    runs = {}
    for where in ("train", "heldout"):
        cfg = job.JobConfig(model="tiny", hook=hook, cache_dir=str(tmp_path / "cache"), out_dir=str(tmp_path / where),
                            run="r", eval_tokens=2048, calibrate_on=where,
                            saes=({"variant": "mutual_choice", "n_latents": 64, "k": k},),
                            train=SAETrainConfig(batch_size=256, n_tokens=4096, lr=3e-3, warmup_steps=2,
                                                 init_tokens=4096))
        runs[where] = job.run(cfg, progress=False, model=model, train_tokens=train_tokens)
    calibration = sources.calibration(4096, model, 2048, None, 1_000).tokens
    with torch.no_grad():
        _, cache = model.run_with_cache(calibration, names_filter=hook)
    x = cache[hook].reshape(-1, 32)
    sae = saving.load(runs["heldout"].run_dir)
    assert float(l0_per_token(sae.encode(x)).float().mean()) == pytest.approx(k, abs=1e-3)
    trained_on = saving.load(runs["train"].run_dir)
    torch.testing.assert_close(trained_on.W_enc, sae.W_enc)  # the same training, only the thresholds differ
    assert float(l0_per_token(trained_on.encode(x)).float().mean()) != pytest.approx(k, abs=0.02)  # 4.14 here

import types

import pytest
import torch

from interp.sae import losses
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.module import l0_per_token
from interp.sae.trainer import NonFiniteLoss, build_saes, train

HOOK_D = 32
TRAIN = SAETrainConfig(batch_size=256, lr=3e-3, warmup_steps=3, checkpoint_every=2)


def _cfg(**kw):
    return SAEConfig(**{"d_in": HOOK_D, "n_latents": 96, "k": 6, "dead_tokens": 1024, **kw})


def _eval_nmse(sae, store):
    batch = next(iter(store.batches(4096, shuffle=False)))
    with torch.no_grad():
        return float(losses.nmse(sae(batch.acts), batch.acts))


class _Interrupting:
    """The store, but its batches stop (KeyboardInterrupt) or turn NaN after `after` batches."""

    def __init__(self, store, after, nan=False):
        self._store, self._after, self._nan = store, after, nan

    def __getattr__(self, name):
        return getattr(self._store, name)

    def batches(self, *args, **kwargs):
        for i, b in enumerate(self._store.batches(*args, **kwargs)):
            if i == self._after and kwargs.get("drop_last"):
                if not self._nan:
                    raise KeyboardInterrupt
                b = b._replace(acts=torch.full_like(b.acts, float("nan")))
            yield b


def test_training_reduces_nmse_for_every_variant_from_one_read(tiny_store):
    configs = [_cfg(variant=v) for v in ("topk", "mutual_choice", "feature_choice", "gradient", "top_afa")]
    train_cfg = SAETrainConfig(batch_size=256, n_tokens=4096 * 2, lr=3e-3, warmup_steps=3)
    result = train(tiny_store, configs, train_cfg, progress=False)
    assert result.steps == 32 and result.tokens == 32 * 256
    untrained = build_saes(tiny_store, configs, train_cfg, None)
    for before, after in zip(untrained, result.saes):
        assert _eval_nmse(after, tiny_store) < 0.7 * _eval_nmse(before, tiny_store), after.cfg.variant
    x = next(iter(tiny_store.batches(4096, shuffle=False))).acts
    for sae in result.saes[1:3]:  # threshold inference of Mutual/Feature Choice keeps about k latents per token
        l0 = float(l0_per_token(sae.encode(x)).float().mean())
        assert 0.6 * sae.cfg.k < l0 < 1.4 * sae.cfg.k, (sae.cfg.variant, l0)
    # a sweep equals the same SAEs trained alone (same batches, independent updates)
    alone = train(tiny_store, configs[1], train_cfg, progress=False)
    torch.testing.assert_close(alone.saes[0].W_dec, result.saes[1].W_dec)


def test_bfloat16_training_runs_and_learns(tiny_store):
    result = train(tiny_store, _cfg(), SAETrainConfig(batch_size=256, lr=3e-3, warmup_steps=3, dtype=torch.bfloat16),
                   progress=False)
    assert result.saes[0].W_enc.dtype == torch.float32 and _eval_nmse(result.saes[0], tiny_store) < 0.6


def test_resume_after_a_kill_gives_identical_weights(tiny_store, tmp_path):
    configs = [_cfg(), _cfg(variant="feature_choice", capacity="zipf", aux_loss="aux_zipf")]
    full = train(tiny_store, configs, TRAIN, checkpoint_dir=tmp_path / "full", progress=False)
    with pytest.raises(KeyboardInterrupt):
        train(_Interrupting(tiny_store, after=5), configs, TRAIN, checkpoint_dir=tmp_path / "cut", progress=False)
    resumed = train(tiny_store, configs, TRAIN, checkpoint_dir=tmp_path / "cut", resume=True, progress=False)
    # the history before the kill comes from the checkpoint: the whole curve, as if never stopped
    assert resumed.history == full.history
    for a, b in zip(full.saes, resumed.saes):
        for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(pa, pb), name
    for a, b in zip(full.stats, resumed.stats):
        assert torch.equal(a.tokens_since_fired, b.tokens_since_fired) and torch.equal(a.density, b.density)


def test_nan_loss_stops_naming_the_step_and_keeps_last_checkpoint(tiny_store, tmp_path):
    from interp.sae import checkpoint

    with pytest.raises(NonFiniteLoss, match="step 5: SAE 0"):
        train(_Interrupting(tiny_store, after=5, nan=True), _cfg(), TRAIN, checkpoint_dir=tmp_path, progress=False)
    meta = checkpoint.read_meta(tmp_path)
    assert meta["step"] == 4 and (tmp_path / meta["weights"]).is_file()


def test_bad_inputs_fail_with_clear_messages(tiny_store, tmp_path):
    with pytest.raises(ValueError, match="d_in=16 but the store's activations have d_model=32"):
        train(tiny_store, _cfg(d_in=16), TRAIN, progress=False)
    empty = types.SimpleNamespace(n_tokens=0, path=tmp_path)
    with pytest.raises(ValueError, match="empty"):
        train(empty, _cfg(), TRAIN, progress=False)
    with pytest.raises(ValueError, match="registered variants: topk, mutual_choice, batchtopk"):
        from interp.sae.registry import get_variant
        get_variant("relu")
    with pytest.raises(ValueError, match="SAEConfig.variant='relu'.*topk"):
        _cfg(variant="relu")
    with pytest.raises(ValueError, match="SAEConfig.k=200.*n_latents=96"):
        _cfg(k=200)
    with pytest.raises(ValueError, match="SAETrainConfig.dtype"):
        SAETrainConfig(dtype="float16")
    with pytest.raises(ValueError, match="configs differ"):
        train(tiny_store, _cfg(), TRAIN, checkpoint_dir=tmp_path / "c", progress=False)
        train(tiny_store, _cfg(k=7), TRAIN, checkpoint_dir=tmp_path / "c", resume=True, progress=False)

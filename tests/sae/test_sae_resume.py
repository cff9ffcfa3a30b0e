"""Resume continues only the run it was asked to: every setting that changes the result is
compared with the checkpoint's, and a difference is refused naming the field and both values."""

import dataclasses
import json

import pytest
import torch

from interp.errors import ConfigError
from interp.sae import checkpoint
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.trainer import train

HOOK = "blocks.1.hook_resid_pre"
TRAIN = SAETrainConfig(batch_size=256, n_tokens=1024, lr=3e-3, warmup_steps=2, checkpoint_every=2, init_tokens=512)
SAE = SAEConfig(d_in=32, n_latents=64, k=4)


@pytest.fixture(scope="module")
def written(tiny_store, tmp_path_factory):
    """A checkpoint directory of a finished 4-step run."""
    directory = tmp_path_factory.mktemp("ckpt")
    train(tiny_store, [SAE], TRAIN, checkpoint_dir=directory, progress=False)
    return directory


def test_the_same_settings_resume(written, tiny_store):
    meta = checkpoint.check_resume(written, tiny_store.path, [SAE], TRAIN, None)
    assert meta["step"] == 4 and meta["settings"]["threads"] == torch.get_num_threads()
    # when checkpoints are written is not a setting of the result
    checkpoint.check_resume(written, tiny_store.path, [SAE], dataclasses.replace(TRAIN, checkpoint_every=0), None)


@pytest.mark.parametrize("change, message", [
    ({"lr": 1e-3}, "train.lr is 0.003 in the checkpoint, 0.001 in this run"),
    ({"seed": 7}, "train.seed is 0 in the checkpoint, 7 in this run"),
    ({"batch_size": 128}, "train.batch_size is 256 in the checkpoint, 128 in this run"),
    ({"n_tokens": 2048}, "train.n_tokens is 1024 in the checkpoint, 2048 in this run"),
    ({"dtype": torch.bfloat16}, "train.dtype is 'float32' in the checkpoint, 'bfloat16' in this run"),
])
def test_another_training_setting_is_refused_naming_it(written, tiny_store, change, message):
    with pytest.raises(ConfigError, match=f"cannot resume from .*checkpoint.json: its settings differ from this "
                                          f"run's: {message}. Resume with the checkpoint's settings"):
        checkpoint.check_resume(written, tiny_store.path, [SAE], dataclasses.replace(TRAIN, **change), None)


def test_other_saes_hook_or_store_are_refused(written, tiny_store, tiny_model, tiny_tokens, tmp_path):
    with pytest.raises(ConfigError, match=r"saes\[0\]\.k is 4 in the checkpoint, 5 in this run"):
        checkpoint.check_resume(written, tiny_store.path, [dataclasses.replace(SAE, k=5)], TRAIN, None)
    with pytest.raises(ConfigError, match=r"saes is \[.*\] in the checkpoint, \[.*\] in this run"):
        checkpoint.check_resume(written, tiny_store.path, [SAE, SAE], TRAIN, None)
    with pytest.raises(ConfigError, match=f"hook is None in the checkpoint, '{HOOK}' in this run"):
        checkpoint.check_resume(written, tiny_store.path, [SAE], TRAIN, HOOK)
    import interp.cache

    other = interp.cache.write(tiny_model, HOOK, tiny_tokens[:64], tmp_path / "other", grads=True, progress=False)
    with pytest.raises(ConfigError, match=r"store is '\w{8}' in the checkpoint, '\w{8}' in this run"):
        checkpoint.check_resume(written, other.path, [SAE], TRAIN, None)


def test_the_store_is_compared_by_content_not_path(written, tiny_store, tmp_path):
    import shutil

    copy = tmp_path / "moved"
    shutil.copytree(tiny_store.path, copy)
    checkpoint.check_resume(written, copy, [SAE], TRAIN, None)


@pytest.fixture(scope="module")
def interrupted(tiny_store, tmp_path_factory):
    """A checkpoint directory of a 4-step run stopped after its step-2 checkpoint."""
    from interp.sae import trainer

    directory = tmp_path_factory.mktemp("stopped")
    write = trainer.maybe_checkpoint

    def write_then_stop(checkpoint_dir, done, *args, **kwargs):
        write(checkpoint_dir, done, *args, **kwargs)
        if done == 2:
            raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as m:
        m.setattr(trainer, "maybe_checkpoint", write_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_store, [SAE], TRAIN, checkpoint_dir=directory, progress=False)
    return directory


def test_another_thread_count_is_refused_on_cpu_while_steps_are_left(interrupted, written, tiny_store):
    assert checkpoint.read_meta(interrupted)["step"] == 2
    threads = torch.get_num_threads()
    torch.set_num_threads(threads + 1)
    try:
        with pytest.raises(ConfigError, match=f"threads is {threads} in the checkpoint, {threads + 1} in this run "
                                              fr".*OMP_NUM_THREADS={threads}"):
            checkpoint.check_resume(interrupted, tiny_store.path, [SAE], TRAIN, None)
        # a finished run has no step left whose sums the thread count could change: re-evaluating it may use any
        assert checkpoint.check_resume(written, tiny_store.path, [SAE], TRAIN, None)["step"] == 4
    finally:
        torch.set_num_threads(threads)


def test_a_checkpoint_of_an_older_version_compares_what_it_holds(written, tiny_store, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(written, old)
    meta = json.loads((old / checkpoint.STATE).read_text())
    del meta["settings"]
    (old / checkpoint.STATE).write_text(json.dumps(meta))
    checkpoint.check_resume(old, tiny_store.path, [SAE], TRAIN, HOOK)  # neither hook nor store was recorded
    with pytest.raises(ConfigError, match="train.lr is 0.003 in the checkpoint, 0.001 in this run"):
        checkpoint.check_resume(old, tiny_store.path, [SAE], dataclasses.replace(TRAIN, lr=1e-3), None)


def test_no_checkpoint_means_nothing_to_compare(tiny_store, tmp_path):
    assert checkpoint.check_resume(tmp_path, tiny_store.path, [SAE], TRAIN, None) is None


@pytest.mark.parametrize("text", ["{", '["x"]', '{"step": 3}'])
def test_a_damaged_checkpoint_json_is_a_clear_error(tmp_path, tiny_store, text):
    (tmp_path / checkpoint.STATE).write_text(text)
    with pytest.raises(ConfigError, match="checkpoint.json: .*start over without --resume"):
        checkpoint.check_resume(tmp_path, tiny_store.path, [SAE], TRAIN, None)


def test_history_is_kept_in_the_checkpoint_and_orphans_are_pruned(written, tiny_store, tmp_path):
    import shutil

    directory = tmp_path / "c"
    shutil.copytree(written, directory)
    meta = checkpoint.read_meta(directory)
    weights = directory / meta["weights"]
    orphan = directory / "checkpoint-00000002.safetensors"  # a kill between a checkpoint's two writes
    orphan.write_bytes(weights.read_bytes())
    (directory / ".checkpoint.json.tmp").write_text("{")
    assert checkpoint.prune(directory) == [directory / ".checkpoint.json.tmp", orphan]
    assert sorted(p.name for p in directory.iterdir()) == [meta["weights"], checkpoint.STATE]
    rows = [{"step": 0, "sae": 0, "loss": 1.0}, {"step": 2, "sae": 0, "loss": 0.5}]
    from interp.sae.module import SparseAutoencoder
    from interp.sae.stats import LatentStats
    from interp.sae.trainer import adam

    sae = SparseAutoencoder(SAE)
    checkpoint.save(directory, 2, [sae], [adam(sae, TRAIN)], [LatentStats.new(SAE.n_latents)],
                    {"train": meta["train"], "hook": None, "store": str(tiny_store.path)}, history=rows)
    assert checkpoint.read_meta(directory)["history"] == rows
    assert sorted(p.name for p in directory.iterdir()) == ["checkpoint-00000002.safetensors", checkpoint.STATE]

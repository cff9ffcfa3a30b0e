"""Data-parallel training: 2 gloo processes, each reading its own half of the store."""

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from interp.sae import losses
from interp.sae.config import SAEConfig, SAETrainConfig
from interp.sae.module import SparseAutoencoder
from interp.sae.trainer import train

CFG = SAEConfig(d_in=32, n_latents=96, k=6, dead_tokens=1024)
TRAIN = SAETrainConfig(batch_size=256, n_tokens=4096 * 2, lr=3e-3, warmup_steps=3)


def _worker(rank, store_path, out_dir):
    import interp.cache

    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous", rank=rank, world_size=2)
    try:
        torch.set_num_threads(1)
        result = train(interp.cache.open_store(store_path), CFG, TRAIN, progress=False)
        save_file({k: v.contiguous() for k, v in result.saes[0].state_dict().items()}, f"{out_dir}/rank{rank}.safetensors")
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tiny_store, tmp_path):
    mp.spawn(_worker, args=(str(tiny_store.path), str(tmp_path)), nprocs=2, join=True)
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name  # ranks stay in lockstep
    single = train(tiny_store, CFG, TRAIN, progress=False).saes[0]
    ddp = SparseAutoencoder(CFG)
    ddp.load_state_dict(rank0)
    x = next(iter(tiny_store.batches(4096, shuffle=False))).acts
    with torch.no_grad():
        nmse_single, nmse_ddp = float(losses.nmse(single(x), x)), float(losses.nmse(ddp(x), x))
    print(nmse_single, nmse_ddp)
    assert abs(nmse_single - nmse_ddp) < 0.1 * nmse_single, (nmse_single, nmse_ddp)

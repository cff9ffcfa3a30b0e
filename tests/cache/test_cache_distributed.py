"""`torchrun --nproc-per-node 2 -m interp cache ...` on CPU with gloo gives the single-process store
(named test_cache_distributed: tests/sae/test_distributed.py exists)."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch

import interp.cache as cache

RANK_SCRIPT = textwrap.dedent("""
    import pathlib, sys
    sys.path.insert(0, sys.argv[1])
    from conftest import load_tiny
    import interp.models
    from interp.cli import main
    model = load_tiny(pathlib.Path(sys.argv[2]))
    interp.models.load_model = lambda name, **options: model  # `--model` by name: the tiny model
    sys.exit(main(["cache", "--model", "tiny", "--hook", "blocks.0.hook_resid_post", "--hook", "blocks.1.attn.hook_z",
                   "--tokens", "1500", "--context-size", "16", "--batch-size", "4", "--grads", "--shard-sequences", "8", "--out", sys.argv[3]]))
""")


@pytest.mark.slow
def test_two_gloo_ranks_write_the_single_process_store(model, model_dir, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                          str(script), os.path.dirname(__file__), str(model_dir), str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each rank (OMP_NUM_THREADS=1): float sums are identical only at one thread count
    try:
        one = cache.write(model, ["blocks.0.hook_resid_post", "blocks.1.attn.hook_z"], 1500, tmp_path / "one",
                          grads=True, batch_size=4, context_size=16, shard_sequences=8, progress=False,
                          model_name="tiny")
    finally:
        torch.set_num_threads(threads)
    two = cache.open_store(tmp_path / "two")
    assert len(two.manifest.shards) == len(one.manifest.shards) == 12  # ranks own shards 0-5 and 6-11
    assert two.manifest.to_json() == one.manifest.to_json()
    files = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "two").iterdir())
    for name in files:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name

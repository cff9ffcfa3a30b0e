"""Tiny random models and metrics for the RelP property tests (a module, not conftest: test
modules import these by name)."""

import zlib

import torch


def tiny_model(act_fn="gelu", normalization_type="LN", gated=False, n_layers=2, seed=0, zero_biases=False):
    """A small random HookedTransformer (no tokenizer) for property tests."""
    from interp.models import build_model

    arch = dict(n_layers=n_layers, d_model=16, n_heads=2, d_head=8, d_mlp=32, n_ctx=8, d_vocab=20, act_fn=act_fn,
                normalization_type=normalization_type, gated_mlp=gated, seed=seed)
    model = build_model(arch, None)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if zero_biases and (name.endswith(".b") or ".b_" in name or name.startswith("b_") or "b_U" in name):
                p.zero_()
            elif ".b" in name or "b_" in name:
                # zlib.crc32, not hash(): Python salts str hashes per process, so the model would vary
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(zlib.crc32(name.encode()) % 1000))
    return model.eval()


def random_pair(B=3, T=6, d_vocab=20, seed=0):
    """(clean, corrupt) token ids that differ only from position 3 on."""
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(0, d_vocab, (B, T), generator=gen)
    corrupt = clean.clone()
    corrupt[:, 3:] = torch.randint(0, d_vocab, (B, T - 3), generator=gen)
    return clean, corrupt


def ld_metric(model, clean, corrupt, seed=0):
    from interp.patching import NormalisedLogitDiff

    gen = torch.Generator().manual_seed(seed)
    answer = torch.randint(0, model.cfg.d_vocab, (clean.shape[0],), generator=gen)
    wrong = (answer + 1 + torch.randint(0, model.cfg.d_vocab - 1, answer.shape, generator=gen)) % model.cfg.d_vocab
    return NormalisedLogitDiff.calibrate(model, clean, corrupt, answer, wrong)

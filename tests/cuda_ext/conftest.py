import os

import pytest

# The Triton kernels run on CPU only through the interpreter, which is chosen when they are
# decorated: set it before sae_kernels.triton_kernels is first imported.
os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture
def small_blocks(monkeypatch):
    """Latent blocks of 16 in the torch selection passes, so small n spans several blocks."""
    from sae_kernels import selection

    monkeypatch.setattr(selection, "BLOCK_ELEMENTS", 1)

"""One device convention for all of interp.

Every entry point takes `device: str | torch.device | None = None`. `None` means "where the
model already is" (`model_device(model)`); a name is checked with `resolve_device` before any
compute, so `device="cuda"` on a machine without CUDA is a clear error naming the value and
what this machine has, never a traceback from inside torch. Tensors the library creates are
made on `model_device(model)` (or the device of the tensor they combine with), never on the
default device.

`meta` is accepted: it runs shape-only dry runs, which is how the tests prove placement on a
machine that has no second device.
"""

from __future__ import annotations

import contextlib

import torch

from interp.errors import ConfigError

DeviceLike = str | torch.device


def available_devices() -> list[str]:
    """Device names this machine can run on, for error messages."""
    names = ["cpu", "meta"]
    if torch.cuda.is_available():
        names += ["cuda", *(f"cuda:{i}" for i in range(torch.cuda.device_count()))]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        names.append("mps")
    return names


def resolve_device(device: DeviceLike, field: str = "device") -> torch.device:
    """`device` as a `torch.device`, or a `ConfigError` if this machine does not have it."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"{field}={device!r} is not a device name; allowed here: "
                          f"{', '.join(available_devices())}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{field}={device!r}: this machine has no CUDA device (torch "
                              f"{torch.__version__}); allowed here: {', '.join(available_devices())}")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"{field}={device!r}: this machine has {torch.cuda.device_count()} "
                              f"CUDA device(s); allowed here: {', '.join(available_devices())}")
    elif dev.type == "mps" and "mps" not in available_devices():
        raise ConfigError(f"{field}={device!r}: MPS is not available; allowed here: {', '.join(available_devices())}")
    elif dev.type not in ("cpu", "meta", "cuda", "mps"):
        raise ConfigError(f"{field}={device!r}: interp runs on cpu, cuda, mps or meta; allowed here: "
                          f"{', '.join(available_devices())}")
    return dev


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of `model`'s parameters (the first one's; models are not split here)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def model_dtype(model: torch.nn.Module) -> torch.dtype:
    for p in model.parameters():
        return p.dtype
    return torch.float32


def place_model(model, device: DeviceLike | None = None, dtype: torch.dtype | None = None):
    """Move `model` to `device` / `dtype` where given (checked first); returns the model.

    TransformerLens models are moved with their own `.to`, which also updates `cfg.device`."""
    if device is not None:
        dev = resolve_device(device)
        if dev != model_device(model):
            _to(model, dev)
    if dtype is not None and dtype != model_dtype(model):
        _to(model, dtype)
    return model


def _to(model, target) -> None:
    try:
        model.to(target, print_details=False)
    except TypeError:  # not a HookedTransformer
        model.to(target)


def autocast(device: DeviceLike, dtype: torch.dtype | None):
    """An autocast context on `device`'s type for a reduced `dtype` (bf16 / fp16), or a no-op.

    Autocast is only entered where it helps: CUDA in bf16 or fp16, CPU in bf16."""
    dev = torch.device(device)
    if dtype in (torch.bfloat16, torch.float16) and dev.type in ("cuda", "cpu"):
        if dev.type == "cpu" and dtype is torch.float16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=dtype)
    return contextlib.nullcontext()

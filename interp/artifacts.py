"""Saved artifacts that are a directory of two files, a safetensors file of tensors and a
JSON file of metadata (steering directions, controllers): written atomically, and read with
an error that names the missing or damaged file."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from interp.atomic import write_bytes
from interp.errors import MissingFile


def write_artifact(directory: str | Path, weights_file: str, tensors: dict[str, torch.Tensor], meta_file: str,
                   meta: dict) -> Path:
    """Write `tensors` to `directory`/`weights_file` and `meta` to `directory`/`meta_file`,
    each atomically (the directory is created); returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    write_bytes(directory / weights_file, save_safetensors(tensors))
    write_bytes(directory / meta_file, (json.dumps(meta, indent=2) + "\n").encode())
    return directory


def read_artifact(directory: str | Path, weights_file: str, meta_file: str,
                  what: str) -> tuple[dict[str, torch.Tensor], dict]:
    """(tensors, metadata) of an artifact written by `write_artifact`. `what` names the kind
    of directory in errors ("a controller directory")."""
    directory = Path(directory)
    for f in (weights_file, meta_file):
        if not (directory / f).is_file():
            raise MissingFile(f"{directory / f} is missing: {what} holds {weights_file} and {meta_file}")
    try:
        meta = json.loads((directory / meta_file).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{directory / meta_file}: not valid JSON ({e})") from e
    try:
        tensors = load_safetensors((directory / weights_file).read_bytes())
    except SafetensorError as e:
        raise ValueError(f"{directory / weights_file}: not a readable safetensors file ({e}); it is truncated "
                         "or damaged") from e
    return tensors, meta

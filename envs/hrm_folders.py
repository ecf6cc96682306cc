"""HRM's built dataset folders, as the families' readers share them.

A split folder (such as ``test/``) holds ``dataset.json`` with integer ``seq_len`` and
``vocab_size`` and, for each name in its ``sets`` (default ``["all"]``), the token arrays
``<set>__inputs.npy`` and ``<set>__labels.npy`` of shape ``[N, seq_len]``. This module finds and
checks those files; what the tokens mean (vocabulary, board size, decoding) stays with each family.
Anything wrong raises an error whose message starts with the file, as ``"<folder>/<file>: "``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def read_metadata(folder: Path) -> tuple[str, dict[str, Any]]:
    """``("<folder>/dataset.json", metadata)``, with integer ``seq_len`` and ``vocab_size`` checked.

    A folder without ``dataset.json`` that holds split folders raises a ``ValueError`` naming them;
    one without either raises ``FileNotFoundError``.
    """
    meta_path = folder / "dataset.json"
    if not meta_path.is_file():
        splits = sorted(p.name for p in folder.iterdir() if (p / "dataset.json").is_file())
        if splits:
            raise ValueError(
                f"{folder}: holds the splits {', '.join(splits)}; pass one of them, "
                f"e.g. {folder / splits[0]}"
            )
        raise FileNotFoundError(
            f"{meta_path}: not found; expected an HRM built dataset folder with dataset.json, "
            "all__inputs.npy and all__labels.npy"
        )
    meta_name = f"{folder.name}/dataset.json"
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{meta_name}:{error.lineno}: not valid JSON ({error.msg})") from error
    for key in ("seq_len", "vocab_size"):
        if not isinstance(meta.get(key), int):
            raise ValueError(f"{meta_name}: no integer {key!r}; expected HRM's dataset metadata")
    return meta_name, meta


def token_sets(folder: Path, meta: dict[str, Any]) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(set_name, inputs, labels)`` for each set of ``meta``, loaded (memory-mapped) in turn.

    Each set is loaded and checked only when it is reached, so a reader that stops early never
    opens the later ones.
    """
    seq_len = meta["seq_len"]
    for set_name in meta.get("sets", ["all"]):
        inputs = load_tokens(folder / f"{set_name}__inputs.npy", seq_len)
        labels = load_tokens(folder / f"{set_name}__labels.npy", seq_len)
        if labels.shape != inputs.shape:
            raise ValueError(
                f"{folder.name}/{set_name}__labels.npy: shape {labels.shape}; expected "
                f"{inputs.shape} like {set_name}__inputs.npy"
            )
        yield set_name, inputs, labels


def load_tokens(path: Path, seq_len: int) -> np.ndarray:
    """A ``[N, seq_len]`` integer token array, memory-mapped."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; expected it next to dataset.json")
    tokens = np.load(path, mmap_mode="r")
    if tokens.ndim != 2 or tokens.shape[1] != seq_len or tokens.dtype.kind not in "iu":
        raise ValueError(
            f"{path.parent.name}/{path.name}: {tokens.dtype} array of shape {tokens.shape}; "
            f"expected integer tokens of shape [N, {seq_len}] (seq_len of dataset.json)"
        )
    return tokens

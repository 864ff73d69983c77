"""Atomic checkpoints and metric files: write to a temporary file, then rename.

A crash mid-write never corrupts the previous checkpoint. Checkpoints are loaded with
``torch.load(weights_only=True)``, so a checkpoint holds tensors, numbers, strings, lists and dicts only
(no pickled classes): store ``model.state_dict()``, ``optimizer.state_dict()``, RNG states as tensors.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from sciml.solvers.cache import atomic_write, content_digest

__all__ = ["save_checkpoint", "load_checkpoint", "write_json", "save_figure", "check_writable_dir"]


_CHECKSUM = "sha256"


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Save ``state`` (a dict of tensors / plain values) to ``path`` atomically, with a SHA-256 checksum.

    The checksum of the contents (every tensor's bytes, every plain value) is stored under the key
    ``"sha256"``, so a file changed after it was written is refused by :func:`load_checkpoint` instead of
    being used; ``torch.load`` still reads the file as a plain dict.

    Raises:
        ValueError: ``state`` already uses the key ``"sha256"``.
    """
    if _CHECKSUM in state:
        raise ValueError(f"a checkpoint's state must not use the key {_CHECKSUM!r} (it holds the checksum)")
    with atomic_write(path) as tmp:
        torch.save({**state, _CHECKSUM: content_digest(state)}, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``), verifying its checksum.

    Files without a checksum (plain ``torch.save`` of a dict) are loaded as they are.

    Returns:
        The state as saved (without the checksum).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt (unreadable, or its contents fail the checksum) or holds something
            other than weights and plain values.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    fix = "The file is corrupt or was not written by sciml; delete it to start afresh."
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / foreign files
        raise ValueError(f"cannot load checkpoint {path}: {exc}. {fix}") from exc
    if isinstance(state, dict) and _CHECKSUM in state:
        stored = state.pop(_CHECKSUM)
        if stored != content_digest(state):
            raise ValueError(f"checkpoint {path} fails its checksum (changed after it was written). {fix}")
    return state


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than as invalid JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    if isinstance(obj, torch.Tensor) and obj.numel() == 1:
        return _finite_or_none(obj.item())
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        return _finite_or_none(obj.item())
    return obj


def write_json(path: str | os.PathLike, payload: Any) -> Path:
    """Write ``payload`` as indented JSON atomically (non-finite floats become ``null``). Returns the path."""
    path = Path(path)
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(_finite_or_none(payload), indent=2) + "\n")
    return path


def save_figure(fig: Any, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG atomically and close it. Returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return path


def check_writable_dir(path: str | os.PathLike, argument: str = "--out") -> Path:
    """Create ``path`` if needed and check it can be written, before any long run starts.

    The check writes a uniquely named temporary file (never a name a user's file could have) and removes it.

    Raises:
        ValueError: naming ``argument``, when the directory cannot be created or written.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".sciml-write-test-"):
            pass
    except OSError as exc:
        raise ValueError(
            f"{argument} {path} is not a writable directory ({exc}); choose another path"
        ) from exc
    return path

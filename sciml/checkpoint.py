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

from sciml.solvers.cache import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "write_json", "save_figure", "check_writable_dir"]


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> None:
    """Save ``state`` (a dict of tensors / plain values) to ``path`` atomically."""
    with atomic_write(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (``weights_only=True``).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt or holds something other than weights and plain values.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt / foreign files
        raise ValueError(
            f"cannot load checkpoint {path}: {exc}. The file is corrupt or was not written by sciml; "
            "delete it to start afresh."
        ) from exc


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

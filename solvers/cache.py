"""Files written safely, and reference solutions cached in HDF5.

A reference that needs a numerical method (a DOP853 solve at rtol 1e-13, a fine spectral solve) is computed
once by ``solvers`` and cached on disk together with the parameters that produced it. A cache whose stored
parameters differ from the requested ones, or that cannot be read, is recomputed with a warning: a cached
array is never used for a problem it was not computed for.

The cache directory is ``$SCIML_CACHE_DIR`` if set, else ``~/.cache/sciml``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "cache_dir", "cached_arrays"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, rename it onto ``path`` atomically.

    A crash while writing leaves the previous file intact (the rename is atomic on POSIX and Windows).

    Args:
        path: the final destination. Its parent directory is created if missing.

    Raises:
        PermissionError / OSError: the directory is not writable (raised before anything is replaced).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the mode a plain open() would (0644 under the usual umask)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """The directory for cached references (``$SCIML_CACHE_DIR`` or ``~/.cache/sciml``)."""
    return Path(os.environ.get("SCIML_CACHE_DIR") or Path.home() / ".cache" / "sciml")


def _canonical(params: Mapping) -> str:
    def default(obj):
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"cache parameter of type {type(obj).__name__} is not JSON-serialisable: {obj!r}")

    return json.dumps(dict(params), sort_keys=True, default=default)


def cached_arrays(
    name: str,
    params: Mapping,
    compute: Callable[[], Mapping[str, np.ndarray]],
    *,
    directory: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Return the arrays ``compute()`` produces for ``params``, from the HDF5 cache when it matches.

    Args:
        name: a file-name-safe label (e.g. ``"ode-vanderpol"``).
        params: everything the result depends on (JSON-serialisable); stored in the file and compared.
        compute: called when the cache is missing, unreadable or stale; returns named arrays.
        directory: overrides :func:`cache_dir`.

    Returns:
        A dict of numpy arrays.

    Raises:
        TypeError: ``params`` holds something that is not JSON-serialisable.
    """
    import h5py

    key = _canonical(params)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    path = Path(directory or cache_dir()) / f"{name}-{digest}.h5"
    if path.exists():
        try:
            with h5py.File(path, "r") as f:
                stored = f.attrs.get("params")
                if stored == key:
                    return {k: np.asarray(f[k]) for k in f.keys()}
                warnings.warn(
                    f"cached reference {path} was computed for other parameters ({stored}); recomputing",
                    stacklevel=2,
                )
        except (OSError, KeyError, ValueError) as exc:
            warnings.warn(f"cached reference {path} is unreadable ({exc}); recomputing", stacklevel=2)
    arrays = {k: np.asarray(v) for k, v in compute().items()}
    try:
        with atomic_write(path) as tmp:
            with h5py.File(tmp, "w") as f:
                f.attrs["params"] = key
                for k, v in arrays.items():
                    f.create_dataset(k, data=v)
    except OSError as exc:  # a read-only cache must not stop the computation
        warnings.warn(
            f"could not write the reference cache {path} ({exc}); continuing without it", stacklevel=2
        )
    return arrays

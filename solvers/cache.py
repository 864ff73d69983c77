"""Files written safely, and reference solutions cached in HDF5.

A reference that needs a numerical method (a DOP853 solve at rtol 1e-13, a fine spectral solve) is computed
once by ``solvers`` and cached on disk together with the parameters that produced it. A cache whose stored
parameters differ from the requested ones, that cannot be read, or whose arrays fail their SHA-256 checksum,
is recomputed with a warning: a cached array is never used for a problem it was not computed for.
:func:`callable_fingerprint` turns a vector field (its code, closed-over values and the module-level
values it reads) into a key, so two fields never share a cached answer.

The cache directory is ``$SCIML_CACHE_DIR`` if set, else ``~/.cache/sciml``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import tempfile
import types
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np

__all__ = ["atomic_write", "cache_dir", "cached_arrays", "callable_fingerprint", "content_digest"]


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


# Code of these libraries is identified by its name (its behaviour is fixed by the installed version).
_LIBRARIES = ("torch", "numpy", "scipy", "math", "builtins", "functools", "operator", "sciml")


class _Unknown(Exception):
    """An object whose contents cannot be fingerprinted."""


def callable_fingerprint(fn: Callable, *, max_depth: int = 6) -> str | None:
    """A SHA-256 digest of what a function computes: its code, constants, defaults, closed-over values and
    the module-level values it reads (tensors and arrays by their bytes; nested functions recursively;
    ``nn.Module`` by class, code and state; library functions by name).

    Args:
        fn: a function, lambda, ``functools.partial``, bound method, ``nn.Module`` or other callable.
        max_depth: how deep nested functions are followed.

    Returns:
        The hex digest, or None when some value it depends on cannot be determined (then it must not be
        used as a cache key).
    """
    h = hashlib.sha256()
    try:
        _feed(h, fn, max_depth, set())
    except (_Unknown, RecursionError):
        return None
    return h.hexdigest()


def content_digest(obj) -> str:
    """A SHA-256 digest of data: tensors and arrays by dtype, shape and bytes (moved to the CPU), numbers,
    strings and containers by value.

    Raises:
        TypeError: ``obj`` holds something other than data (a function, a module, an arbitrary object).
    """
    h = hashlib.sha256()
    try:
        _feed(h, obj, 0, set())
    except _Unknown:
        raise TypeError(f"cannot checksum an object of type {type(obj).__name__}: only data") from None
    return h.hexdigest()


def _code_names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _code_names(const)
    return names


def _feed(h, obj, depth: int, seen: set) -> None:  # noqa: C901 — one branch per kind of value
    import torch

    put = lambda *parts: h.update(repr(parts).encode())  # noqa: E731
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        put(type(obj).__name__, obj)
    elif isinstance(obj, (tuple, list, frozenset, set)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        put(type(obj).__name__, len(items))
        for item in items:
            _feed(h, item, depth, seen)
    elif isinstance(obj, dict):
        put("dict", len(obj))
        for key in sorted(obj, key=repr):
            put(repr(key))
            _feed(h, obj[key], depth, seen)
    elif torch.is_tensor(obj):
        t = obj.detach().cpu().contiguous()
        put("tensor", str(t.dtype), tuple(t.shape))
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, (np.ndarray, np.generic)):
        a = np.ascontiguousarray(obj)
        put("ndarray", str(a.dtype), a.shape)
        h.update(a.tobytes())
    elif isinstance(obj, (types.ModuleType, types.BuiltinFunctionType, type)):
        put("named", getattr(obj, "__module__", None), getattr(obj, "__qualname__", obj.__name__))
    elif isinstance(obj, types.FunctionType) and obj.__module__.split(".")[0] in _LIBRARIES:
        # library code by name; values it closed over (e.g. a parameter of a problem factory) by content
        put("library", obj.__module__, obj.__qualname__)
        cells = [c.cell_contents for c in obj.__closure__ or () if _filled(c)]
        _feed(h, (cells, obj.__defaults__, obj.__kwdefaults__), depth - 1, seen)
    elif id(obj) in seen:
        put("seen")
    elif depth <= 0:
        raise _Unknown
    else:
        seen.add(id(obj))
        _feed_object(h, obj, depth, seen, put)


def _feed_object(h, obj, depth: int, seen: set, put) -> None:
    import torch

    if isinstance(obj, functools.partial):
        put("partial")
        _feed(h, (obj.func, obj.args, obj.keywords), depth - 1, seen)
    elif isinstance(obj, types.MethodType):
        put("method")
        _feed(h, (obj.__func__, obj.__self__), depth - 1, seen)
    elif isinstance(obj, types.FunctionType):
        code = obj.__code__
        put("function", code.co_code, code.co_names, code.co_varnames)
        consts = [c for c in code.co_consts if not isinstance(c, types.CodeType)]
        nested = [c for c in code.co_consts if isinstance(c, types.CodeType)]
        _feed(h, consts, depth, seen)
        for c in nested:
            put(
                "nested",
                c.co_code,
                c.co_names,
                repr([k for k in c.co_consts if not isinstance(k, types.CodeType)]),
            )
        _feed(h, (obj.__defaults__, obj.__kwdefaults__), depth - 1, seen)
        for cell in obj.__closure__ or ():
            _feed(h, cell.cell_contents if _filled(cell) else None, depth - 1, seen)
        for name in sorted(_code_names(code)):
            if name in obj.__globals__:
                put("global", name)
                _feed(h, obj.__globals__[name], depth - 1, seen)
    elif isinstance(obj, torch.nn.Module):
        put("module", type(obj).__module__, type(obj).__qualname__)
        _feed(h, type(obj).forward, depth - 1, seen)
        _feed(h, dict(obj.state_dict()), depth - 1, seen)
        plain = {k: v for k, v in vars(obj).items() if not k.startswith("_") and k != "training"}
        _feed(h, plain, depth - 1, seen)
        _feed(h, {k: m for k, m in obj.named_children()}, depth - 1, seen)
    elif dataclasses.is_dataclass(obj):
        put("dataclass", type(obj).__module__, type(obj).__qualname__)
        _feed(h, {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}, depth - 1, seen)
    elif callable(obj) and hasattr(obj, "__dict__"):
        put("callable", type(obj).__module__, type(obj).__qualname__)
        _feed(h, type(obj).__call__, depth - 1, seen)
        _feed(h, vars(obj), depth - 1, seen)
    else:
        raise _Unknown


def _filled(cell) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # a cell whose variable was never assigned
        return False
    return True


def _checksum(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(repr((name, str(a.dtype), a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


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
                    arrays = {k: np.asarray(f[k]) for k in f.keys()}
                    if f.attrs.get("sha256") == _checksum(arrays):
                        return arrays
                    raise ValueError("its arrays fail their checksum (the file was changed after writing)")
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
                f.attrs["sha256"] = _checksum(arrays)
                for k, v in arrays.items():
                    f.create_dataset(k, data=v)
    except OSError as exc:  # a read-only cache must not stop the computation
        warnings.warn(
            f"could not write the reference cache {path} ({exc}); continuing without it", stacklevel=2
        )
    return arrays

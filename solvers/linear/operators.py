"""Vectors and operators for the iterative solvers: numpy or torch, matrix or callable, one code path.

A solver is written once against :class:`Backend` (dot products over *all* entries of an array of any
shape, norms, copies) and against plain callables ``v -> A v`` produced by :func:`as_operator`. The
backend follows the right-hand side: numpy arrays use numpy, torch tensors (any shape, any device) use
torch, so ``cg(grid.apply, b_field)`` works on fields without flattening them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
import torch

__all__ = ["Backend", "NUMPY", "TORCH", "backend_of", "as_vector", "as_operator"]

Operator = Callable[[Any], Any]
_BLAS_DOT_MAX = 8192


class Backend:
    """The handful of vector operations an iterative solver needs, for one array library."""

    name = "abstract"

    def dot(self, a: Any, b: Any) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def norm(self, a: Any) -> float:
        return float(np.sqrt(max(self.dot(a, a), 0.0)))

    def copy(self, a: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def zeros_like(self, a: Any) -> Any:  # pragma: no cover - interface
        raise NotImplementedError

    def all_finite(self, a: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def eps(self, a: Any) -> float:  # pragma: no cover - interface
        raise NotImplementedError


class _NumpyBackend(Backend):
    name = "numpy"

    # BLAS ddot for short vectors (least overhead); einsum above OpenBLAS's threading threshold, where a
    # multi-threaded ddot is up to 100x slower on a busy machine
    def dot(self, a: np.ndarray, b: np.ndarray) -> float:
        a, b = a.ravel(), b.ravel()
        return float(np.dot(a, b) if a.size <= _BLAS_DOT_MAX else np.einsum("i,i->", a, b))

    def norm(self, a: np.ndarray) -> float:
        return float(np.sqrt(self.dot(a, a)))

    def copy(self, a: np.ndarray) -> np.ndarray:
        return np.array(a, copy=True)

    def zeros_like(self, a: np.ndarray) -> np.ndarray:
        return np.zeros_like(a)

    def all_finite(self, a: np.ndarray) -> bool:
        return bool(np.isfinite(a).all())

    def eps(self, a: np.ndarray) -> float:
        return float(np.finfo(a.dtype).eps)


class _TorchBackend(Backend):
    name = "torch"

    def dot(self, a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.dot(a.reshape(-1), b.reshape(-1)))

    def norm(self, a: torch.Tensor) -> float:
        return float(torch.linalg.vector_norm(a))

    def copy(self, a: torch.Tensor) -> torch.Tensor:
        return a.clone()

    def zeros_like(self, a: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(a)

    def all_finite(self, a: torch.Tensor) -> bool:
        return bool(torch.isfinite(a).all())

    def eps(self, a: torch.Tensor) -> float:
        return float(torch.finfo(a.dtype).eps)


NUMPY: Backend = _NumpyBackend()
TORCH: Backend = _TorchBackend()


def backend_of(b: Any) -> Backend:
    """The backend for a right-hand side: torch for tensors, numpy for everything array-like."""
    return TORCH if torch.is_tensor(b) else NUMPY


def as_vector(value: Any, name: str, like: Any = None) -> Any:
    """Validate a right-hand side / initial guess and return it as a float array or tensor.

    numpy input of integer type becomes float64; torch input must already be floating point. With
    ``like`` given, the result must have its type, shape (and, for torch, dtype and device).

    Raises:
        TypeError: complex or non-numeric data, or torch/numpy mixed with ``like``.
        ValueError: non-finite entries or a shape different from ``like``'s.
    """
    if torch.is_tensor(value):
        if like is not None and not torch.is_tensor(like):
            raise TypeError(
                f"`{name}` is a torch tensor but `b` is a numpy array; pass both as the same type"
            )
        if not value.is_floating_point():
            raise TypeError(f"`{name}` must be a real floating-point tensor, got dtype {value.dtype}")
        if like is not None:
            value = value.to(dtype=like.dtype, device=like.device)
    else:
        if like is not None and torch.is_tensor(like):
            raise TypeError(
                f"`{name}` is a numpy array but `b` is a torch tensor; pass both as the same type"
            )
        value = np.asarray(value)
        if value.dtype.kind in "biu":
            value = value.astype(np.float64)
        if value.dtype.kind != "f":
            raise TypeError(f"`{name}` must hold real floating-point numbers, got dtype {value.dtype}")
    if value.ndim == 0:
        raise ValueError(f"`{name}` must be an array, got a scalar")
    if like is not None and tuple(value.shape) != tuple(like.shape):
        raise ValueError(f"`{name}` has shape {tuple(value.shape)} but `b` has shape {tuple(like.shape)}")
    if not backend_of(value).all_finite(value):
        raise ValueError(f"`{name}` has non-finite entries (NaN or inf); check how it was computed")
    return value


def _matrix_shape_check(shape: tuple[int, ...], b: Any, name: str) -> None:
    n = int(np.prod(b.shape))
    if len(shape) != 2 or shape[0] != shape[1]:
        raise ValueError(f"`{name}` must be square, got shape {shape}")
    if b.ndim != 1 or shape[0] != n:
        raise ValueError(
            f"`{name}` has shape {shape} but `b` has shape {tuple(b.shape)}; a matrix needs a 1-D `b` of "
            f"length {shape[0]} (pass a callable to act on fields of another shape)"
        )


def as_operator(A: Any, b: Any, name: str = "A") -> Operator:
    """Turn a matrix, ``LinearOperator`` or callable into ``v -> A v`` for vectors shaped like ``b``.

    numpy ``b``: ``A`` may be a scipy sparse matrix/array, a dense 2-D array, a
    ``scipy.sparse.linalg.LinearOperator`` or a callable. torch ``b``: a callable on tensors shaped like
    ``b``, or a 2-D (dense or sparse) tensor for 1-D ``b``. The output shape of a callable is checked on
    first use.

    Raises:
        TypeError: an unsupported kind of ``A`` for this ``b``, or a complex ``A`` (also a callable that
            returns complex values): the solvers are real; split a complex system into real and imaginary
            parts.
        ValueError: a shape that does not match ``b``, or non-finite matrix entries.
    """
    is_torch = torch.is_tensor(b)
    if is_torch:
        if torch.is_tensor(A):
            if A.is_complex():
                raise TypeError(_complex_message(name, A.dtype))
            if A.layout == torch.strided and not torch.isfinite(A).all():
                raise ValueError(f"`{name}` has non-finite entries")
            _matrix_shape_check(tuple(A.shape), b, name)
            A = A.to(device=b.device, dtype=b.dtype)
            return lambda v: A @ v
        if sp.issparse(A) or isinstance(A, (np.ndarray, spla.LinearOperator)):
            raise TypeError(
                f"`{name}` is a numpy/scipy object but `b` is a torch tensor; pass `b` as a numpy array, or "
                f"`{name}` as a callable on tensors"
            )
    else:
        if sp.issparse(A):
            _matrix_shape_check(A.shape, b, name)
            _check_real(A.dtype, name)
            A = A.tocsr()  # first: lil and dok matrices have no flat `data` array
            if not np.isfinite(A.data).all():
                raise ValueError(f"`{name}` has non-finite entries")
            return lambda v: A @ v
        if isinstance(A, spla.LinearOperator):
            _matrix_shape_check(A.shape, b, name)
            _check_real(A.dtype, name)
            return _checked_callable(A.matvec, b, name)
        if isinstance(A, np.ndarray):
            A = np.asarray(A)  # an np.matrix would turn A @ v into a 1 × n matrix
            _matrix_shape_check(A.shape, b, name)
            _check_real(A.dtype, name)
            if not np.isfinite(A).all():
                raise ValueError(f"`{name}` has non-finite entries")
            return lambda v: A @ v
        if torch.is_tensor(A):
            raise TypeError(f"`{name}` is a torch tensor but `b` is a numpy array; pass both as one type")
    if not callable(A):
        raise TypeError(
            f"`{name}` must be a scipy sparse matrix, a dense array, a LinearOperator or a callable, "
            f"got {type(A).__name__}"
        )
    return _checked_callable(A, b, name)


def _complex_message(name: str, dtype: Any) -> str:
    return (
        f"`{name}` is complex (dtype {dtype}) but the solvers are real; solve the real system "
        f"[[Re {name}, -Im {name}], [Im {name}, Re {name}]] [Re x; Im x] = [Re b; Im b] instead"
    )


def _check_real(dtype: Any, name: str) -> None:
    """Refuse complex (and other non-real) matrix dtypes instead of dropping the imaginary part."""
    if dtype is not None and np.dtype(dtype).kind not in "biuf":
        if np.dtype(dtype).kind == "c":
            raise TypeError(_complex_message(name, dtype))
        raise TypeError(f"`{name}` must hold real numbers, got dtype {dtype}")


def _checked_callable(fn: Callable, b: Any, name: str) -> Operator:
    shape = tuple(b.shape)
    state = {"checked": False}

    def apply(v):
        out = fn(v)
        if not state["checked"]:
            if torch.is_tensor(b) != torch.is_tensor(out) or tuple(getattr(out, "shape", ())) != shape:
                raise ValueError(
                    f"`{name}` returned {type(out).__name__} of shape {tuple(getattr(out, 'shape', ()))} "
                    f"for input of shape {shape}; it must return the same type and shape"
                )
            if out.is_complex() if torch.is_tensor(out) else np.iscomplexobj(out):
                raise TypeError(_complex_message(name, out.dtype))
            state["checked"] = True
        return out

    return apply

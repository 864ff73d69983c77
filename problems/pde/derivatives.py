"""Derivative look-up for residuals: ``d["u_xx"]``.

A residual is written against a :class:`Derivatives` object ``d`` that is indexed by name:

* a coordinate name gives that column of the points, ``d["x"]``;
* a field name gives the field, ``d["u"]``;
* ``field_letters`` gives a partial derivative, ``d["u_t"]``, ``d["u_xx"]``, ``d["u_xy"]``.

Every value is a tensor of shape ``(n,)``. How the derivatives are computed is the engine's business:
:class:`AutogradDerivatives` (here) differentiates any callable with reverse-mode autograd, lazily and
with caching, which serves exact solutions and any ``torch.nn.Module``; ``sciml.pinn`` adds a faster
forward-mode (Taylor) engine for its own models. Keys a residual asks for can be recorded
(``d.requested``) so that a fast engine can compute all of them in one pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import torch

__all__ = ["Derivatives", "AutogradDerivatives", "parse_key"]


@lru_cache(maxsize=1024)
def parse_key(key: str, names: tuple[str, ...], fields: tuple[str, ...]) -> tuple[str, int, tuple[int, ...]]:
    """Decode a look-up key.

    Returns:
        ``("coordinate", column, ())`` or ``("field", field_index, dims)`` with ``dims`` the sorted
        coordinate columns to differentiate along (empty for the field itself).

    Raises:
        KeyError: an unknown coordinate or field, naming the valid ones.
    """
    if not isinstance(key, str):
        raise KeyError(f"derivative keys are strings such as 'u_xx', got {key!r}")
    if key in names:
        return "coordinate", names.index(key), ()
    field, _, letters = key.partition("_")
    if field not in fields or (_ and not letters):
        raise KeyError(
            f"unknown key {key!r}: use a coordinate {names}, a field {fields}, or a derivative such as "
            f"'{fields[0]}_{names[0]}{names[0]}'"
        )
    dims = []
    for letter in letters:
        if letter not in names:
            raise KeyError(f"unknown coordinate {letter!r} in key {key!r}; the coordinates are {names}")
        dims.append(names.index(letter))
    return "field", fields.index(field), tuple(sorted(dims))


class Derivatives:
    """Base class: name parsing, the points, and the record of requested keys.

    Subclasses implement :meth:`value` (all fields, ``(n, n_fields)``) and :meth:`derivative`.

    Args:
        x: the points, ``(n, ndim)``.
        names: coordinate names (columns of ``x``).
        fields: field names (columns of the model output).
    """

    def __init__(self, x: torch.Tensor, names: Sequence[str], fields: Sequence[str]) -> None:
        self.x = x
        self.names = tuple(names)
        self.fields = tuple(fields)
        #: every key looked up so far, e.g. {"u", "u_xx"} (coordinates excluded)
        self.requested: set[tuple[int, tuple[int, ...]]] = set()

    def __getitem__(self, key: str) -> torch.Tensor:
        kind, index, dims = parse_key(key, self.names, self.fields)
        if kind == "coordinate":
            return self.x[:, index]
        self.requested.add((index, dims))
        if not dims:
            return self.value()[:, index]
        return self.derivative(index, dims)

    def value(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def derivative(self, field: int, dims: tuple[int, ...]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class AutogradDerivatives(Derivatives):
    """Derivatives of ``fn(x)`` by reverse-mode autograd, computed when first asked for and cached.

    Each first look-up of a derivative of order k costs one backward pass through the graph of the order
    k−1 derivative (all its partials at once). The graph is kept (``create_graph=True``) so that a loss
    built from the results can be differentiated with respect to ``fn``'s parameters.

    Args:
        fn: maps points ``(n, ndim)`` to fields ``(n, n_fields)`` (or ``(n,)`` for one field).
        x: the points; a detached copy that requires grad is used.
        names, fields: as in :class:`Derivatives`.
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        names: Sequence[str],
        fields: Sequence[str],
    ) -> None:
        super().__init__(x.detach().requires_grad_(True), names, fields)
        self._fn = fn
        self._value: torch.Tensor | None = None
        self._grads: dict[tuple[int, tuple[int, ...]], torch.Tensor] = {}

    def value(self) -> torch.Tensor:
        if self._value is None:
            with torch.enable_grad():
                u = self._fn(self.x)
            if u.ndim == 1:
                u = u[:, None]
            self._value = u
        return self._value

    def _gradient(self, field: int, prefix: tuple[int, ...]) -> torch.Tensor:
        """All first partials of the derivative ``prefix`` of ``field``: shape ``(n, ndim)``."""
        key = (field, prefix)
        if key not in self._grads:
            if prefix:
                target = self._gradient(field, prefix[:-1])[:, prefix[-1]]
            else:
                target = self.value()[:, field]
            if target.requires_grad:
                with torch.enable_grad():
                    (grad,) = torch.autograd.grad(target.sum(), self.x, create_graph=True, allow_unused=True)
            else:
                grad = None
            if grad is None:  # the quantity does not depend on x
                grad = torch.zeros_like(self.x)
            self._grads[key] = grad
        return self._grads[key]

    def derivative(self, field: int, dims: tuple[int, ...]) -> torch.Tensor:
        return self._gradient(field, dims[:-1])[:, dims[-1]]

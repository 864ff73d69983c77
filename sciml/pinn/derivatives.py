"""The derivative engine a trainer hands to residuals: forward-mode jets when the model has them.

:func:`derivatives` returns a :class:`~sciml.problems.pde.derivatives.Derivatives` for ``model`` at points
``x``. Given the keys a residual asks for (recorded once, before training), a model with a ``jet`` method
computes the value and every needed first and pure second derivative in one forward pass
(:class:`JetDerivatives`); anything else (mixed or third derivatives, models without ``jet``) falls back to
reverse-mode autograd, so results never depend on the engine — only the speed does (tested).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import nn

from sciml.pinn.jet import JetSpec
from sciml.problems.pde.derivatives import AutogradDerivatives, Derivatives

__all__ = ["JetDerivatives", "derivatives", "spec_for"]

Key = tuple[int, tuple[int, ...]]


def spec_for(keys: Iterable[Key]) -> tuple[JetSpec, bool]:
    """The jet that covers ``keys`` and whether every key is covered (else autograd fills in)."""
    first, second, covered = set(), set(), True
    for _, dims in keys:
        if len(dims) == 1:
            first.add(dims[0])
        elif len(dims) == 2 and dims[0] == dims[1]:
            second.add(dims[0])
        elif dims:
            covered = False
    return JetSpec(tuple(first), tuple(second)), covered


class JetDerivatives(Derivatives):
    """Derivatives read off one forward jet of ``model``; other keys by autograd on demand."""

    def __init__(
        self, model: nn.Module, x: torch.Tensor, names: Sequence[str], fields: Sequence[str], spec: JetSpec
    ) -> None:
        super().__init__(x, names, fields)
        self._model = model
        self._spec = spec
        self._jet = model.jet(x, spec)
        self._fallback: AutogradDerivatives | None = None

    def value(self) -> torch.Tensor:
        return self._jet.value

    def derivative(self, field: int, dims: tuple[int, ...]) -> torch.Tensor:
        n = self.x.shape[0]
        if len(dims) == 1 and dims[0] in self._spec.first:
            out = self._jet.first[self._spec.first.index(dims[0])][:, field]
            return out.expand(n)
        if len(dims) == 2 and dims[0] == dims[1] and dims[0] in self._spec.second:
            return self._jet.second[self._spec.second.index(dims[0])][:, field]
        if self._fallback is None:
            self._fallback = AutogradDerivatives(self._model, self.x, self.names, self.fields)
        return self._fallback.derivative(field, dims)


def derivatives(
    model: nn.Module,
    x: torch.Tensor,
    names: Sequence[str],
    fields: Sequence[str],
    keys: Iterable[Key] | None = None,
    *,
    engine: str = "auto",
) -> Derivatives:
    """A derivative look-up for ``model`` at ``x``.

    Args:
        model: maps points to fields.
        x: points ``(n, ndim)``.
        names, fields: coordinate and field names.
        keys: the ``(field, dims)`` pairs that will be requested (from ``Derivatives.requested`` of a probe
            run); needed by the jet engine.
        engine: ``"auto"`` (jets when the model has ``jet`` and ``keys`` are known), ``"jet"`` or
            ``"autograd"``.

    Raises:
        ValueError: an unknown engine, or ``"jet"`` for a model without ``jet``.
    """
    if engine not in ("auto", "jet", "autograd"):
        raise ValueError(f"`engine` must be 'auto', 'jet' or 'autograd', got {engine!r}")
    has_jet = callable(getattr(model, "jet", None)) and callable(
        getattr(getattr(model, "net", model), "jet", None)
    )
    if engine == "jet" and not has_jet:
        raise ValueError(f"{type(model).__name__} has no jet(); use engine='autograd'")
    if engine == "autograd" or not has_jet or keys is None:
        return AutogradDerivatives(model, x, names, fields)
    spec, _ = spec_for(keys)
    return JetDerivatives(model, x, names, fields, spec)

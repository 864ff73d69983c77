"""Boundary, initial and data conditions as objects.

Each condition knows where its points live (:meth:`Condition.sample`) and what must vanish there
(:meth:`Condition.residual`, written with the same derivative look-up ``d["u_x"]`` as the PDE residual).
A trainer adds ``weight · mean(residual²)`` per condition to the loss; the condition's ``name`` is the key
for its loss weight and in logs.

Values (``value=``) are a number or a callable mapping points ``(n, ndim)`` (a torch tensor, columns in the
domain's coordinate order) to ``(n,)``. ``Robin``'s ``alpha``, ``beta`` and ``value`` and ``Neumann``'s
``value`` may also name a coefficient of the problem's ``params`` (a string), so that an inverse problem can
fit it (``Trainer(..., unknowns={"h": guess})``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sciml.problems.pde.derivatives import Derivatives
from sciml.problems.pde.domain import Box, _device
from sciml.problems.pde.geometry import Geometry, Selector, _EmptyPart

__all__ = [
    "Condition",
    "Dirichlet",
    "Neumann",
    "Periodic",
    "Robin",
    "InitialValue",
    "InitialVelocity",
    "Observations",
    "PointCondition",
    "Value",
]

#: a constant or a function of the points ``(n, ndim) -> (n,)``
Value = float | Callable[[torch.Tensor], torch.Tensor]


#: the hint for an ``(n, n)`` result, which broadcasting an ``(n,)`` tensor with an ``(n, 1)`` one makes
_BROADCAST_FIX = (
    "(n, n) comes from broadcasting a tensor of shape (n,) with one of shape (n, 1) (a column x[:, 0] and "
    "the look-ups d['u'], d['u_x'] are (n,), while x[:, 0:1] is (n, 1)): write x[:, 0] instead of x[:, 0:1], "
    "or keep the shapes consistent"
)


def _per_point(out: Any, x: torch.Tensor, what: str) -> torch.Tensor:
    """``out`` as a tensor of one value per point of ``x``, ``(n,)`` (an ``(n, 1)`` column is squeezed).

    Raises:
        ValueError: another shape; the message starts with ``what`` (the function that returned it) and
            names the broadcast that makes ``(n, n)``.
    """
    if not torch.is_tensor(out):
        out = torch.as_tensor(out, dtype=x.dtype, device=x.device)
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    n = x.shape[0]
    if out.shape != (n,):
        # (n, n) with n ≠ ndim: not the points themselves (x), a broadcast
        square = out.shape == (n, n) and n > 1 and n != x.shape[1]
        raise ValueError(
            f"{what} returned shape {tuple(out.shape)} for {n} points; it must return ({n},), one value "
            f"per point" + (f"; {_BROADCAST_FIX}" if square else "")
        )
    return out


def _fixed_points(points: Any, name: str) -> np.ndarray:
    """A condition's fixed ``points`` (array or tensor) as a float64 ``(m, ndim)`` array.

    Raises:
        ValueError: not numbers, not a non-empty ``(m, ndim)`` array, or not finite (naming the condition).
    """
    try:
        out = np.asarray(points.detach().cpu() if torch.is_tensor(points) else points, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"condition {name!r}: `points` must be an (m, ndim) array of numbers") from None
    if out.ndim != 2 or out.shape[0] == 0:
        raise ValueError(
            f"condition {name!r}: `points` must be a non-empty (m, ndim) array, got shape {out.shape} (one "
            "point of a 1-D domain: [[x0]])"
        )
    if not np.isfinite(out).all():
        raise ValueError(f"condition {name!r}: `points` must be finite")
    return out


def _check_points_in(domain: Geometry, points: np.ndarray, name: str) -> None:
    """Raise a ValueError naming condition ``name`` and its first point outside ``domain`` (or the width)."""
    if points.shape[1] != domain.ndim:
        raise ValueError(
            f"condition {name!r}: `points` must be (m, {domain.ndim}) (coordinates {domain.names}), got "
            f"{points.shape}"
            + ("; transpose them (points.T: one row per point)" if points.shape[0] == domain.ndim else "")
        )
    if not domain.contains(points, tol=1e-9):
        i = next(i for i, p in enumerate(points) if not domain.contains(p[None], tol=1e-9))
        at = ", ".join(f"{k} = {v:g}" for k, v in zip(domain.names, points[i]))
        raise ValueError(
            f"condition {name!r}: point {i} ({at}) lies outside the domain {domain}; give points inside the "
            "domain or on its boundary"
        )


def _identity(condition: Condition) -> str:
    """``condition 'name' (Kind on 'part')``: which condition a message is about."""
    where = ""
    if isinstance(condition, _OnFaces):
        on = condition.on
        where = f" on {on!r}" if on is not None and not callable(on) else " on the whole boundary"
        where = " on the part its predicate `on` selects" if callable(on) else where
    elif isinstance(condition, _AtInitialTime):
        where = " at the initial time"
    return f"condition {condition.name!r} ({type(condition).__name__}{where})"


def _evaluate(
    value: Value | str | None,
    x: torch.Tensor,
    params: Mapping[str, Any] | None = None,
    *,
    condition: Condition | None = None,
    attr: str = "value",
) -> torch.Tensor | float:
    """A condition's datum at the points ``x``: 0 for None, a function's values, a number, or the
    coefficient of ``params`` a string names (a tensor when it is being fitted). ``condition`` and
    ``attr`` (its attribute that holds ``value``) name it in errors.

    Raises:
        TypeError: a function that calls numpy on the points (they are torch tensors, which may require
            grad).
        ValueError: a function that returns another shape than ``(n,)`` or ``(n, 1)``.
    """
    if value is None:
        return 0.0
    if isinstance(value, str):
        return params[value]
    if callable(value):
        who = f"{_identity(condition)}: `{attr}`" if condition is not None else "a condition value"
        try:
            out = value(x)
        except (RuntimeError, TypeError) as error:  # numpy() of a tensor that requires grad (or on a GPU)
            if "numpy" not in str(error):
                raise
            raise TypeError(
                f"{who} calls numpy on the points: condition values receive the points as torch tensors that "
                "may require grad (the trainer differentiates through them: a hard constraint's derivatives "
                "include the boundary value's), so write them with differentiable torch functions, e.g. "
                "torch.sin(x[:, 0]) instead of np.sin(x[:, 0])"
            ) from None
        return _per_point(out, x, who)
    return float(value)


def _check_faces(on: Selector, domain: Geometry) -> Selector:
    """``on`` checked against the domain's boundary parts (a predicate passes as is).

    Raises:
        ValueError: no part named, or a name the domain does not have (the message lists them).
    """
    if on is None or callable(on):
        return on
    faces = tuple([on] if isinstance(on, str) else on)
    if not faces:
        raise ValueError(f"`on` must name at least one boundary part of {domain.parts()}")
    return domain._check_part(faces)


@dataclass(frozen=True, kw_only=True)
class Condition:
    """Base class of all conditions.

    Args:
        field: the field the condition constrains; ``None`` means the problem's only field.
        name: key for the loss weight and logs (unique within a problem).
    """

    field: str | None = None
    name: str = "condition"
    #: the attributes that may name a coefficient of the problem's ``params`` instead of a number
    named_coefficients = ()

    def coefficient_names(self) -> list[str]:
        """The ``params`` coefficients this condition reads by name (checked by the problem)."""
        return [v for a in self.named_coefficients if isinstance(v := getattr(self, a, None), str)]

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        """Check the condition fits the problem.

        Raises:
            ValueError: an unknown field, a field left unnamed in a multi-field problem, or faces /
                coordinates the domain does not have.
        """
        if self.field is None and len(fields) != 1:
            raise ValueError(f"condition {self.name!r}: name its `field`, one of {tuple(fields)}")
        if self.field is not None and self.field not in fields:
            raise ValueError(
                f"condition {self.name!r}: unknown field {self.field!r}; fields are {tuple(fields)}"
            )
        for attr in ("value", "alpha", "beta"):
            v = getattr(self, attr, None)
            if v is None or callable(v) or (isinstance(v, str) and attr in self.named_coefficients):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                attrs = ", ".join(self.named_coefficients)
                named = f", or the name of a coefficient of the problem's params ({attrs})" if attrs else ""
                raise TypeError(
                    f"condition {self.name!r}: `{attr}` must be a number or a function of the points "
                    f"(n, ndim) -> (n,){named}, got {type(v).__name__} {v!r}"
                )
            if not np.isfinite(v):
                raise ValueError(f"condition {self.name!r}: `{attr}` must be finite, got {v!r}")

    def key(self, fields: Sequence[str], letters: str = "") -> str:
        """The look-up key of this condition's field, with derivative ``letters``."""
        name = self.field if self.field is not None else fields[0]
        return f"{name}_{letters}" if letters else name

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The condition's points for this iteration (``n`` is a target count), created on ``device``
        (default: the generator's device, else the CPU)."""
        raise NotImplementedError  # pragma: no cover - abstract

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        """What must vanish at the points ``x``: shape ``(n,)``."""
        raise NotImplementedError  # pragma: no cover - abstract


@dataclass(frozen=True, kw_only=True)
class _OnFaces(Condition):
    """A condition on the spatial boundary or a part of it: ``on`` is a part name of the domain's
    ``parts()`` (box faces ``"x-"``, polygon edges ``"edge0"``, ``"boundary"``), several names, or a
    predicate ``on(x) -> bool (n,)`` on boundary points; default: the whole spatial boundary."""

    on: Selector = None

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        """See :meth:`Condition.validate`; a predicate ``on`` must also select some boundary points."""
        super().validate(domain, fields)
        _check_faces(self.on, domain)
        if not self.reaches(domain):
            self.sample(domain, 64, torch.Generator().manual_seed(0), torch.float64)  # raises, saying why

    def reaches(self, domain: Geometry) -> bool:
        """Whether ``on`` selects boundary points of ``domain``: False only for a predicate that selects none
        of 64 boundary points (seed 0), e.g. a wall's time span outside a time window's."""
        if not callable(self.on):
            return True
        try:
            self._draw(domain, 64, torch.Generator().manual_seed(0), torch.float64, None)
        except _EmptyPart:
            return False
        return True

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        try:
            return self._draw(domain, n, generator, dtype, device)
        except _EmptyPart:
            what = "predicate `on`" if callable(self.on) else f"boundary part on={self.on!r}"
            raise ValueError(
                f"condition {self.name!r}: its {what} selects no point of the boundary of {domain!r}, or too "
                f"small a part to sample; fix `on`: a predicate gets boundary points (n, {domain.ndim}) with "
                f"columns {domain.names} and returns a bool mask (n,), or name boundary parts "
                f"{domain.parts()}"
            ) from None

    def _draw(self, domain: Geometry, n: int, generator, dtype: torch.dtype, device) -> torch.Tensor:
        """``n`` points of the part, a predicate of the wrong form named by its condition (an empty part
        raises ``_EmptyPart``, which :meth:`sample` and :meth:`reaches` each answer)."""
        try:
            return domain.sample_boundary(
                n, generator, dtype=dtype, device=device, on=_check_faces(self.on, domain)
            )
        except _EmptyPart:
            raise
        except (TypeError, ValueError) as error:  # a predicate of the wrong form: say whose
            if not callable(self.on):
                raise
            kind = TypeError if isinstance(error, TypeError) else ValueError
            raise kind(f"condition {self.name!r}: {error}") from error

    def normal_derivative(self, domain: Geometry, x: torch.Tensor, d: Derivatives) -> torch.Tensor:
        """``∇u · n`` at boundary points ``x`` with the domain's outward normals (``(n,)``)."""
        normal = domain.normal(x, self.on)
        out = torch.zeros_like(x[:, 0])
        for name in domain.space_names:
            out = out + normal[:, domain.index(name)] * d[self.key(d.fields, name)]
        return out


@dataclass(frozen=True, kw_only=True)
class Dirichlet(_OnFaces):
    """``u = value`` on the boundary part ``on`` (default: the whole spatial boundary).

    Args:
        value: a number or a function of the points; ``None`` means zero. For a hard constraint
            (:meth:`HardConstraint.from_conditions`) a function must be defined (smoothly) inside the
            domain too: it is used as the boundary data's extension.
        on: part names such as ``("x-", "x+")`` or ``"edge0"``, or a predicate on points.
        field: the field it constrains, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'dirichlet'``).
    """

    value: Value | None = None
    name: str = "dirichlet"

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        return d[self.key(d.fields)] - _evaluate(self.value, x, condition=self)


@dataclass(frozen=True, kw_only=True)
class Neumann(_OnFaces):
    """Outward normal derivative ``∂u/∂n = value`` on the boundary part ``on`` (default: all of it).

    The normals are the domain's (``domain.normal``): exact for boxes, balls, polygons and their set
    operations. In 1-D the outward normal at the left end is ``-x``: ``Neumann(value=c, on="x-")`` means
    ``u'(x0) = -c`` (and ``u'(x1) = c`` on ``"x+"``).

    Args:
        value: a number, a function of the points, or the name of a coefficient of the problem's ``params``
            (e.g. an unknown flux); ``None`` means zero.
        on: part names such as ``("x-", "x+")``, or a predicate on points (default: the whole boundary).
        field: the field it constrains, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'neumann'``).
    """

    value: Value | str | None = None
    name: str = "neumann"
    named_coefficients = ("value",)

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        return self.normal_derivative(domain, x, d) - _evaluate(self.value, x, params, condition=self)


@dataclass(frozen=True, kw_only=True)
class Robin(_OnFaces):
    """``alpha · u + beta · ∂u/∂n = value`` on the boundary part ``on`` (default: all of it).

    Args:
        alpha, beta: the coefficients (numbers or functions of the points, or the name of a coefficient of
            the problem's ``params``, e.g. ``alpha="h"`` for a heat-transfer coefficient that
            ``Trainer(..., unknowns={"h": guess})`` fits).
        value: the right-hand side; ``None`` means zero; also a number, a function or a ``params`` name.
        on: part names such as ``("x-", "x+")``, or a predicate on points (default: the whole boundary).
        field: the field it constrains, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'robin'``).

    Raises:
        ValueError: ``alpha`` and ``beta`` both the number 0.
    """

    alpha: Value | str = 1.0
    beta: Value | str = 1.0
    value: Value | str | None = None
    name: str = "robin"
    named_coefficients = ("alpha", "beta", "value")

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        super().validate(domain, fields)
        if not callable(self.alpha) and not callable(self.beta) and self.alpha == 0 and self.beta == 0:
            raise ValueError(f"condition {self.name!r}: `alpha` and `beta` cannot both be 0")

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        u = d[self.key(d.fields)]
        du = self.normal_derivative(domain, x, d)
        alpha = _evaluate(self.alpha, x, params, condition=self, attr="alpha")
        beta = _evaluate(self.beta, x, params, condition=self, attr="beta")
        return alpha * u + beta * du - _evaluate(self.value, x, params, condition=self)


@dataclass(frozen=True, kw_only=True)
class Periodic(Condition):
    """``u`` and its first ``derivatives`` derivatives along ``coordinate`` agree on opposite faces.

    The points are ``n`` points on the lower face followed by the same points moved to the upper face.
    """

    coordinate: str = "x"
    derivatives: int = 1
    name: str = "periodic"

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        super().validate(domain, fields)
        if not isinstance(domain, Box):
            raise ValueError(
                f"condition {self.name!r}: periodic conditions pair opposite faces of a Box, "
                f"got {type(domain).__name__}"
            )
        if self.coordinate not in domain.space_names:
            raise ValueError(
                f"condition {self.name!r}: `coordinate` must be one of {domain.space_names}, "
                f"got {self.coordinate!r}"
            )
        if not isinstance(self.derivatives, int) or self.derivatives < 0:
            raise ValueError(f"condition {self.name!r}: `derivatives` must be an integer ≥ 0")

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        low = domain.sample_face(f"{self.coordinate}-", n, generator, dtype=dtype, device=device)
        high = low.clone()
        high[:, domain.index(self.coordinate)] = domain.upper[domain.index(self.coordinate)]
        return torch.cat([low, high])

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        n = x.shape[0] // 2
        parts = []
        for order in range(self.derivatives + 1):
            v = d[self.key(d.fields, self.coordinate * order)]
            parts.append(v[:n] - v[n:])
        return torch.cat(parts)


@dataclass(frozen=True, kw_only=True)
class _AtInitialTime(Condition):
    """A condition on the initial time slice of a space-time domain."""

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        super().validate(domain, fields)
        if domain.time is None:
            raise ValueError(f"condition {self.name!r} needs a domain with a time coordinate")

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        return domain.sample_initial(n, generator, dtype=dtype, device=device)


@dataclass(frozen=True, kw_only=True)
class InitialValue(_AtInitialTime):
    """``u = value`` at the initial time.

    Args:
        value: a number or a function of the points; ``None`` means zero.
        field: the field it constrains, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'initial'``).
    """

    value: Value | None = None
    name: str = "initial"

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        return d[self.key(d.fields)] - _evaluate(self.value, x, condition=self)


@dataclass(frozen=True, kw_only=True)
class InitialVelocity(_AtInitialTime):
    """``∂u/∂t = value`` at the initial time (second order in time, e.g. wave and Klein–Gordon).

    Args:
        value: a number or a function of the points; ``None`` means zero.
        field: the field it constrains, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'initial-velocity'``).
    """

    value: Value | None = None
    name: str = "initial-velocity"

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        return d[self.key(d.fields, domain.time)] - _evaluate(self.value, x, condition=self)


@dataclass(frozen=True, kw_only=True, eq=False)
class Observations(Condition):
    """Measured values ``u(points) = values`` (data for inverse problems); the points are fixed.

    Args:
        points: ``(m, ndim)`` observation points inside the domain.
        values: ``(m,)`` (or ``(m, 1)``) observed values of ``field``.
        field: the field observed, one of the problem's ``fields``; required when the problem has several
            fields (``None``: the only field).
        name: its loss term's name, the key for its loss weight and in logs (unique within a problem;
            default ``'data'``).
        std: the measurements' standard deviations, one number or one per point (``None``: all alike): the
            loss term is then the mean of ``((u − values) / std)²``, weighted least squares, so that a noisy
            sensor counts less than a precise one.

    Raises:
        ValueError: ``points`` not a finite ``(m, ndim)`` array (transposed ones are named as such),
            ``values`` not ``m`` finite numbers, or ``std`` not a positive finite number or ``m`` of them.
    """

    points: np.ndarray | torch.Tensor = field(default_factory=lambda: np.zeros((0, 1)))
    values: np.ndarray | torch.Tensor = field(default_factory=lambda: np.zeros(0))
    name: str = "data"
    std: float | np.ndarray | torch.Tensor | None = None
    #: (points, values) as tensors per (dtype, device), made once: no host-to-device copy per iteration
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _as_tensors(self, dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
        """``(points, values, std or None)`` as tensors."""
        key = (dtype, device)
        if key not in self._tensors:
            self._tensors[key] = (
                torch.as_tensor(self.points, dtype=dtype, device=device),
                torch.as_tensor(self.values, dtype=dtype, device=device),
                None if self.std is None else torch.as_tensor(self.std, dtype=dtype, device=device),
            )
        return self._tensors[key]

    def __post_init__(self) -> None:
        points = _fixed_points(self.points, self.name)
        values = self.values.detach().cpu() if torch.is_tensor(self.values) else self.values
        try:  # (a string is not parsed: np.asarray("1.0", float) would be one number)
            values = None if isinstance(values, (str, bytes)) else np.asarray(values, float)
        except (TypeError, ValueError):
            values = None
        if values is None:
            raise ValueError(
                f"condition {self.name!r}: `values` must be numbers, one per point, e.g. "
                f"np.array([0.1, 0.2]), got {type(self.values).__name__} {self.values!r:.60}"
            )
        given = values.shape
        if values.ndim == 2 and values.shape[1] == 1:  # a column of one field's values
            values = values[:, 0]
        if values.ndim == 1 and values.size == points.shape[1] > points.shape[0]:  # (ndim, m) points
            raise ValueError(
                f"condition {self.name!r}: `points` has shape {points.shape}, but `values` holds "
                f"{values.size} values: the points look transposed; transpose them (points.T: one row per "
                f"point, shape ({values.size}, {points.shape[0]}))"
            )
        if values.shape != (points.shape[0],):
            raise ValueError(
                f"`values` must have shape ({points.shape[0]},) (or ({points.shape[0]}, 1)), one value of "
                f"`field` per point, to match `points`, got {given}; observations of several fields "
                "are one Observations condition per field (`field=`)"
            )
        if not np.isfinite(values).all():
            raise ValueError(f"condition {self.name!r}: `values` must be finite")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "values", values)
        if self.std is not None:
            std = self.std.detach().cpu() if torch.is_tensor(self.std) else self.std
            try:  # (a string is refused, as for values)
                std = None if isinstance(std, (str, bytes)) else np.asarray(std, float).reshape(-1)
                std = None if std is None else np.broadcast_to(std, values.shape).copy()
            except (TypeError, ValueError):
                std = None
            if std is None or not (np.isfinite(std) & (std > 0)).all():
                raise ValueError(
                    f"condition {self.name!r}: `std` must be one positive finite number or {values.size} of "
                    f"them (one per point), got {self.std!r:.60}"
                )
            object.__setattr__(self, "std", std)

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        super().validate(domain, fields)
        _check_points_in(domain, self.points, self.name)

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The observation points (the same tensor every call: do not modify it in place)."""
        return self._as_tensors(dtype, _device(generator, device))[0]

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        _, values, std = self._as_tensors(x.dtype, x.device)
        misfit = d[self.key(d.fields)] - values
        return misfit if std is None else misfit / std


@dataclass(frozen=True, kw_only=True, eq=False)
class PointCondition(Condition):
    """``operator(x, d, params) = 0`` at fixed points: a derivative or any expression of the fields and their
    derivatives, e.g. ``y'(x0) = 0`` at an interior singular point, where :class:`Observations` only fixes
    values.

    Example: ``PointCondition(points=[[math.pi / 2]], operator=lambda x, d, p: d["y_x"], name="dy")``.
    Its loss weight is set by ``name`` like any condition's (``PDEProblem(loss_weights=...)`` or
    ``TrainConfig(weights=...)``).

    Args:
        points: ``(m, ndim)`` points inside the domain or on its boundary (array or tensor; fixed).
        operator: ``operator(x, d, params) -> (m,)``, what must vanish at ``x`` (the points), written with
            the PDE residual's derivative look-up (``d["y"]``, ``d["y_x"]``, ``d["u_xx"]``) and coefficients
            ``params``.
        name: key for the loss weight and logs.

    Raises:
        ValueError: ``points`` not a non-empty finite ``(m, ndim)`` array, or outside the domain (checked
            with the problem); an ``operator`` that returns another shape than ``(m,)``.
        TypeError: an ``operator`` that is not callable.
    """

    points: np.ndarray | torch.Tensor = field(default_factory=lambda: np.zeros((0, 1)))
    operator: Callable[[torch.Tensor, Derivatives, Mapping[str, Any]], torch.Tensor] | None = None
    name: str = "point"
    #: the points as tensors per (dtype, device), made once
    _tensors: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        points = _fixed_points(self.points, self.name)
        if self.field is not None:
            raise ValueError(
                f"condition {self.name!r}: a PointCondition has no `field`; its `operator` names the fields "
                "it uses (d['u'], d['v_x'])"
            )
        if not callable(self.operator):
            raise TypeError(
                f"condition {self.name!r}: `operator` must be a function operator(x, d, params) -> (m,), "
                f"e.g. lambda x, d, p: d['y_x'], got {type(self.operator).__name__}"
            )
        object.__setattr__(self, "points", points)

    def validate(self, domain: Geometry, fields: Sequence[str]) -> None:
        """Check the points against the domain (the operator names its fields itself).

        Raises:
            ValueError: points with another number of coordinates than the domain, or outside it.
        """
        _check_points_in(domain, self.points, self.name)

    def sample(
        self,
        domain: Geometry,
        n: int,
        generator: torch.Generator | None,
        dtype: torch.dtype,
        *,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """The condition's points (the same tensor every call: do not modify it in place)."""
        key = (dtype, _device(generator, device))
        if key not in self._tensors:
            self._tensors[key] = torch.as_tensor(self.points, dtype=dtype, device=key[1])
        return self._tensors[key]

    def residual(
        self, domain: Geometry, x: torch.Tensor, d: Derivatives, params: Mapping[str, Any]
    ) -> torch.Tensor:
        return _per_point(self.operator(x, d, params), x, f"condition {self.name!r}: `operator`")

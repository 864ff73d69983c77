"""``PDEProblem``: one definition of a PDE that a PINN, a PIG and a grid discretisation can all attack.

A problem is a box domain, named output fields, a residual written with the derivative look-up
(``d["u_xx"]``, see :mod:`sciml.problems.pde.derivatives`), condition objects, coefficients ``params``, and
either
an exact solution or a *reference recipe* — data that tells ``solvers`` how to compute a reference
numerically (``problems`` itself never runs a solver). Problems are frozen; :meth:`PDEProblem.replace`
makes a variant in one line (a new coefficient, another initial condition).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sciml.problems.pde.conditions import (
    _BROADCAST_FIX,
    Condition,
    Dirichlet,
    InitialValue,
    Observations,
    PointCondition,
    _evaluate,
)
from sciml.problems.pde.derivatives import AutogradDerivatives, Derivatives
from sciml.problems.pde.geometry import Geometry, _is_real

__all__ = [
    "PDEProblem",
    "HardConstraint",
    "SemilinearReference",
    "NonlinearDiffusionReference",
    "Residual",
]

#: ``residual(x, d, params) -> (n,)`` or ``(n, n_equations)``
Residual = Callable[[torch.Tensor, Derivatives, Mapping[str, Any]], torch.Tensor]


def _stable_repr(value: Any) -> str:
    """``repr`` without memory addresses: a function by its qualified name."""
    if callable(value) and hasattr(value, "__qualname__"):
        return f"{getattr(value, '__module__', '')}.{value.__qualname__}"
    return repr(value)


def _check_param(key: Any, value: Any) -> None:
    """Raise a ValueError unless ``value`` is a finite real number (Python or numpy scalar, not a bool), a
    real, finite tensor / array, or a function, naming ``params[key]`` and the fix."""
    if callable(value) and not torch.is_tensor(value):  # e.g. a source term the residual calls
        return
    if torch.is_tensor(value):
        good = not value.is_complex() and value.dtype != torch.bool and bool(torch.isfinite(value).all())
    elif isinstance(value, np.ndarray):
        good = value.dtype.kind in "iuf" and bool(np.isfinite(value).all())
    else:
        good = _is_real(value)
    if good:
        return
    try:  # a number written as a string (YAML reads 1e-3 as one): the float it spells
        example = float(value) if isinstance(value, str) and math.isfinite(float(value)) else 1e-3
    except ValueError:
        example = 1e-3
    raise ValueError(
        f"params[{key!r}] = {value!r} ({type(value).__name__}) is not a finite real number: pass a float, "
        f"e.g. params={{{key!r}: {example!r}}} (or a real, finite tensor / array)"
    )


def _check_compatible(domain: Geometry, per_field: Mapping[str, Mapping[str, list]]) -> None:
    """Initial and Dirichlet data of each field agree on the boundary at the initial time.

    ``HardConstraint.from_conditions`` adds ``u₀(x) − g(x, t₀)`` to the boundary data at every time, so
    where they disagree the Dirichlet condition fails for all ``t`` (and it has left the loss).

    Raises:
        ValueError: a mismatch above 1e-4 of the data's scale (the message says what to do).
    """
    t_index = domain.time_index
    t0 = domain.lower[t_index]
    g = torch.Generator().manual_seed(0)
    for f, found in per_field.items():
        if not found["initial"] or not found["dirichlet"]:
            continue
        initial = found["initial"][0]
        try:
            inner = domain.sample_initial(64, g, dtype=torch.float64)
            scale = float(torch.as_tensor(_evaluate(initial.value, inner)).abs().max())
            for c in found["dirichlet"]:
                x = domain.sample_boundary(64, g, dtype=torch.float64, on=c.on)
                x[:, t_index] = t0
                u0 = torch.as_tensor(_evaluate(initial.value, x), dtype=torch.float64).expand(x.shape[0])
                gb = torch.as_tensor(_evaluate(c.value, x), dtype=torch.float64).expand(x.shape[0])
                gap = (u0 - gb).abs()
                bound = 1e-4 * max(scale, float(u0.abs().max()), float(gb.abs().max()), 1e-300)
                worst = float(gap.max())
                if not worst > bound:  # (NaN data are reported where they are used)
                    continue
                i = int(gap.argmax())
                where = ", ".join(f"{k}={float(v):.4g}" for k, v in zip(domain.names, x[i]))
                raise _Incompatible(
                    f"constraint='auto': the initial value {initial.name!r} and the Dirichlet condition "
                    f"{c.name!r} of field {f!r} disagree where they meet (at {where}: initial "
                    f"{float(u0[i]):.6g}, boundary {float(gb[i]):.6g}). The hard constraint would impose the "
                    f"initial value on that boundary for all times, and {c.name!r} would leave the loss. "
                    "Pass constraint=None (both conditions stay in the loss, which balances them) or give an "
                    "initial value that matches the boundary data there"
                )
        except _Incompatible as exc:
            raise ValueError(str(exc)) from None
        except Exception:  # noqa: BLE001 — data that fail here fail, with their own error, where they are used
            continue


def _selector(on: Any) -> str:
    """A condition's ``on`` for a message."""
    return "the whole boundary" if on is None else "a predicate" if callable(on) else repr(on)


def _as_names(on: str | tuple[str, ...]) -> tuple[str, ...]:
    return (on,) if isinstance(on, str) else tuple(on)


def _named(c: Condition) -> tuple[str, ...] | None:
    """The part names ``c.on`` selects (``("boundary",)``: the whole boundary; ``None``: a predicate)."""
    return None if callable(c.on) else ("boundary",) if c.on is None else _as_names(c.on)


def _common_part(domain: Geometry, a: Condition, b: Condition) -> tuple[str, str]:
    """Words for the boundary part that the selectors of ``a`` and ``b`` share, and a fix that parts it."""
    names = [_named(a), _named(b)]
    if names[0] is not None and names[1] is not None:
        whole = [c for c, n in zip((a, b), names) if "boundary" in n]
        if len(whole) == 1:  # one on the whole boundary: give it the other parts
            other = names[1] if whole[0] is a else names[0]
            rest = tuple(p for p in domain.parts() if p != "boundary" and p not in other)
            fix = f"e.g. {whole[0].name!r} on={rest!r}" if rest else "e.g. split the boundary between them"
            part = repr(other[0]) if len(other) == 1 else repr(tuple(other))
            return part, fix
        shared = [p for p in names[0] if p in names[1] and p != "boundary"]
        if shared:
            part = repr(shared[0]) if len(shared) == 1 else repr(tuple(shared))
            return part, f"e.g. leave {part} out of the `on` of one of them"
    return "a common part of the boundary", "e.g. split the boundary between them"


def _check_overlaps(domain: Geometry, conditions: tuple[Condition, ...], fields: tuple[str, ...]) -> None:
    """Dirichlet conditions of one field agree where their parts overlap (a part of positive measure).

    At 128 points of each condition's part: the points the other condition also selects (over 1 % of them:
    corners and edges, of measure zero, are not hit) must get the same value from both, up to 1e-5 of the
    values (at least 1e-5: data that are 0 up to rounding agree). Different named parts (faces, polygon
    edges) are not sampled: they share corners at most. Otherwise the loss would pull the field towards both
    values, and a hard constraint would impose their weighted mean, neither condition's value.

    Raises:
        ValueError: two such conditions that disagree (naming both, the common part and the fix).
    """
    per_field: dict[str, list[Condition]] = {}
    for c in conditions:
        if isinstance(c, Dirichlet):
            per_field.setdefault(c.field if c.field is not None else fields[0], []).append(c)
    g = torch.Generator().manual_seed(0)
    pairs = [(f, a, b) for f, found in per_field.items() for i, a in enumerate(found) for b in found[i + 1 :]]
    for f, a, b in pairs:
        names = [_named(a), _named(b)]
        if (
            None not in names
            and "boundary" not in (*names[0], *names[1])
            and not set(names[0]) & set(names[1])
        ):
            continue  # different named parts (faces, edges) share corners at most
        for one, other in ((a, b), (b, a)):
            try:
                drawn = one.sample(domain, 128, g, torch.float64)  # (one point per end in 1-D)
                x = drawn[domain._part_mask(drawn, other.on)]
                if x.shape[0] <= 0.01 * drawn.shape[0]:
                    continue
                va, vb = (
                    torch.as_tensor(_evaluate(c.value, x), dtype=torch.float64).expand(x.shape[0])
                    for c in (a, b)
                )
            except Exception:  # noqa: BLE001 — data that fail here fail, with their own error, in use
                continue
            gap = (va - vb).abs()
            # relative to the values, but at least 1e-5 absolute: data that are zero up to rounding (an
            # exact solution's sin(π) on a wall, in float32 8.7e-8) agree with 0
            scale = max(float(va.abs().max()), float(vb.abs().max()), 1.0)
            if not float(gap.max()) > 1e-5 * scale:  # (NaN data are reported where they are used)
                continue
            j = int(gap.argmax())
            where = ", ".join(f"{k}={float(v):.4g}" for k, v in zip(domain.names, x[j]))
            part, fix = _common_part(domain, a, b)
            raise ValueError(
                f"the Dirichlet conditions {a.name!r} (on {_selector(a.on)}) and {b.name!r} (on "
                f"{_selector(b.on)}) of field {f!r} both hold on {part}, with different values (at {where}: "
                f"{float(va[j]):.6g} and {float(vb[j]):.6g}): the loss would pull the field towards both, "
                "and a hard constraint would impose their weighted mean. Select disjoint parts with `on` "
                f"(parts may share corners), {fix}, or give them the same value there"
            )


def _origin(domain: Geometry, fields: tuple[str, ...], used: list[tuple[Condition, Any]]) -> tuple:
    """What a constraint built from conditions depends on, exact and cheap to compare: the domain (its
    ``repr``, which holds its kind and numbers, coordinates and time), the fields, and per enforced condition
    its name, kind, field, parts and number value (a function's values are checked at the condition's points
    by the trainer instead)."""
    conditions = sorted(
        (c.name, type(c).__name__, c.field, parts, "function" if callable(c.value) else float(c.value or 0))
        for c, parts in used
    )
    return (repr(domain), domain.names, domain.time), tuple(fields), tuple(conditions)


class _Incompatible(Exception):
    """Raised inside :func:`_check_compatible` (kept apart from the data's own errors)."""


def _as_conditions(conditions: Any) -> tuple[Condition, ...]:
    """``conditions`` as a tuple: one Condition alone is accepted too.

    Raises:
        TypeError: neither a Condition nor an iterable of them.
    """
    if isinstance(conditions, Condition):
        return (conditions,)
    try:
        return tuple(conditions)
    except TypeError:
        raise TypeError(
            f"`conditions` must be a Condition or a tuple of them, e.g. (pde.Dirichlet(),), got "
            f"{type(conditions).__name__}"
        ) from None


#: points at which :meth:`PDEProblem.fingerprint` probes the functions of a problem (half on each condition)
_PROBES = 512


def _digest(values: np.ndarray) -> dict[str, Any]:
    """Probed values as their count, a SHA-256 hash of them all to 8 significant digits (those below 1e-9 of
    the largest taken as 0: rounding noise) and the first three (for a reader)."""
    finite = np.abs(values[np.isfinite(values)])
    values = np.where(np.abs(values) <= 1e-9 * (finite.max() if finite.size else 0.0), 0.0, values)
    text = [f"{v:.8g}" for v in values.tolist()]
    digest = hashlib.sha256(",".join(text).encode()).hexdigest()[:16]
    return {"n": len(text), "sha256": digest, "head": text[:3]}


def _check_test_shape(test_shape: Any, domain: Geometry) -> None:
    """Raises ValueError unless ``test_shape`` has one integer ≥ 2 per coordinate of ``domain``."""
    try:
        shape = tuple(test_shape)
        good = len(shape) == domain.ndim and all(
            not isinstance(s, bool) and int(s) == s and s >= 2 for s in shape
        )
    except (TypeError, ValueError):
        good, shape = False, test_shape
    if not good:
        raise ValueError(
            f"`test_shape` needs {domain.ndim} integers ≥ 2, one per coordinate {domain.names} (the test "
            f"grid's points per coordinate), got {shape!r}"
        )


#: points per coordinate of the default test grid (by the number of coordinates; 21 beyond 3): a problem with
#: an exact solution and no ``test_shape``, and a trainer's callable reference, use it
_DEFAULT_GRID = {1: 1001, 2: 201, 3: 41}


def default_test_shape(domain: Geometry) -> tuple[int, ...]:
    """The default test grid of ``domain``: ``_DEFAULT_GRID`` points per coordinate (21 beyond 3-D)."""
    return (_DEFAULT_GRID.get(domain.ndim, 21),) * domain.ndim


def _check_loss_weight(
    key: str, weight: Any, argument: str, n_equations: int | None = None, problem: str = "the problem"
) -> float | tuple[float, ...]:
    """A loss weight checked: a finite number ≥ 0, or for ``"residual"`` one such weight per equation.

    Args:
        key: the loss term (``"residual"`` or a condition's name).
        weight: its weight.
        argument: the argument's name for messages (``"weights"``, ``"loss_weights"``).
        n_equations: the residual's number of equations (``None``: the length is checked later).
        problem: the problem's name for messages.

    Returns:
        ``weight`` as given (a number), or a tuple of floats (per-equation weights).

    Raises:
        ValueError: not a finite number ≥ 0; per-equation weights for a condition, of another length than
            ``n_equations``, not finite and ≥ 0, or all 0.
    """
    if isinstance(weight, np.ndarray) and weight.ndim == 0:  # a numpy scalar array: its number
        weight = weight.item()
    if _is_real(weight) and weight >= 0:
        return weight
    if key != "residual" or not isinstance(weight, (tuple, list, np.ndarray)):
        raise ValueError(
            f"loss weight {key!r} must be a finite number ≥ 0, got {weight!r}"
            + (" (only 'residual' takes one weight per equation, a tuple)" if key != "residual" else "")
        )
    n = "?" if n_equations is None else n_equations
    items = weight.tolist() if isinstance(weight, np.ndarray) else list(weight)
    if not items or not all(_is_real(w) and w >= 0 for w in items):
        raise ValueError(
            f"`{argument}['residual']` must be a finite number ≥ 0 or a tuple of them, one per equation "
            f"(n_equations = {n}), got {weight!r}"
        )
    if n_equations is not None and len(items) != n_equations:
        raise ValueError(
            f"`{argument}['residual']` has {len(items)} per-equation weight(s) {tuple(items)}, but {problem} "
            f"has n_equations = {n_equations}: give one weight per equation, e.g. {(1.0,) * n_equations}"
        )
    if not any(items):
        raise ValueError(
            f"`{argument}['residual']` = {tuple(items)} gives every equation weight 0 (n_equations = {n}), "
            "so the residual would not be trained: give at least one equation a positive weight (the number "
            "0 leaves the whole residual out)"
        )
    return tuple(float(w) for w in items)


def value_shapes(n: int, n_fields: int) -> list[tuple[int, ...]]:
    """The array shapes that hold one value per point and field for ``n`` points: ``(n, n_fields)``, and
    ``(n,)`` or ``(n, 1)`` for one field."""
    return [(n,), (n, 1)] if n_fields == 1 else [(n, n_fields)]


@dataclass(frozen=True)
class HardConstraint:
    """An output transform that builds conditions into the model: ``u = particular(x) + factor(x) · N(x)``.

    ``factor`` vanishes where the conditions hold, ``particular`` carries their values (Lagaris et al.,
    *Artificial neural networks for solving ordinary and partial differential equations*, 1998). Neither
    may depend on trainable parameters, except the scalars named in ``parameters``.

    Args:
        particular: points ``(n, ndim)`` -> ``(n,)`` (one field) or ``(n, n_fields)``.
        factor: points -> ``(n,)`` or ``(n, n_fields)``.
        enforces: names of the problem's conditions that the transform satisfies exactly (a trainer
            drops those loss terms when the transform is used).
        corner: an optional second factor (same shapes as ``factor``, also zero where the conditions
            hold): the model is then ``particular + factor · N₁ + corner · N₂`` with twice the outputs
            (``Geometry.corner_factor``: re-entrant corners, where no ``factor`` alone is smooth).
        parameters: initial values of trainable scalars of the ansatz (e.g. the unknown position of a
            critical point). When given, ``particular`` and ``factor`` are called as ``fn(x, theta)`` with
            ``theta`` a dict of 0-dim tensors, which :class:`sciml.pinn.Constrained` trains with the network.
        origin: set by :meth:`from_conditions`: what the constraint was built from (a trainer refuses a
            wrapper built from another domain or other conditions than the problem's constraint).
    """

    particular: Callable[..., torch.Tensor]
    factor: Callable[..., torch.Tensor]
    enforces: tuple[str, ...] = ()
    corner: Callable[[torch.Tensor], torch.Tensor] | None = None
    parameters: Mapping[str, float] = field(default_factory=dict)
    origin: tuple | None = field(default=None, compare=False, repr=False)

    def bind(self, theta: Mapping[str, torch.Tensor] | None = None) -> tuple[Callable, Callable]:
        """``particular`` and ``factor`` as functions of the points alone.

        Args:
            theta: current values of the trainable scalars (one per name in ``parameters``); ignored
                when the ansatz has none.

        Returns:
            ``(particular, factor)``, bound to ``theta`` when the ansatz has ``parameters``.

        Raises:
            ValueError: ``theta`` does not name exactly the ansatz's ``parameters``.
        """
        if not self.parameters:
            return self.particular, self.factor
        if theta is None or set(theta) != set(self.parameters):
            raise ValueError(
                f"`theta` must give the ansatz's trainable scalars {sorted(self.parameters)}, "
                f"got {None if theta is None else sorted(theta)}"
            )
        return (lambda x: self.particular(x, theta)), (lambda x: self.factor(x, theta))

    @classmethod
    def from_conditions(
        cls, domain: Geometry, conditions: tuple[Condition, ...], fields: tuple[str, ...] = ("u",)
    ) -> HardConstraint:
        """The hard constraint of the Dirichlet and initial-value conditions, on any geometry.

        Per field, with Dirichlet data ``g_k`` on the parts ``P_k`` (distance-like ``φ_k``, zero on
        ``P_k``, see ``Geometry.distance``) and an initial value ``u₀``:

        - ``particular = Σ_k w_k g_k`` with the transfinite weights ``w_k = (1/φ_k) / Σ_j 1/φ_j``
          (``w_k = 1`` on ``P_k``), plus ``u₀(x) − particular(x, t₀)`` in time;
        - ``factor = φ_D · (t − t₀)/(t₁ − t₀)`` with ``φ_D = 1/Σ_k 1/φ_k`` (the R-equivalence of
          Sukumar & Srivastava, CMAME 389, 2022); a factor is left out where no condition applies.

        A Dirichlet value given as a function must be smooth inside the domain (it is the data's
        extension); initial and boundary data must agree where they meet.

        Args:
            domain: the geometry.
            conditions: the problem's conditions (others than Dirichlet / InitialValue stay in the loss).
            fields: the problem's fields.

        Returns:
            A constraint whose ``enforces`` names the conditions it builds in.

        Raises:
            ValueError: no Dirichlet or initial-value condition, a Dirichlet condition selected by a
                predicate (there is no smooth distance to it: name the parts, or pass ``constraint=None``),
                or initial and Dirichlet data that disagree where they meet (checked at 64 points of each
                Dirichlet part at the initial time, up to 1e-4 of the data's scale): the constraint would
                impose the initial value on that boundary for all times.
        """
        per_field: dict[str, dict[str, list]] = {f: {"dirichlet": [], "initial": []} for f in fields}
        enforces, used = [], []
        for c in conditions:
            field_name = c.field if c.field is not None else fields[0]
            if isinstance(c, Dirichlet):
                if callable(c.on):
                    parts = domain.parts()
                    named = [p for p in parts if p != "boundary"]
                    by_name = (
                        f", or select its part by name, e.g. {type(c).__name__}(..., on={named[0]!r}) (the "
                        f"domain's parts: {parts})"
                        if named
                        else f" (this domain names no part but the whole boundary: {parts})"
                    )
                    raise ValueError(
                        f"condition {c.name!r} selects its boundary by a predicate: a hard constraint needs "
                        f"named parts. Pass constraint=None to train {c.name!r} as a loss term{by_name}"
                    )
                used.append((c, domain._check_part(c.on)))
                per_field[field_name]["dirichlet"].append(c)
                enforces.append(c.name)
            elif isinstance(c, InitialValue):
                used.append((c, None))
                per_field[field_name]["initial"].append(c)
                enforces.append(c.name)
        if not enforces:
            raise ValueError(
                "a hard constraint needs at least one Dirichlet or InitialValue condition; without one, pass "
                "constraint=None (the conditions then stay in the loss)"
            )
        t_index = domain.time_index
        if t_index is not None:
            _check_compatible(domain, per_field)

        def boundary_part(x: torch.Tensor, f: str) -> tuple[torch.Tensor, torch.Tensor | None]:
            ds = per_field[f]["dirichlet"]
            if not ds:
                return torch.zeros_like(x[:, 0]), None
            phis = [domain.distance(x, c.on).clamp_min(torch.finfo(x.dtype).tiny ** 0.5) for c in ds]
            if len(ds) == 1:  # w = 1: (g/φ)/(1/φ) would lose g's derivatives to rounding near the boundary
                return _evaluate(ds[0].value, x, condition=ds[0]), phis[0]
            # w_k = Π_{j≠k} φ_j / Σ_i Π_{j≠i} φ_j: the same weights, without dividing by a vanishing φ
            # (in float32 the quotient form gave Laplacians of 300 at 1e-5 from an edge instead of 0)
            others = [math.prod(p for j, p in enumerate(phis) if j != k) for k in range(len(phis))]
            total = sum(others).clamp_min(torch.finfo(x.dtype).tiny)
            g = sum(_evaluate(c.value, x, condition=c) * w for c, w in zip(ds, others)) / total
            return g, math.prod(phis) / total

        def particular(x: torch.Tensor) -> torch.Tensor:
            out = []
            for f in fields:
                g, _ = boundary_part(x, f)
                initial = per_field[f]["initial"]
                if initial and t_index is not None:
                    x0 = x.clone()
                    x0[:, t_index] = domain.lower[t_index]
                    g = g + _evaluate(initial[0].value, x0, condition=initial[0]) - boundary_part(x0, f)[0]
                out.append(g if torch.is_tensor(g) else torch.full_like(x[:, 0], float(g)))
            return torch.stack(out, dim=1)

        def factor(x: torch.Tensor) -> torch.Tensor:
            out = []
            for f in fields:
                _, phi = boundary_part(x, f)
                h = torch.ones_like(x[:, 0]) if phi is None else phi
                if per_field[f]["initial"] and t_index is not None:
                    span = domain.upper[t_index] - domain.lower[t_index]
                    h = h * (x[:, t_index] - domain.lower[t_index]) / span
                out.append(h)
            return torch.stack(out, dim=1)

        def dirichlet_parts(f: str) -> tuple[str, ...] | None:
            ons = [c.on for c in per_field[f]["dirichlet"]]
            if any(on is None for on in ons):
                return None
            return tuple(p for on in ons for p in ((on,) if isinstance(on, str) else on))

        probe = torch.zeros(1, domain.ndim, dtype=torch.float64)
        has_corner = any(
            per_field[f]["dirichlet"] and domain.corner_factor(probe, dirichlet_parts(f)) is not None
            for f in fields
        )

        def corner(x: torch.Tensor) -> torch.Tensor:
            out = []
            for f in fields:
                psi = domain.corner_factor(x, dirichlet_parts(f)) if per_field[f]["dirichlet"] else None
                psi = torch.zeros_like(x[:, 0]) if psi is None else psi
                if per_field[f]["initial"] and t_index is not None:  # zero at t₀ too, like the factor
                    span = domain.upper[t_index] - domain.lower[t_index]
                    psi = psi * (x[:, t_index] - domain.lower[t_index]) / span
                out.append(psi)
            return torch.stack(out, dim=1)

        return cls(
            particular=particular,
            factor=factor,
            enforces=tuple(enforces),
            corner=corner if has_corner else None,
            origin=_origin(domain, fields, used),
        )


def _check_recipe_fields(recipe: object, counts: tuple[str, ...], positive: str) -> None:
    """Refuse a reference recipe whose ``counts`` are not integers ≥ 1 or whose ``positive`` field is not a
    finite number > 0, naming the field."""
    for name in counts:
        value = getattr(recipe, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{type(recipe).__name__}: `{name}` must be an integer ≥ 1, got {value!r}")
    value = getattr(recipe, positive)
    if not (_is_real(value) and value > 0):
        raise ValueError(f"{type(recipe).__name__}: `{positive}` must be a finite number > 0, got {value!r}")


@dataclass(frozen=True)
class SemilinearReference:
    """Recipe: a periodic semilinear spectral (ETDRK4) solve in one space dimension.

    The PDE is ``u_t = Σ_q a_q ∂_x^q u + Σ_{p≥1,q} c_{p,q} u^p ∂_x^q u`` on the problem's periodic
    x-interval, with the problem's initial value; ``terms(params)`` gives ``{(p, q): coefficient}`` (p = 0
    the linear part). The solve is periodic: Neumann or Robin conditions on the x faces are refused, Dirichlet
    ones are checked against the periodic solution's wall values at the saved times (they hold e.g. for an
    odd solution with zero walls), and without any condition on x the initial value must be periodic.

    Args:
        terms: the problem's coefficients -> the term dictionary.
        n_points: Fourier modes / grid points of the solve.
        dt: time step.
        n_times: saved times (evenly spaced, both ends included); the test grid uses them all.
        x_stride: keep every ``x_stride``-th grid point on the test grid.
    """

    terms: Callable[[Mapping[str, Any]], Mapping[tuple[int, int], float]]
    n_points: int = 512
    dt: float = 1e-4
    n_times: int = 101
    x_stride: int = 1

    def __post_init__(self) -> None:
        _check_recipe_fields(self, ("n_points", "n_times", "x_stride"), "dt")


@dataclass(frozen=True)
class NonlinearDiffusionReference:
    """Recipe: a fine finite-difference method-of-lines solve of ``u_t = D ∇·(u^m ∇u)`` on a box.

    Every spatial face needs Dirichlet data constant in time (not only zero; time-dependent data, Neumann,
    Robin or periodic conditions are refused). ``exponent=0`` is the heat equation ``u_t = D Δu``; an odd
    exponent needs a non-negative initial value (``u^m < 0`` is backward diffusion).

    Args:
        coefficient: name of the parameter holding ``D``.
        exponent: ``m``, a non-negative integer.
        n_intervals: grid intervals per side of the solve (vertex-centred, boundary nodes included).
        n_times: saved times (evenly spaced, both ends included).
        stride: keep every ``stride``-th node per side on the test grid.
        rtol: relative tolerance of the time integration.
    """

    coefficient: str = "D"
    exponent: int = 1
    n_intervals: int = 256
    n_times: int = 21
    stride: int = 4
    rtol: float = 1e-8

    def __post_init__(self) -> None:
        _check_recipe_fields(self, ("n_intervals", "n_times", "stride"), "rtol")
        m = self.exponent
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 0:
            raise ValueError(f"{type(self).__name__}: `exponent` must be a non-negative integer, got {m!r}")


@dataclass(frozen=True, eq=False)
class PDEProblem:
    """A PDE on a geometry with conditions, and optionally an exact solution or a reference recipe.

    A problem with neither trains all the same (a trainer reports losses and residual statistics);
    errors are computed once a reference is given (``Trainer(reference=...)`` or
    ``Trainer.evaluate(reference=...)``: a callable, arrays of points and values, or an ``.npz`` / HDF5
    file).

    Args:
        name: registry name (e.g. ``"helmholtz"``).
        domain: the space(-time) geometry (:class:`Box`, :class:`Ball`, :class:`Polygon`, set operations,
            ``shape.times(t0, t1)``); test grids cover its bounding box and errors are taken inside it.
        fields: names of the unknown fields (single words without ``_``), e.g. ``("u",)``.
        residual: ``residual(x, d, params)``; returns ``(n,)`` or ``(n, n_equations)`` that vanishes for the
            solution.
        conditions: boundary / initial / data conditions (unique ``name`` each): a tuple, or one Condition.
        params: coefficients passed to the residual (numbers; a trainer may swap in trainable tensors).
        exact: points ``(n, ndim)`` -> ``(n,)`` or ``(n, n_fields)``, in torch.
        reference: a recipe for a numerical reference when there is no exact solution (a user's own
            reference solution goes to ``Trainer(reference=...)`` instead).
        constraint: an optional hard-constraint output transform; ``"auto"`` builds one from the Dirichlet
            and initial-value conditions (:meth:`HardConstraint.from_conditions`).
        n_equations: number of residual components.
        test_shape: points per coordinate of the test grid for an exact solution (default:
            :func:`default_test_shape`, 1001, 201² or 41³ points, the grid a trainer uses for a callable
            reference).
        loss_weights: default weight per loss term (``"residual"`` and condition names; 1 when absent);
            ``"residual"`` may be a tuple of one weight per equation, ``(w_0, …, w_{k−1})``, which multiply
            the squared residual's columns (the residual term's own weight is then 1).
        description: one line for listings.
        citation: where the problem comes from.

    Raises:
        ValueError: bad names, ``params`` that are not finite real numbers (real, finite tensors, functions),
            duplicate condition names, weights for unknown terms, per-equation residual weights that are not
            ``n_equations`` finite numbers ≥ 0 (not all 0), a ``test_shape`` that does not have one entry ≥ 2
            per coordinate, Dirichlet conditions of one field that give different values on a common part of
            the boundary (of positive measure; sharing corners is fine), or (``constraint="auto"``) initial
            and Dirichlet data that disagree where they meet.
        TypeError: a domain, residual, ``params`` (not a dict) or condition of the wrong type
            (``conditions`` takes a Condition or a tuple of them), or a user's reference solution given as
            ``reference`` (it belongs to the trainer).

    Warns:
        UserWarning: a coordinate named ``"t"`` in a domain without a time coordinate (it is treated as
            space unless the domain is built with ``time="t"``).
    """

    name: str
    domain: Geometry
    fields: tuple[str, ...]
    residual: Residual
    conditions: tuple[Condition, ...] = ()
    params: Mapping[str, Any] = field(default_factory=dict)
    exact: Callable[[torch.Tensor], torch.Tensor] | None = None
    reference: SemilinearReference | NonlinearDiffusionReference | None = None
    constraint: HardConstraint | str | None = None
    n_equations: int = 1
    test_shape: tuple[int, ...] | None = None
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    description: str = ""
    citation: str = ""
    #: the constraint was built from the conditions (``"auto"``): :meth:`replace` builds it again
    constraint_from_conditions: bool = field(default=False, init=False, repr=False, compare=False)
    #: ``test_shape`` is the default grid (an exact solution without one): :meth:`replace` chooses it again
    test_shape_default: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("`name` must be a non-empty string")
        if not isinstance(self.domain, Geometry):
            raise TypeError(
                f"`domain` must be a sciml.problems.pde geometry (Box, Ball, Polygon, …), "
                f"got {type(self.domain).__name__}"
            )
        fields = (self.fields,) if isinstance(self.fields, str) else tuple(self.fields)
        if (
            not fields
            or any(not f.isidentifier() or "_" in f for f in fields)
            or len(set(fields)) < len(fields)
        ):
            raise ValueError(f"`fields` must be distinct names without '_', e.g. ('u',), got {self.fields!r}")
        if set(fields) & set(self.domain.names):
            raise ValueError(
                f"field names {fields} must differ from the coordinate names {self.domain.names}"
            )
        if not callable(self.residual):
            raise TypeError("`residual` must be callable as residual(x, d, params)")
        if not isinstance(self.params, Mapping):
            raise TypeError(
                f"`params` must be a dict of coefficients, e.g. params={{'D': 1e-3}}, got "
                f"{type(self.params).__name__}"
            )
        for key, value in self.params.items():
            _check_param(key, value)
        conditions = _as_conditions(self.conditions)
        for c in conditions:
            if not isinstance(c, Condition):
                raise TypeError(f"`conditions` must hold Condition objects, got {type(c).__name__}")
            c.validate(self.domain, fields)
            missing = [k for k in c.coefficient_names() if k not in self.params]
            if missing:
                raise ValueError(
                    f"condition {c.name!r} reads the coefficient(s) {missing}, which `params` "
                    f"({sorted(self.params)}) does not hold: add them, e.g. params={{{missing[0]!r}: 1.0}} "
                    "(the value, or the guess that Trainer(..., unknowns=...) starts from)"
                )
        names = [c.name for c in conditions]
        if len(set(names)) != len(names) or "residual" in names:
            clash = next((n for n in names if names.count(n) > 1), "residual")
            kind = type(next(c for c in conditions if c.name == clash)).__name__
            # a data-like name for conditions on fixed points, a boundary part's for the others
            example = {"Observations": "sensors", "PointCondition": "at_x0"}.get(kind, "left")
            raise ValueError(
                f"condition names must be unique and not 'residual' (they name the loss terms), got {names}: "
                f"give each condition its own `name`, e.g. {kind}(..., name={example!r}) instead of {clash!r}"
            )
        _check_overlaps(self.domain, conditions, fields)
        unknown = set(self.loss_weights) - {"residual", *names}
        if unknown:
            raise ValueError(
                f"`loss_weights` has unknown terms {sorted(unknown)}; terms are residual, {names}"
            )
        k = self.n_equations
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"`n_equations` must be a positive integer, got {self.n_equations!r}")
        weights = {
            key: _check_loss_weight(key, w, "loss_weights", self.n_equations, self.name)
            for key, w in self.loss_weights.items()
        }
        if self.reference is not None and (
            callable(self.reference) or isinstance(self.reference, (tuple, list, dict, str, os.PathLike))
            or hasattr(self.reference, "__array__")
        ):  # fmt: skip
            kind = type(self.reference).__name__
            raise TypeError(
                "`reference` takes a recipe that sciml.solvers computes a reference from "
                f"(SemilinearReference, NonlinearDiffusionReference, …), got {kind}; to measure errors "
                "against your own solution "
                "(a callable, arrays of points and values, or an .npz / HDF5 file) pass it as "
                "Trainer(problem, model, config, reference=...) or trainer.evaluate(reference=...)"
            )
        if self.test_shape is not None:
            _check_test_shape(self.test_shape, self.domain)
        if self.domain.time is None and "t" in self.domain.names:
            warnings.warn(
                f"{self.name}: the domain's coordinate 't' is treated as a space coordinate (no initial "
                "conditions, no time-marching or causal weighting); if it is time, build the domain with "
                "time='t', e.g. Box(('x', 't'), lower, upper, time='t') or Interval(a, b).times(t0, t1)",
                stacklevel=3,
            )
        if self.exact is not None and self.test_shape is None:  # the trainer's default grid
            object.__setattr__(self, "test_shape", default_test_shape(self.domain))
            object.__setattr__(self, "test_shape_default", True)
        if isinstance(self.constraint, str):
            if self.constraint != "auto":
                raise ValueError(
                    f"`constraint` takes a HardConstraint, None, or the string 'auto' (built from the "
                    f"Dirichlet and initial-value conditions), got {self.constraint!r}"
                )
            object.__setattr__(
                self, "constraint", HardConstraint.from_conditions(self.domain, conditions, fields)
            )
            object.__setattr__(self, "constraint_from_conditions", True)
        elif self.constraint is not None and not isinstance(self.constraint, HardConstraint):
            raise TypeError(
                f"`constraint` takes a HardConstraint, None or 'auto', got {type(self.constraint).__name__}"
            )
        if self.constraint is not None:
            missing = set(self.constraint.enforces) - set(names)
            if missing:
                raise ValueError(f"the constraint enforces unknown conditions {sorted(missing)}")
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "conditions", conditions)
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "loss_weights", weights)

    # ----------------------------------------------------------------- variants
    def replace(self, **changes: Any) -> PDEProblem:
        """A copy with some attributes changed (like Julia's ``remake``); validated again.

        ``params`` given as a dict is merged into the current parameters (to drop one, build anew). A hard
        constraint built from the conditions (``constraint="auto"``) is built again from the new domain and
        conditions.

        Raises:
            ValueError: the changes move the domain, the fields or a condition that a hand-written hard
                constraint builds in, without a new ``constraint`` (it would still impose the old data).
        """
        if "params" in changes:
            changes["params"] = {**self.params, **changes["params"]}
        if "conditions" in changes:
            changes["conditions"] = _as_conditions(changes["conditions"])
        if self.test_shape_default and "test_shape" not in changes:  # chosen again (for a new domain)
            changes["test_shape"] = None
        if "constraint" not in changes and self.constraint is not None:
            if self.constraint_from_conditions:
                changes["constraint"] = "auto"
            else:
                stale = self._constraint_moved_by(changes)
                if stale:
                    raise ValueError(
                        f"replace() changes the {stale} that the hard constraint of {self.name!r} builds in, "
                        "and the constraint would still impose the old ones: pass constraint= with one for "
                        "the new problem, constraint='auto' to build it from the Dirichlet and initial-value "
                        "conditions, or constraint=None to train with those conditions in the loss"
                    )
        return dataclasses.replace(self, **changes)

    def _constraint_moved_by(self, changes: Mapping[str, Any]) -> str:
        """What of the data that the (hand-written) constraint builds in ``changes`` alters ('' if none)."""
        moved = []
        for key in ("domain", "fields"):
            if key in changes and changes[key] != getattr(self, key):
                moved.append(key)
        if "conditions" in changes:
            enforced = set(self.constraint.enforces)
            old = {c.name: c for c in self.conditions if c.name in enforced}
            new = {c.name: c for c in changes["conditions"] if c.name in enforced}
            if old != new:
                moved.append(f"conditions {sorted(enforced)}")
        return " and ".join(moved)

    def condition(self, name: str) -> Condition:
        """The condition called ``name``.

        Raises:
            KeyError: no such condition (the message lists them).
        """
        for c in self.conditions:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no condition {name!r}; it has {[c.name for c in self.conditions]}")

    # ----------------------------------------------------------------- evaluation helpers
    def weight(self, term: str) -> float | tuple[float, ...]:
        """Default loss weight of ``term`` (1 unless set; a tuple of per-equation weights for the residual
        when ``loss_weights["residual"]`` is one)."""
        w = self.loss_weights.get(term, 1.0)
        return w if isinstance(w, tuple) else float(w)

    def exact_values(self, x: torch.Tensor) -> torch.Tensor:
        """The exact solution at ``x`` as ``(n, n_fields)``.

        A numpy array from ``exact`` is accepted (as float64). On more than a few points ``exact`` runs on a
        few of them first, so that one that broadcasts to ``(n, n)`` is refused before it fills memory.

        Raises:
            ValueError: the problem has no exact solution, or ``exact`` returns another shape than
                ``(n,)`` / ``(n, n_fields)``.
            TypeError: ``exact`` returns something that is not an array of numbers.
        """
        if self.exact is None:
            raise ValueError(
                f"{self.name} has no exact solution; compute its reference with sciml.solvers.fd"
            )
        k = len(self.fields)
        # a few points first (not k nor ndim of them: (m, m) is then no allowed shape): a broadcasting exact
        # would make an (n, n) tensor on the whole grid, gigabytes
        m = next(c for c in (5, 6, 7) if c not in (k, self.domain.ndim))
        if x.shape[0] > 4 * m:
            try:
                u = self._exact_tensor(x[:m])
            except Exception:  # noqa: BLE001 — an exact that fails on a few points fails below, on them all
                u = None
            # a dimension after the first that is m, or more values than points × fields: it grows with n
            if u is not None and ((u.ndim >= 2 and m in u.shape[1:]) or u.numel() > m * k):
                self._check_exact_shape(u, m)
        u = self._exact_tensor(x)
        self._check_exact_shape(u, x.shape[0])
        return u[:, None] if u.ndim == 1 else u

    def _exact_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """``exact(x)`` as a tensor (a numpy array or a list is taken as float64)."""
        u = self.exact(x)
        if not torch.is_tensor(u):  # a numpy array (DeepXDE style) or a list: taken as is
            try:
                u = torch.as_tensor(np.asarray(u, dtype=np.float64), device=x.device)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{self.name}: `exact` must return a tensor (n,) or (n, n_fields) of numbers, got "
                    f"{type(u).__name__}: {exc}"
                ) from None
        return u

    def _check_exact_shape(self, u: torch.Tensor, n: int) -> None:
        """Raise a ValueError unless ``u`` holds one value per point (of ``n``) and field."""
        allowed = value_shapes(n, len(self.fields))
        if tuple(u.shape) not in allowed:
            square = u.ndim >= 2 and u.shape[0] == u.shape[1] == n
            raise ValueError(
                f"{self.name}: `exact` returned shape {tuple(u.shape)} for {n} points {self.domain.names}; "
                "it "
                f"must return one value per point and field {self.fields}: "
                f"{' or '.join(str(a) for a in allowed)}" + (f"; {_BROADCAST_FIX}" if square else "")
            )

    def residual_of(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        params: Mapping[str, Any] | None = None,
    ) -> torch.Tensor:
        """The PDE residual of any function ``fn`` (points -> fields) at ``x``, by autograd: ``(n, n_eq)``."""
        d = AutogradDerivatives(fn, x, self.domain.names, self.fields)
        r = self.residual(d.x, d, {**self.params, **(params or {})})
        return r[:, None] if r.ndim == 1 else r

    def condition_residual_of(
        self, condition: Condition, fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor
    ) -> torch.Tensor:
        """A condition's residual for any function ``fn`` at ``x`` (by autograd)."""
        d = AutogradDerivatives(fn, x, self.domain.names, self.fields)
        return condition.residual(self.domain, d.x, d, self.params)

    def fingerprint(self) -> dict[str, Any]:
        """What determines a solution of this problem, comparable across processes (checkpoints key on it).

        Functions (the residual, condition data, the exact solution, a hard constraint) cannot be compared by
        identity across processes, so they are probed: their values for a fixed smooth test function at
        ``_PROBES`` fixed points of the domain (half as many on each condition's part), in float64, kept as a
        count, a hash and the first few (:func:`_digest`); a localized source that moves changes them. Data
        (``Observations``) are keyed on all their points and values: their shape and a SHA-256 hash of the
        float64 arrays (key ``"observations NAME"``); a ``PointCondition`` on all its points (key
        ``"points NAME"``).

        Returns:
            A dict of strings, numbers, lists and dicts (JSON-like).
        """
        g = torch.Generator().manual_seed(0)
        k = len(self.fields)
        scale = torch.arange(1, self.domain.ndim + 1, dtype=torch.float64)

        def smooth(x: torch.Tensor) -> torch.Tensor:  # a fixed test function, (n, k)
            phase = 0.3 * torch.arange(k, dtype=x.dtype) + 0.1
            wave = torch.sin(0.7 * (x * scale).sum(1, keepdim=True) + phase)
            return wave + 0.2 * (x**2).sum(1, keepdim=True)

        def probe(fn: Callable[[], Any]) -> dict[str, Any] | str:
            try:
                values = torch.as_tensor(fn()).detach().to("cpu", torch.float64).reshape(-1).numpy()
            except Exception as error:  # noqa: BLE001 — a probe that fails is part of the fingerprint
                return f"raises {type(error).__name__}"
            return _digest(values)

        inside = self.domain.sample(_PROBES, g, dtype=torch.float64)
        out: dict[str, Any] = {
            "name": self.name,
            "domain": repr(self.domain),
            "fields": list(self.fields),
            "params": {key: _stable_repr(v) for key, v in sorted(self.params.items())},
            "loss_weights": dict(sorted(self.loss_weights.items())),
            "probes": f"{_PROBES} points, sha256 of the float64 values to 8 significant digits",
            "constraint": None if self.constraint is None else self._constraint_probe(inside, probe),
            "residual": probe(lambda: self.residual_of(smooth, inside)),
            "exact": None if self.exact is None else probe(lambda: self.exact(inside)),
        }
        for c in self.conditions:

            def condition(c: Condition = c) -> torch.Tensor:
                x = c.sample(self.domain, _PROBES // 2, g, torch.float64)  # (fixed points: all of them)
                return self.condition_residual_of(c, smooth, x)

            out[f"condition {c.name}"] = [type(c).__name__, probe(condition)]
            if isinstance(c, (Observations, PointCondition)):  # every point (and value), not the probed ones
                data = hashlib.sha256()
                arrays = (c.points, c.values) if isinstance(c, Observations) else (c.points,)
                for array in (*arrays, c.std) if getattr(c, "std", None) is not None else arrays:
                    data.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
                m, k = c.points.shape
                digest = data.hexdigest()[:16]
                kind = "observations" if isinstance(c, Observations) else "points"
                out[f"{kind} {c.name}"] = f"{m} points of {k} coordinates, sha256 {digest}"
        return out

    def _constraint_probe(self, x: torch.Tensor, probe: Callable) -> list:
        c = self.constraint
        theta = {k: torch.tensor(float(v), dtype=torch.float64) for k, v in c.parameters.items()}
        particular, factor = c.bind(theta or None)
        return [sorted(c.enforces), probe(lambda: particular(x)), probe(lambda: factor(x))]

    def __repr__(self) -> str:
        return (
            f"PDEProblem({self.name!r}, coordinates={self.domain.names}, fields={self.fields}, "
            f"conditions={[c.name for c in self.conditions]}, params={self.params})"
        )

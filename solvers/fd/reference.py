"""Reference solutions of PDE problems on a test grid: exact, finite-difference, or spectral; cached.

:func:`reference_solution` dispatches on what the problem provides:

* an ``exact`` solution — evaluated on the problem's ``test_shape`` grid (float64);
* a :class:`~sciml.problems.pde.problem.NonlinearDiffusionReference` recipe — a fine finite-difference solve
  (:func:`sciml.solvers.fd.solve_nonlinear_diffusion`) from the initial value, with the Dirichlet data
  (constant in time: checked) on the walls of a box;
* a :class:`~sciml.problems.pde.problem.SemilinearReference` recipe — the periodic spectral ETDRK4 solve of
  :mod:`sciml.solvers.spectral` on :class:`sciml.problems.semilinear.SemilinearPeriodicProblem`; Dirichlet
  conditions on x are checked against its wall values.

Conditions a recipe cannot impose (Neumann, Robin, Dirichlet data that the solve would not satisfy) raise a
ValueError that names them, rather than giving a reference of another problem.

Numerical references are cached in HDF5 (:func:`sciml.solvers.cache.cached_arrays`) together with everything
they depend on — the recipe, the coefficients, and a hash of the initial values on the solver's grid — so
a changed problem is recomputed (with a warning if a stale file is found), never silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from sciml.problems.pde.conditions import Dirichlet, InitialValue, Neumann, Periodic, Robin
from sciml.problems.pde.derivatives import Derivatives, parse_key
from sciml.problems.pde.domain import Box
from sciml.problems.pde.problem import NonlinearDiffusionReference, PDEProblem, SemilinearReference
from sciml.solvers.cache import cached_arrays
from sciml.solvers.fd.nonlinear_diffusion import solve_nonlinear_diffusion

__all__ = ["ReferenceSolution", "reference_solution"]

#: bump when the finite-difference solver changes its results
FD_VERSION = 1
#: boundary data and periodic ends must agree to this fraction of the solution's largest magnitude
_WALL_RTOL = 1e-6
#: where a reference recipe does not fit the problem
_OWN_REFERENCE = "give your own reference via Trainer(reference=...)"


@dataclass(frozen=True, eq=False)
class ReferenceSolution:
    """Values of a problem's fields on a tensor grid.

    Attributes:
        axes: one increasing array per coordinate, in the domain's order.
        values: ``(*[len(a) for a in axes], n_fields)``.
        source: ``"exact"``, ``"finite-difference"`` or ``"spectral"``.
    """

    axes: tuple[np.ndarray, ...]
    values: np.ndarray
    source: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(a) for a in self.axes)

    def points(self) -> np.ndarray:
        """Grid points as rows ``(M, ndim)`` in C order of :attr:`values`."""
        mesh = np.meshgrid(*self.axes, indexing="ij")
        return np.stack([m.reshape(-1) for m in mesh], axis=1)

    def flat_values(self) -> np.ndarray:
        """Values as ``(M, n_fields)`` matching :meth:`points`."""
        return self.values.reshape(-1, self.values.shape[-1])


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()[:24]


def _value_at(problem: PDEProblem, value, space_points: np.ndarray, t) -> np.ndarray:
    """A condition's ``value`` (number, None or callable) at spatial points ``(..., n_space)`` and time(s)
    ``t`` (broadcast against the leading shape), shape ``space_points.shape[:-1]``."""
    domain = problem.domain
    lead = space_points.shape[:-1]
    full = np.zeros((int(np.prod(lead)), domain.ndim))
    space_columns = [domain.index(n) for n in domain.space_names]
    full[:, space_columns] = space_points.reshape(-1, len(space_columns))
    full[:, domain.time_index] = np.broadcast_to(t, lead).reshape(-1)
    if callable(value):
        out = value(torch.as_tensor(full, dtype=torch.float64))
        out = np.asarray(out.detach() if torch.is_tensor(out) else out, dtype=np.float64)
    else:
        out = np.full(full.shape[0], 0.0 if value is None else float(value))
    return out.reshape(lead)


def _initial_values(problem: PDEProblem, space_points: np.ndarray) -> np.ndarray:
    """The problem's initial value at spatial points ``(..., n_space)`` (time column set to t0)."""
    initial = [c for c in problem.conditions if isinstance(c, InitialValue)]
    if len(initial) != 1:
        raise ValueError(
            f"{problem.name}: a time-dependent reference needs exactly one InitialValue condition"
        )
    domain = problem.domain
    return _value_at(problem, initial[0].value, space_points, domain.lower[domain.time_index])


def _require_box(problem: PDEProblem, recipe: str) -> None:
    """Raise a ValueError naming ``recipe`` when the problem's domain is not a box (space × time)."""
    if not isinstance(problem.domain, Box):
        raise ValueError(
            f"{problem.name}: the {recipe} reference needs a box domain (space × time), not "
            f"{type(problem.domain).__name__}; {_OWN_REFERENCE}"
        )


def _faces(problem: PDEProblem, condition, recipe: str) -> tuple[str, ...]:
    """The box faces a boundary condition's ``on`` names (all of them for ``None``).

    Raises:
        ValueError: the domain is not a box, or ``on`` is a predicate (naming the condition and ``recipe``).
    """
    domain = problem.domain
    _require_box(problem, recipe)
    if callable(condition.on):
        raise ValueError(
            f"{problem.name}: condition {condition.name!r} selects its points by a predicate; the {recipe} "
            f"reference needs box faces such as on=('x-', 'x+'); {_OWN_REFERENCE}"
        )
    return domain.faces() if condition.on is None else domain._faces_of(condition.on)


def _with_dirichlet_walls(problem: PDEProblem, nodes: np.ndarray, u0: np.ndarray) -> np.ndarray:
    """``u0`` with its boundary nodes set to the problem's Dirichlet data (constant in time).

    Raises:
        ValueError: a spatial face without Dirichlet data (the finite-difference solve needs them all), a
            Neumann, Robin or Periodic condition, Dirichlet data that vary in time or are selected by a
            predicate, or a domain that is not a box.
    """
    domain = problem.domain
    what = "nonlinear-diffusion"
    for c in problem.conditions:
        if isinstance(c, (Neumann, Robin, Periodic)):
            raise ValueError(
                f"{problem.name}: the {what} reference holds Dirichlet data on every wall; it cannot impose "
                f"{type(c).__name__} condition {c.name!r}; {_OWN_REFERENCE}"
            )
    u0 = u0.copy()
    covered = set()
    t0, t1 = domain.lower[domain.time_index], domain.upper[domain.time_index]
    times = np.linspace(t0, t1, 5)
    for c in problem.conditions:
        if not isinstance(c, Dirichlet):
            continue
        for face in _faces(problem, c, what):
            axis, upper = domain.parse_face(face)
            k = domain.space_names.index(domain.names[axis])
            index = [slice(None)] * (u0.ndim)
            index[k] = -1 if upper else 0
            pts = nodes[tuple(index)]
            at_times = np.broadcast_to(pts, (times.size, *pts.shape))
            data = _value_at(problem, c.value, at_times, times.reshape((-1,) + (1,) * (pts.ndim - 1)))
            change = np.abs(data - data[0]).max()
            if change > _WALL_RTOL * max(np.abs(u0).max(), np.abs(data).max()):
                raise ValueError(
                    f"{problem.name}: the {what} reference holds the Dirichlet data constant in time, but "
                    f"condition {c.name!r} changes by up to {change:.3g} on {face} over t in "
                    f"[{t0:g}, {t1:g}]; {_OWN_REFERENCE}"
                )
            u0[tuple(index)] = data[0]
            covered.add(face)
    missing = set(domain.faces()) - covered
    if missing:
        raise ValueError(
            f"{problem.name}: the finite-difference reference needs Dirichlet data on {sorted(missing)}"
        )
    return u0


def _recipe_params(recipe) -> dict:
    params = {}
    for f in dataclasses.fields(recipe):
        value = getattr(recipe, f.name)
        if not callable(value):
            params[f.name] = value
    return params


def _exact(problem: PDEProblem) -> ReferenceSolution:
    """The exact solution on the test grid.

    Raises:
        ValueError: ``exact`` returns another shape than one value per grid point and field.
        TypeError: ``exact`` returns no array of numbers (a numpy array is accepted).
    """
    axes = problem.domain.axes(problem.test_shape)
    mesh = np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    with torch.no_grad():  # (exact_values checks the shape and takes numpy arrays too)
        values = problem.exact_values(torch.as_tensor(mesh, dtype=torch.float64)).detach().cpu().numpy()
    return ReferenceSolution(axes, values.reshape(*problem.test_shape, -1), "exact")


#: a residual is the recipe's PDE when it matches a multiple of it to this relative misfit (float32 rounding
#: of a correct residual gives ~1e-7; the mismatches refused are ~1e-1)
_RESIDUAL_RTOL = 1e-5


class _Probe(Derivatives):
    """Random values for every field and derivative a residual looks up (the same values again for the
    same key), at random points of the domain."""

    def __init__(self, problem: PDEProblem, rng: np.random.Generator, n: int = 16) -> None:
        domain = problem.domain
        lo, hi = np.asarray(domain.lower), np.asarray(domain.upper)
        super().__init__(torch.as_tensor(lo + (hi - lo) * rng.random((n, domain.ndim))), domain.names,
                         problem.fields)  # fmt: skip
        self._rng, self._values = rng, {}
        #: the keys looked up since the last clear, by (field, dims)
        self.looked_up: dict[tuple[int, tuple[int, ...]], str] = {}

    def __getitem__(self, key: str) -> torch.Tensor:
        kind, index, dims = parse_key(key, self.names, self.fields)
        if kind == "coordinate":
            return self.x[:, index]
        self.looked_up.setdefault((index, dims), key)
        if (index, dims) not in self._values:  # fields in [0.5, 1.5] (powers of u stay real), derivatives ±1
            low, high = (-1.0, 1.0) if dims else (0.5, 1.5)
            self._values[(index, dims)] = torch.as_tensor(self._rng.uniform(low, high, self.x.shape[0]))
        return self._values[(index, dims)]


def _residual_misfit(problem: PDEProblem, rhs) -> tuple[float, list[str]]:
    """How far ``problem.residual`` is from ``λ·(u_t − rhs(d))`` for the best constant ``λ ≠ 0``, on random
    probes ``d`` of the fields and any derivative the residual looks up (relative; 0 for a match, inf for
    ``λ = 0`` or a residual of another size), and the keys the residual looked up that the PDE lacks."""
    d = _Probe(problem, np.random.default_rng(0))
    with torch.no_grad():
        r = torch.as_tensor(problem.residual(d.x, d, problem.params), dtype=torch.float64).reshape(-1)
        by_residual = dict(d.looked_up)
        d.looked_up.clear()
        g = d[f"{problem.fields[0]}_{problem.domain.time}"] - rhs(d)
    extra = [key for canonical, key in by_residual.items() if canonical not in d.looked_up]
    if r.shape != g.shape:
        return math.inf, extra
    lam = float(r @ g / (g @ g))
    if lam == 0:
        return math.inf, extra
    return float((r - lam * g).abs().max() / max(float(r.abs().max()), 1e-300)), extra


def _check_residual(problem: PDEProblem, recipe: str, equation: str, rhs, hint=lambda: "") -> None:
    """Raise a ValueError when the problem's residual is not a multiple of ``equation`` (see
    :func:`_residual_misfit`; ``hint()``, computed only then, ends the message's first part); warn, and
    leave it unchecked, when the residual cannot be evaluated on plain tensors."""
    try:
        misfit, extra = _residual_misfit(problem, rhs)
    except Exception as error:  # noqa: BLE001 - a residual the probe cannot run; the user's code decides
        warnings.warn(
            f"{problem.name}: the {recipe} reference could not check the residual against its PDE "
            f"{equation} ({type(error).__name__}: {error}); make sure they are the same equation",
            stacklevel=4,
        )
        return
    if misfit > _RESIDUAL_RTOL:
        uses = f"; the residual uses {', '.join(extra)}, which that PDE does not contain" if extra else ""
        raise ValueError(
            f"{problem.name}: the residual is not {equation} (times a constant), the PDE the {recipe} "
            f"reference solves (relative misfit {misfit:.3g} on random probes){hint()}{uses}; fix the "
            f"recipe, or {_OWN_REFERENCE}"
        )


def _check_nonlinear_diffusion_residual(problem: PDEProblem, recipe: NonlinearDiffusionReference) -> None:
    """The residual must be ``λ·(u_t − D ∇·(u^m ∇u))``; the message names an exponent that would fit."""
    u, space = problem.fields[0], problem.domain.space_names
    D = float(problem.params[recipe.coefficient])

    def rhs(m):  # D ∇·(u^m ∇u) = D (m u^(m-1) |∇u|² + u^m Δu); m = 0: D Δu (no first derivatives)
        def gradient(d, x):
            return m * d[u] ** (m - 1) * d[f"{u}_{x}"] ** 2 if m else 0

        return lambda d: D * sum(gradient(d, x) + d[u] ** m * d[f"{u}_{x}{x}"] for x in space)

    m = int(recipe.exponent)

    def hint() -> str:  # another exponent that fits, asked only once the recipe's own does not
        fits = [k for k in range(5) if k != m and _residual_misfit(problem, rhs(k))[0] <= _RESIDUAL_RTOL]
        if not fits:
            return ""
        return f": it fits exponent={fits[0]}" + (" (a heat equation)" if fits[0] == 0 else "")

    equation = f"{u}_t - {recipe.coefficient}*div({u}^{m} grad {u})"
    _check_residual(problem, "nonlinear-diffusion", equation, rhs(m), hint)


def _check_semilinear_residual(problem: PDEProblem, terms: dict) -> None:
    """The residual must be ``λ·(u_t − Σ c_{p,q} u^p ∂_x^q u)`` for the recipe's terms."""
    from sciml.problems.semilinear import _check_key, term_name

    u, x = problem.fields[0], problem.domain.space_names[0]
    pairs = {_check_key(k): float(c) for k, c in terms.items()}

    def rhs(d):
        return sum(c * d[u] ** p * (d[f"{u}_{x * q}"] if q else d[u]) for (p, q), c in pairs.items())

    equation = f"{u}_t - (" + " + ".join(f"{c:g}*{term_name(*k)}" for k, c in pairs.items()) + ")"
    _check_residual(problem, "semilinear", equation, rhs)


def _nonlinear_diffusion(
    problem: PDEProblem, recipe: NonlinearDiffusionReference, directory, progress: bool
) -> ReferenceSolution:
    domain = problem.domain
    _require_box(problem, "nonlinear-diffusion")
    if domain.time is None or domain.ndim < 2:
        raise ValueError(f"{problem.name}: a nonlinear-diffusion reference needs space and time coordinates")
    if recipe.coefficient not in problem.params:
        raise ValueError(
            f"{problem.name}: the recipe's coefficient {recipe.coefficient!r} is not in `params`"
        )
    _check_nonlinear_diffusion_residual(problem, recipe)
    space = [domain.index(n) for n in domain.space_names]
    t_index = domain.time_index
    n = int(recipe.n_intervals)
    if n < 2 or n % recipe.stride:
        raise ValueError(f"`n_intervals` ({n}) must be ≥ 2 and a multiple of `stride` ({recipe.stride})")
    lower = tuple(domain.lower[i] for i in space)
    upper = tuple(domain.upper[i] for i in space)
    node_axes = [np.linspace(lo, hi, n + 1) for lo, hi in zip(lower, upper)]
    nodes = np.stack(np.meshgrid(*node_axes, indexing="ij"), axis=-1)
    u0 = _with_dirichlet_walls(problem, nodes, _initial_values(problem, nodes))
    if recipe.exponent % 2 and u0.min() < -_WALL_RTOL * np.abs(u0).max():
        where = ", ".join(f"{v:.4g}" for v in nodes[np.unravel_index(np.argmin(u0), u0.shape)])
        raise ValueError(
            f"{problem.name}: the initial value has minimum {u0.min():.3g} (at ({where})); with the "
            f"odd exponent {recipe.exponent}, u^m < 0 is backward diffusion (ill-posed): use a non-negative "
            f"initial value, an even exponent, or {_OWN_REFERENCE}"
        )
    times = np.linspace(domain.lower[t_index], domain.upper[t_index], int(recipe.n_times))
    coefficient = float(problem.params[recipe.coefficient])
    params = {
        "method": "fd-mol-dop853",
        "version": FD_VERSION,
        "recipe": _recipe_params(recipe),
        "coefficient_value": coefficient,
        "lower": list(lower),
        "upper": list(upper),
        "times": [float(times[0]), float(times[-1]), int(times.size)],
        "u0_sha256": _digest(u0),
    }

    def compute() -> dict[str, np.ndarray]:
        u = solve_nonlinear_diffusion(
            u0,
            lower,
            upper,
            times,
            coefficient=coefficient,
            exponent=recipe.exponent,
            rtol=recipe.rtol,
            progress=progress,
        )
        return {"t": times, "u": u}

    arrays = cached_arrays(f"pde-{problem.name}", params, compute, directory=directory)
    s = recipe.stride
    sub = (slice(None),) + (slice(None, None, s),) * len(space)
    u = arrays["u"][sub]  # (T, nx, ny)
    # reorder to the domain's coordinate order: time axis goes to t_index
    u = np.moveaxis(u, 0, t_index)
    axes = [None] * domain.ndim
    for k, i in enumerate(space):
        axes[i] = node_axes[k][::s]
    axes[t_index] = arrays["t"]
    return ReferenceSolution(tuple(axes), u[..., None], "finite-difference")


def _periodic_walls(problem: PDEProblem, x0: float, x1: float, u0: np.ndarray) -> list:
    """The Dirichlet conditions (with their faces) a periodic solve must be checked against.

    Raises:
        ValueError: a Neumann or Robin condition, or with no condition on x at all, an initial value that is
            not periodic.
    """
    dirichlet = []
    for c in problem.conditions:
        if isinstance(c, (Neumann, Robin)):
            raise ValueError(
                f"{problem.name}: the semilinear reference solves periodically; it cannot impose "
                f"{type(c).__name__} condition {c.name!r} on {_faces(problem, c, 'semilinear')}: use a "
                f"periodic problem, or {_OWN_REFERENCE}"
            )
        if isinstance(c, Dirichlet):
            dirichlet.append((c, _faces(problem, c, "semilinear")))
    if not dirichlet and not any(isinstance(c, Periodic) for c in problem.conditions):
        ends = _initial_values(problem, np.array([[x0], [x1]]))
        if abs(ends[1] - ends[0]) > _WALL_RTOL * max(np.abs(u0).max(), np.abs(ends).max()):
            raise ValueError(
                f"{problem.name}: the semilinear reference solves periodically, but the initial value is not "
                f"periodic: u0({x0:g}) = {ends[0]:.6g}, u0({x1:g}) = {ends[1]:.6g}; add a Periodic condition "
                f"with a periodic initial value, or {_OWN_REFERENCE}"
            )
    return dirichlet


def _check_dirichlet_walls(problem: PDEProblem, dirichlet: list, ends, times: np.ndarray, u: np.ndarray):
    """Check Dirichlet data on the x faces against the periodic solution ``u`` ``(T, n)`` at its ends
    (``u[:, 0]`` at both).

    Raises:
        ValueError: they disagree by more than ``_WALL_RTOL · max|u|`` (naming the condition, where, by how
            much).
    """
    scale = np.abs(u).max()
    for c, faces in dirichlet:
        for face in faces:
            wall = ends[problem.domain.parse_face(face)[1]]
            data = _value_at(problem, c.value, np.full((times.size, 1), wall), times)
            miss = np.abs(data - u[:, 0])
            if miss.max() > _WALL_RTOL * max(scale, np.abs(data).max()):
                k = int(np.argmax(miss))
                raise ValueError(
                    f"{problem.name}: Dirichlet condition {c.name!r} does not hold for the periodic solution "
                    f"of the semilinear reference: on {face} (x = {wall:g}) at t = {times[k]:.4g} the data "
                    f"are {data[k]:.6g}, the solution {u[k, 0]:.6g} (largest disagreement {miss[k]:.3g}, "
                    f"max|u| = {scale:.3g}); use a periodic problem, or {_OWN_REFERENCE}"
                )


def _semilinear(
    problem: PDEProblem, recipe: SemilinearReference, directory, progress: bool
) -> ReferenceSolution:
    try:
        from sciml.problems.semilinear import SemilinearPeriodicProblem
        from sciml.solvers.spectral import cached_solve
    except ImportError as exc:  # pragma: no cover - depends on the spectral package being present
        raise ImportError(f"{problem.name}'s reference needs sciml.solvers.spectral (ETDRK4): {exc}") from exc
    domain = problem.domain
    if domain.time is None or domain.ndim != 2:
        raise ValueError(f"{problem.name}: a semilinear reference needs one space and one time coordinate")
    x_index = domain.index(domain.space_names[0])
    t_index = domain.time_index
    x0, x1 = domain.lower[x_index], domain.upper[x_index]
    t0, t1 = domain.lower[t_index], domain.upper[t_index]
    n = int(recipe.n_points)
    x = x0 + (x1 - x0) * np.arange(n) / n
    u0 = _initial_values(problem, x[:, None])
    dirichlet = _periodic_walls(problem, x0, x1, u0)
    terms = dict(recipe.terms(problem.params))
    _check_semilinear_residual(problem, terms)
    semilinear = SemilinearPeriodicProblem(
        terms,
        n=n,
        x0=x0,
        length=x1 - x0,
        u0=u0,
        t_span=(t0, t1),
        name=f"pde-{problem.name}",
    )
    times = np.linspace(t0, t1, int(recipe.n_times))
    arrays = cached_solve(semilinear, recipe.dt, times, directory=directory, progress=progress)
    u = np.asarray(arrays["u"])  # (T, n)
    if not np.isfinite(u).all():
        raise FloatingPointError(
            f"{problem.name}: the spectral reference is not finite; refine dt or n_points"
        )
    _check_dirichlet_walls(problem, dirichlet, (x0, x1), np.asarray(arrays["t"]), u)
    u = u[:, :: recipe.x_stride]  # (T, nx)
    values = u.T if x_index == 0 else u  # to the domain's (x, t) order
    axes = [None, None]
    axes[x_index] = x[:: recipe.x_stride]
    axes[t_index] = np.asarray(arrays["t"])
    return ReferenceSolution(tuple(axes), values[..., None], "spectral")


def reference_solution(
    problem: PDEProblem, *, directory: str | os.PathLike | None = None, progress: bool = False
) -> ReferenceSolution:
    """The reference for ``problem`` on its test grid (see the module docstring).

    Args:
        problem: the PDE problem.
        directory: cache directory override (default ``$SCIML_CACHE_DIR`` or ``~/.cache/sciml``).
        progress: show a tqdm bar while a numerical reference is computed.

    Raises:
        ValueError: the problem's recipe does not fit its domain or parameters.
        TypeError: an unknown recipe type.
    """
    if problem.exact is not None:
        return _exact(problem)
    recipe = problem.reference
    if isinstance(recipe, NonlinearDiffusionReference):
        return _nonlinear_diffusion(problem, recipe, directory, progress)
    if isinstance(recipe, SemilinearReference):
        return _semilinear(problem, recipe, directory, progress)
    from sciml.problems.pde.singular import TransonicReference

    if isinstance(recipe, TransonicReference):  # Michel accretion: sciml.solvers.ode.singular
        from sciml.solvers.ode.singular import transonic_reference

        axes, values = transonic_reference(problem, recipe, directory)
        return ReferenceSolution(axes, values, "invariants")
    from sciml.problems.pde.singular import KhrononReference

    if isinstance(recipe, KhrononReference):
        from sciml.solvers.ode.singular import khronon_reference

        axes, values = khronon_reference(problem, recipe, directory)
        return ReferenceSolution(axes, values, "shooting")
    raise TypeError(f"{problem.name}: no solver for a reference recipe of type {type(recipe).__name__}")

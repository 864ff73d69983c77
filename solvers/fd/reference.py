"""Reference solutions of PDE problems on a test grid: exact, finite-difference, or spectral; cached.

:func:`reference_solution` dispatches on what the problem provides:

* an ``exact`` solution — evaluated on the problem's ``test_shape`` grid (float64);
* a :class:`~sciml.problems.pde.problem.NonlinearDiffusionReference` recipe — a fine finite-difference solve
  (:func:`sciml.solvers.fd.solve_nonlinear_diffusion`) from the initial value, with the Dirichlet data
  (taken at
  the initial time, held constant) on the walls;
* a :class:`~sciml.problems.pde.problem.SemilinearReference` recipe — the periodic spectral ETDRK4 solve of
  :mod:`sciml.solvers.spectral` on :class:`sciml.problems.semilinear.SemilinearPeriodicProblem`.

Numerical references are cached in HDF5 (:func:`sciml.solvers.cache.cached_arrays`) together with everything
they depend on — the recipe, the coefficients, and a hash of the initial values on the solver's grid — so
a changed problem is recomputed (with a warning if a stale file is found), never silently reused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass

import numpy as np
import torch
from sciml.problems.pde.conditions import Dirichlet, InitialValue
from sciml.problems.pde.problem import NonlinearDiffusionReference, PDEProblem, SemilinearReference
from sciml.solvers.cache import cached_arrays
from sciml.solvers.fd.nonlinear_diffusion import solve_nonlinear_diffusion

__all__ = ["ReferenceSolution", "reference_solution"]

#: bump when the finite-difference solver changes its results
FD_VERSION = 1


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


def _initial_values(problem: PDEProblem, space_points: np.ndarray) -> np.ndarray:
    """The problem's initial value at spatial points ``(..., n_space)`` (time column set to t0)."""
    initial = [c for c in problem.conditions if isinstance(c, InitialValue)]
    if len(initial) != 1:
        raise ValueError(
            f"{problem.name}: a time-dependent reference needs exactly one InitialValue condition"
        )
    domain = problem.domain
    lead = space_points.shape[:-1]
    full = np.zeros((int(np.prod(lead)), domain.ndim))
    space_columns = [domain.index(n) for n in domain.space_names]
    full[:, space_columns] = space_points.reshape(-1, len(space_columns))
    full[:, domain.time_index] = domain.lower[domain.time_index]
    value = initial[0].value
    if callable(value):
        out = value(torch.as_tensor(full, dtype=torch.float64))
        out = np.asarray(out.detach() if torch.is_tensor(out) else out, dtype=np.float64)
    else:
        out = np.full(full.shape[0], 0.0 if value is None else float(value))
    return out.reshape(lead)


def _with_dirichlet_walls(problem: PDEProblem, nodes: np.ndarray, u0: np.ndarray) -> np.ndarray:
    """``u0`` with its boundary nodes set to the problem's Dirichlet data at the initial time.

    Raises:
        ValueError: a spatial face without Dirichlet data (the finite-difference solve needs them all).
    """
    domain = problem.domain
    u0 = u0.copy()
    covered = set()
    for c in problem.conditions:
        if not isinstance(c, Dirichlet):
            continue
        faces = domain.faces() if c.on is None else tuple([c.on] if isinstance(c.on, str) else c.on)
        for face in faces:
            axis, upper = domain.parse_face(face)
            k = domain.space_names.index(domain.names[axis])
            index = [slice(None)] * (u0.ndim)
            index[k] = -1 if upper else 0
            pts = nodes[tuple(index)]
            full = np.zeros((int(np.prod(pts.shape[:-1])), domain.ndim))
            full[:, [domain.index(n) for n in domain.space_names]] = pts.reshape(-1, pts.shape[-1])
            full[:, domain.time_index] = domain.lower[domain.time_index]
            value = c.value
            if callable(value):
                out = value(torch.as_tensor(full, dtype=torch.float64))
                out = np.asarray(out.detach() if torch.is_tensor(out) else out, dtype=np.float64)
            else:
                out = np.full(full.shape[0], 0.0 if value is None else float(value))
            u0[tuple(index)] = out.reshape(pts.shape[:-1])
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


def _nonlinear_diffusion(
    problem: PDEProblem, recipe: NonlinearDiffusionReference, directory, progress: bool
) -> ReferenceSolution:
    domain = problem.domain
    if domain.time is None or domain.ndim < 2:
        raise ValueError(f"{problem.name}: a nonlinear-diffusion reference needs space and time coordinates")
    if recipe.coefficient not in problem.params:
        raise ValueError(
            f"{problem.name}: the recipe's coefficient {recipe.coefficient!r} is not in `params`"
        )
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
    semilinear = SemilinearPeriodicProblem(
        dict(recipe.terms(problem.params)),
        n=n,
        x0=x0,
        length=x1 - x0,
        u0=u0,
        t_span=(t0, t1),
        name=f"pde-{problem.name}",
    )
    times = np.linspace(t0, t1, int(recipe.n_times))
    arrays = cached_solve(semilinear, recipe.dt, times, directory=directory, progress=progress)
    u = np.asarray(arrays["u"])[:, :: recipe.x_stride]  # (T, nx)
    if not np.isfinite(u).all():
        raise FloatingPointError(
            f"{problem.name}: the spectral reference is not finite; refine dt or n_points"
        )
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

"""ETDRK4 trajectories cached in HDF5 with the parameters that produced them.

A reference (a "truth" run of Kuramoto–Sivashinsky, an Allen–Cahn or Burgers reference for the PINN
suite) is computed once and stored through :func:`sciml.solvers.cache.cached_arrays`; the stored parameters
hold every term and coefficient, the grid, a hash of the initial state and of the save times, the step and
the method, so a cache made for another problem is never reused.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
import torch
from sciml.problems.semilinear import SemilinearPeriodicProblem, term_name
from sciml.solvers.cache import cached_arrays
from sciml.solvers.spectral.etdrk4 import solve_spectral

__all__ = ["cached_solve", "problem_parameters"]

#: bump when the integrator changes in a way that changes its results
SOLVER_VERSION = 1


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float64).tobytes()).hexdigest()[:24]


def problem_parameters(problem: SemilinearPeriodicProblem) -> dict:
    """A JSON-serialisable description of ``problem`` (terms, grid, a hash of ``u0``, time span)."""
    return {
        "terms": {term_name(p, q): c for (p, q), c in problem.terms.items()},
        "n": problem.n,
        "x0": problem.x0,
        "length": problem.length,
        "t_span": list(problem.t_span),
        "u0_sha256": _digest(problem.initial_condition()),
    }


def cached_solve(
    problem: SemilinearPeriodicProblem,
    dt: float,
    saveat: np.ndarray | list[float],
    *,
    dealias: bool = False,
    directory: str | os.PathLike | None = None,
    progress: bool | str = True,
) -> dict[str, np.ndarray]:
    """``{"t": save times, "u": states (T, n)}`` of an ETDRK4 solve of ``problem``, from the HDF5 cache.

    Args:
        problem: the PDE (starting at ``t_span[0]`` from its initial condition).
        dt: the ETDRK4 step; the save times must lie on its grid.
        saveat: increasing save times.

    Other Args:
        dealias: see :class:`sciml.solvers.spectral.ETDRK4`.
        directory: overrides the cache directory (``$SCIML_CACHE_DIR`` or ``~/.cache/sciml``).
        progress: show a tqdm bar while computing; a string is its description.

    Raises:
        ValueError: for save times off the step grid (see :func:`solve_spectral`).
        FloatingPointError: the solution blew up.
    """
    saveat = np.asarray(saveat, dtype=np.float64)
    params = {
        "method": "etdrk4",
        "version": SOLVER_VERSION,
        "dt": float(dt),
        "dealias": bool(dealias),
        "contour_points": 16,
        "problem": problem_parameters(problem),
        "saveat_sha256": _digest(saveat),
        "n_saveat": int(saveat.size),
        "saveat_range": [float(saveat.min()), float(saveat.max())] if saveat.size else [],
    }

    def compute() -> dict[str, np.ndarray]:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one trajectory of 1024 points: threads only add overhead
        try:
            solution = solve_spectral(problem, dt, saveat=saveat, dealias=dealias, progress=progress)
        finally:
            torch.set_num_threads(threads)
        return {"t": solution.ts, "u": solution.us.numpy()}

    name = f"spectral-{problem.name}".replace("/", "-").replace(" ", "-")
    return cached_arrays(name, params, compute, directory=directory)

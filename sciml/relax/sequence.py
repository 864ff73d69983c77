"""Running a relaxation policy over a sequence of systems, and the baselines every tuner is measured against.

Shared by ``sciml relax`` (a user's folder of systems) and ``sciml bench relax``. A sequence is a list of
:class:`~sciml.problems.linear.sequences.LinearInstance`; the solver is ``"sor"`` or ``"ssor-pcg"``.

Baselines (all on the same systems, same tolerance):

* ``omega=1`` — Gauss–Seidel (SOR) / symmetric Gauss–Seidel preconditioning (SSOR-PCG);
* ``young-estimated`` — Young's ω from the Jacobi spectral radius *estimated* per system by Lanczos
  (:func:`~sciml.solvers.linear.estimate_jacobi_spectrum`; its cost is in the wall time);
* ``best-fixed`` — the single ω of a fine grid with the least total iterations, in hindsight;
* ``instance-optimal`` — per system the least iterations over the fine grid *and* over every ω any method
  used on it, so no method can beat it on any system.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from sciml.problems.linear.sequences import LinearInstance
from sciml.relax.bandits import TsallisINF, default_arms
from sciml.relax.contextual import ChebCB
from sciml.relax.prior import SOLVERS, PriorTuner
from sciml.solvers.linear import (
    LinearSolveResult,
    SolveStatus,
    cg,
    estimate_jacobi_spectrum,
    sor,
    sor_batch,
    ssor_preconditioner,
    young_omega,
)

__all__ = [
    "Run",
    "solve_fixed",
    "run_fixed",
    "run_young",
    "run_prior",
    "run_bandit",
    "grid_table",
    "summarise",
]

Run = dict  # {"iterations": (T,) ints, "omega": (T,) floats, "seconds": float, ...}


class _Solver:
    """One solver (SOR or SSOR-PCG) with the SSOR preconditioner kept across calls."""

    def __init__(self, solver: str) -> None:
        if solver not in SOLVERS:
            raise ValueError(f"`solver` must be one of {SOLVERS}, got {solver!r}")
        self.solver, self.M = solver, None

    def __call__(self, inst: LinearInstance, omega: float, rtol: float, maxiter: int) -> LinearSolveResult:
        if self.solver == "sor":
            return sor(inst.A, inst.b, omega, inst.x0, rtol=rtol, maxiter=maxiter)
        self.M = ssor_preconditioner(inst.A, omega) if self.M is None else self.M.update(inst.A, omega)
        return cg(inst.A, inst.b, inst.x0, rtol=rtol, maxiter=maxiter, M=self.M)


def solve_fixed(
    inst: LinearInstance, solver: str, omega: float, rtol: float, maxiter: int
) -> LinearSolveResult:
    """One solve of ``inst`` with a fixed ``omega``."""
    return _Solver(solver)(inst, omega, rtol, maxiter)


def _loop(systems, desc, progress, body) -> Run:
    T = len(systems)
    its, omegas = np.zeros(T, dtype=np.int64), np.zeros(T)
    converged = np.zeros(T, dtype=bool)
    start, cpu = time.perf_counter(), time.process_time()
    for t in tqdm(range(T), desc=desc, leave=False, disable=not progress):
        omega, res = body(t, systems[t])
        its[t], omegas[t], converged[t] = res.iterations, omega, res.converged
    return {
        "iterations": its,
        "omega": omegas,
        "converged": converged,
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,  # this process only: robust on a shared machine
    }


def run_fixed(
    systems: Sequence[LinearInstance],
    solver: str,
    omega: float | np.ndarray,
    *,
    rtol: float,
    maxiter: int,
    desc: str = "",
    progress: bool = False,
) -> Run:
    """Every system with ``omega`` (a number, or one per system)."""
    omegas = np.broadcast_to(np.asarray(omega, dtype=np.float64), (len(systems),))
    run = _Solver(solver)
    return _loop(systems, desc, progress, lambda t, inst: (omegas[t], run(inst, omegas[t], rtol, maxiter)))


def run_young(
    systems: Sequence[LinearInstance],
    solver: str,
    *,
    rtol: float,
    maxiter: int,
    desc: str = "",
    progress=False,
) -> Run:
    """Young's ω from a Lanczos estimate of each system's Jacobi spectral radius (estimate timed too).

    Where the estimated radius is >= 1 (Jacobi diverges, the formula has no meaning) ω = 1 is used and the
    system is counted in ``"young_undefined"``.
    """
    run = _Solver(solver)
    undefined = 0
    matvecs = 0

    def body(t, inst):
        nonlocal undefined, matvecs
        est = estimate_jacobi_spectrum(inst.A, ends="both")
        matvecs += est.matvecs
        if est.spectral_radius < 1.0:
            omega = young_omega(spectral_radius=est.spectral_radius)
        else:
            undefined += 1
            omega = 1.0
        return omega, run(inst, omega, rtol, maxiter)

    out = _loop(systems, desc, progress, body)
    out["young_undefined"], out["prior_matvecs"] = undefined, matvecs
    return out


def run_prior(
    systems: Sequence[LinearInstance],
    solver: str,
    *,
    rtol: float,
    maxiter: int,
    seed: int = 0,
    desc: str = "",
    progress: bool = False,
    tuner: PriorTuner | None = None,
) -> Run:
    """:class:`~sciml.relax.prior.PriorTuner` over the sequence (prior and capped trials in the time)."""
    tuner = PriorTuner(solver, seed=seed) if tuner is None else tuner
    explored = np.zeros(len(systems), dtype=bool)
    censored = np.zeros(len(systems), dtype=bool)

    def body(t, inst):
        out = tuner.solve(inst.A, inst.b, inst.x0, rtol=rtol, maxiter=maxiter)
        explored[t], censored[t] = out.explored, out.censored
        return out.omega, out.result

    run = _loop(systems, desc, progress, body)
    run.update(explored=explored, censored=censored, prior_matvecs=tuner.prior.matvecs)
    return run


def run_bandit(
    systems: Sequence[LinearInstance],
    solver: str,
    kind: str,
    context_range: tuple[float, float],
    *,
    rtol: float,
    maxiter: int,
    seed: int = 0,
    desc: str = "",
    progress: bool = False,
) -> Run:
    """The paper's tuners as published: ``kind`` ``"tsallis-inf"`` or ``"chebcb"`` (context: each
    system's ``context``), over ω ∈ linspace(1, 1.95, 20)."""
    if kind == "tsallis-inf":
        tuner = TsallisINF(default_arms(), seed=seed)
    elif kind == "chebcb":
        tuner = ChebCB(default_arms(), context_range=context_range, gamma=10.0, seed=seed)
    else:
        raise ValueError(f"`kind` must be 'tsallis-inf' or 'chebcb', got {kind!r}")
    solve = _Solver(solver)

    def body(t, inst):
        omega = tuner.select(inst.context)
        res = solve(inst, omega, rtol, maxiter)
        tuner.update(max(res.iterations, 1))
        return omega, res

    return _loop(systems, desc, progress, body)


def grid_table(
    systems: Sequence[LinearInstance],
    solver: str,
    omegas_used: np.ndarray,
    *,
    rtol: float,
    maxiter: int,
    step: float,
    reference: np.ndarray,
    cap_factor: float = 2.0,
    progress: bool = False,
    desc: str = "fine grid",
    shifted: tuple[Any, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Iterations of every ω of a fine grid on every system (for best-fixed and instance-optimal).

    The grid has spacing ``step`` and covers the ω the methods used (``omegas_used``) with a margin of
    ``4 · step``; it widens by ``0.03`` on a side wherever a system's least cost sits at that edge; it stays
    within [0.5, 1.995]. Each solve stops at ``cap_factor ×`` the system's ``reference`` iterations (e.g. the
    best any *converged* solve took), recorded as that cap: a lower bound on its cost, so a censored ω can
    never be mistaken for the best. A solve that fails otherwise (diverges) is recorded as ``maxiter``. Sums
    of columns with capped entries are lower bounds: rerun a chosen ω without the cap for its true cost.

    With ``shifted = (A, shifts)`` (SOR on systems ``A + shift_t I`` from zero initial guesses) every
    column is computed at once by :func:`~sciml.solvers.linear.sor_batch` (same iterates, same counts).

    Returns:
        ``(grid, table)`` with ``table[t, j]`` the (capped) iterations of ``grid[j]`` on system ``t``.
    """
    lo_lim, hi_lim = 0.5, 1.995
    used = np.asarray(omegas_used, dtype=np.float64)
    lo = max(lo_lim, float(used.min()) - 4 * step)
    hi = min(hi_lim, float(used.max()) + 4 * step)
    caps = np.maximum(2, np.ceil(cap_factor * np.asarray(reference, dtype=np.float64))).astype(int)
    caps = np.minimum(caps, maxiter)
    columns: dict[float, np.ndarray] = {}
    solve = _Solver(solver)

    def fill(points):
        if shifted is not None and solver == "sor":
            points = [float(w) for w in points if float(w) not in columns]
            if not points:
                return
            A, shifts = shifted
            T = len(systems)
            B = np.stack([inst.b for inst in systems], axis=1)
            its = sor_batch(
                A,
                np.tile(B, (1, len(points))),
                np.repeat(points, T),
                np.tile(shifts, len(points)),
                rtol=rtol,
                maxiter=int(caps.max()),
            ).iterations.reshape(len(points), T)
            for w, col in zip(points, its):
                columns[w] = np.minimum(col, caps)
            return
        for w in tqdm(points, desc=desc, leave=False, disable=not progress):
            w = float(w)
            if w in columns:
                continue
            columns[w] = np.array(
                [
                    _capped(solve(inst, w, rtol, int(caps[t])), caps[t], maxiter)
                    for t, inst in enumerate(systems)
                ],
                dtype=np.int64,
            )

    def grid_points(a, b):
        points = np.round(np.arange(a, b + step / 2, step), 6)
        return points[(points >= lo_lim) & (points <= hi_lim)]

    fill(grid_points(lo, hi))
    for _ in range(20):
        grid = np.array(sorted(columns))
        table = np.stack([columns[w] for w in grid], axis=1)
        argmin = table.argmin(1)
        grow_lo = grid[0] > lo_lim + 1e-9 and (argmin == 0).any()
        grow_hi = grid[-1] < hi_lim - 1e-9 and (argmin == grid.size - 1).any()
        if not (grow_lo or grow_hi):
            break
        if grow_lo:
            fill(grid_points(max(lo_lim, grid[0] - 0.03), grid[0]))
        if grow_hi:
            fill(grid_points(grid[-1], min(hi_lim, grid[-1] + 0.03)))
    grid = np.array(sorted(columns))
    return grid, np.stack([columns[w] for w in grid], axis=1)


def _capped(res: LinearSolveResult, cap: int, maxiter: int) -> int:
    """A grid entry: the iterations of a converged solve, the cap for one stopped there (a lower bound on
    its cost), ``maxiter`` for one that diverged or stagnated (never cheaper than any cap)."""
    if res.converged:
        return res.iterations
    return int(cap) if res.status == SolveStatus.MAX_ITERATIONS else int(maxiter)


def summarise(
    runs: dict[str, list[Run]],
    best_fixed: np.ndarray,
    instance_optimal: np.ndarray,
    young: np.ndarray | None,
) -> list[dict[str, Any]]:
    """One row per method: total iterations (mean ± std over seeds), ratios to the baselines, seconds."""
    rows = []
    bf, io = float(best_fixed.sum()), float(instance_optimal.sum())
    yo = float(young.sum()) if young is not None else math.nan
    for name, seeds in runs.items():
        totals = np.array([r["iterations"].sum() for r in seeds], dtype=np.float64)
        secs = np.array([r["seconds"] for r in seeds])
        cpu = np.array([r.get("cpu_seconds", np.nan) for r in seeds])
        row = {
            "method": name,
            "seeds": len(seeds),
            "total_iterations": float(totals.mean()),
            "total_iterations_std": float(totals.std()),
            "mean_iterations": float(totals.mean() / seeds[0]["iterations"].size),
            "vs_best_fixed": float(totals.mean() / bf),
            "vs_best_fixed_max": float(totals.max() / bf),
            "vs_young_estimated": float(totals.mean() / yo) if young is not None else None,
            "vs_young_estimated_max": float(totals.max() / yo) if young is not None else None,
            "vs_instance_optimal": float(totals.mean() / io),
            "vs_instance_optimal_max": float(totals.max() / io),
            "seconds": float(secs.mean()),
            "cpu_seconds": float(cpu.mean()),
            "all_converged": bool(all(r["converged"].all() for r in seeds)),
        }
        if "prior_matvecs" in seeds[0]:
            row["prior_matvecs"] = float(np.mean([r["prior_matvecs"] for r in seeds]))
        if "explored" in seeds[0]:
            row["explorations"] = float(np.mean([r["explored"].sum() for r in seeds]))
            row["censored"] = float(np.mean([r["censored"].sum() for r in seeds]))
        rows.append(row)
    return rows


def cumulative(runs: dict[str, list[Run]], key: Callable[[Run], np.ndarray]) -> dict[str, np.ndarray]:
    """Mean over seeds of the cumulative ``key(run)`` per method (for the plots)."""
    return {name: np.mean([np.cumsum(key(r)) for r in seeds], axis=0) for name, seeds in runs.items()}

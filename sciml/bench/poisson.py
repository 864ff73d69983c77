"""``sciml bench poisson``: DCDM against CG, IC(0)-PCG and AMG-PCG on grid Poisson systems (REFERENCES §6).

System kinds (``--kinds``), each drawn with a fixed seed so that the same physical system appears at every
size (the iteration counts across sizes measure resolution independence):

* ``obstacles`` — sciml's own random layouts (:func:`~sciml.problems.linear.generators.random_layout`,
  seeds from 200000, unseen in training: walls, obstacles, sometimes an air band), 2D;
* ``varcoef`` — a user's matrix: ``−∇·(κ∇u)`` with a smooth random coefficient of contrast 100 (harmonic
  face means), obstacles and Dirichlet walls, assembled with plain scipy (COO triplets, as a user would)
  and handed to DCDM as that CSR matrix with the grid shape and mask (setup includes recognising the
  stencil: :func:`~sciml.problems.linear.as_grid_stencil`), 2D;
* ``neumann`` — a closed box with obstacles (every wall Neumann): singular with a constant null space per
  closed region, the right-hand side made consistent (each region's mean removed), given as a matrix; 2D;
* ``periodic`` — the ``varcoef`` matrix with periodic wrap-around on both axes instead of walls (singular,
  consistent right-hand side); 2D;
* ``box3d`` — random 3D layouts as a scipy matrix (7-point), 32³ and 64³ (128³ with ``--full``).

Every method solves to ``rtol`` 1e-6 (‖b − A x‖ ≤ rtol·‖b‖) from zero, white-noise right-hand side:

* ``cg`` — :func:`sciml.solvers.linear.cg` on the CSR matrix;
* ``ic-pcg`` — CG preconditioned by IC(0) (:func:`sciml.solvers.linear.incomplete_cholesky`), setup = the
  factorisation;
* ``amg-pcg`` — CG preconditioned by one pyamg smoothed-aggregation V-cycle, setup = the hierarchy;
* ``dcdm`` — the shipped DCDM model, setup = recognising the stencil (matrix kinds), the null space and the
  network's per-geometry setup (:meth:`DCDM.prepare`).

Times are wall-clock seconds, setup and solve separately (``total`` = both). DCDM runs with its default
torch threads (:func:`sciml.dcdm.solver.default_threads`) unless ``--threads`` is given; the baselines are
numpy/scipy. Rows ``{"kind", "grid", "method", "iterations", "seconds", "setup_seconds", "converged"}``;
the summary reports ratios to CG and to AMG-PCG measured in the same run.
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import scipy.sparse as sp

from sciml.bench.report import check_unique, print_table, ratio, refuse_ignored
from sciml.problems.linear import FLUID, PoissonGrid, as_grid_stencil
from sciml.problems.linear.generators import fill_unanchored, random_layout, random_obstacles, random_rhs

DESCRIPTION = (
    "DCDM vs CG, IC(0)-PCG and AMG-PCG on obstacle layouts, a user's variable-coefficient matrix, a closed "
    "(singular) box and 3D, 64² to 512² and 32³/64³ (rtol 1e-6; setup and solve timed)"
)

RTOL = 1e-6
BENCH_SEED = 200_000
METHODS = ("cg", "ic-pcg", "amg-pcg", "dcdm")
KINDS = ("obstacles", "varcoef", "neumann", "periodic", "box3d")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _grid_size(text: str) -> int:
    value = _positive_int(text)
    if value < 16:
        raise argparse.ArgumentTypeError(f"must be >= 16 cells per side, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=_grid_size, nargs="+", default=None, help="2D cells per side (default 64 128 256 512)"
    )
    parser.add_argument(
        "--sizes3d",
        type=_grid_size,
        nargs="+",
        default=None,
        help="3D cells per side (default 32 64; full +128)",
    )
    parser.add_argument(
        "--kinds", nargs="+", default=list(KINDS), choices=KINDS, help="system kinds (default: all of them)"
    )
    parser.add_argument(
        "--layouts", type=_positive_int, default=None, help="systems per kind and size (default 1, full 3)"
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=METHODS,
        help="solvers to compare (default: all of them; amg-pcg is skipped, with a message, without pyamg)",
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None, help="torch threads for DCDM (default: its own rule)"
    )
    parser.add_argument(
        "--repeat",
        type=_positive_int,
        default=None,
        help="timed repeats per solve, median (default 1, full 3)",
    )


def _timed(fn, repeat: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


# ---------------------------------------------------------------------------------------------- systems
def user_varcoef_matrix(n: int, seed: int, periodic: bool = False) -> tuple[sp.csr_matrix, np.ndarray]:
    """``−∇·(κ∇u)`` on an ``n × n`` cell grid as a user assembles it: COO triplets on the unknowns (C order),
    κ a smooth random field of contrast 100, harmonic means on faces, obstacles zero-flux, Dirichlet walls
    (``periodic``: wrap-around faces on both axes instead, no walls: singular).

    Returns the CSR matrix and the boolean mask of unknowns.
    """
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.standard_normal((n, n)), sigma=0.06 * n, mode="wrap")
    field = (field - field.min()) / (field.max() - field.min())
    kappa = 100.0**field
    cells = random_obstacles((n, n), count=(4, 8), size=(0.03, 0.1), seed=rng)
    if not periodic:
        cells = fill_unanchored(cells, "dirichlet")  # no enclosed pocket (it would be singular)
    mask = cells == FLUID
    index = np.full((n, n), -1)
    index[mask] = np.arange(mask.sum())
    h2 = (1.0 / n) ** 2
    rows, cols, vals = [], [], []
    diag = np.zeros((n, n))
    for axis in (0, 1):
        lo = (slice(None, -1), slice(None)) if axis == 0 else (slice(None), slice(None, -1))
        hi = (slice(1, None), slice(None)) if axis == 0 else (slice(None), slice(1, None))
        both = mask[lo] & mask[hi]
        w = 2 * kappa[lo] * kappa[hi] / (kappa[lo] + kappa[hi]) / h2 * both
        diag[lo] += w
        diag[hi] += w
        i, j = index[lo][both], index[hi][both]
        rows += [i, j]
        cols += [j, i]
        vals += [-w[both], -w[both]]
        last = (slice(-1, None), slice(None)) if axis == 0 else (slice(None), slice(-1, None))
        first = (slice(0, 1), slice(None)) if axis == 0 else (slice(None), slice(0, 1))
        if periodic:  # the wrap-around faces between the last and the first layer
            both = mask[last] & mask[first]
            w = 2 * kappa[last] * kappa[first] / (kappa[last] + kappa[first]) / h2 * both
            diag[last] += w
            diag[first] += w
            i, j = index[last][both], index[first][both]
            rows += [i, j]
            cols += [j, i]
            vals += [-w[both], -w[both]]
        else:  # Dirichlet walls half a cell away: 2κ/h²
            diag[last] += 2 * kappa[last] / h2
            diag[first] += 2 * kappa[first] / h2
    rows.append(index[mask])
    cols.append(index[mask])
    vals.append(diag[mask])
    m = int(mask.sum())
    A = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m))
    return A.tocsr(), mask


def make_system(kind: str, n: int, index: int) -> dict[str, Any]:
    """One benchmark system: ``A`` (CSR), ``b`` (vector of unknowns), what DCDM is given, ``ndim``."""
    seed = BENCH_SEED + index
    if kind == "obstacles":
        grid = random_layout((n, n), seed=seed)
        return {
            "A": grid.matrix(),
            "b": grid.to_vector(random_rhs(grid, seed=seed)),
            "dcdm": (grid, {}),
            "ndim": 2,
        }
    if kind == "varcoef":
        A, mask = user_varcoef_matrix(n, seed)
        b = np.random.default_rng(seed).standard_normal(A.shape[0])
        return {"A": A, "b": b / np.linalg.norm(b), "dcdm": (A, {"shape": (n, n), "mask": mask}), "ndim": 2}
    if kind == "periodic":
        A, mask = user_varcoef_matrix(n, seed, periodic=True)
        stencil = as_grid_stencil(A, (n, n), mask)
        b = stencil.project(np.random.default_rng(seed).standard_normal(A.shape[0]))  # consistent
        return {"A": A, "b": b / np.linalg.norm(b), "dcdm": (A, {"shape": (n, n), "mask": mask}), "ndim": 2}
    if kind == "neumann":
        cells = random_obstacles((n, n), count=(4, 10), size=(0.03, 0.12), margin=0.1, seed=seed)
        grid = PoissonGrid((n, n), cells=cells, walls="neumann")
        stencil = grid.stencil()
        b = stencil.project(random_rhs(grid, seed=seed))  # consistent: each closed region's mean removed
        A = grid.matrix()
        return {
            "A": A,
            "b": grid.to_vector(b),
            "dcdm": (A, {"shape": (n, n), "mask": grid.fluid}),
            "ndim": 2,
        }
    if kind == "box3d":
        grid = random_layout((n, n, n), seed=seed)
        A = grid.matrix()
        return {
            "A": A,
            "b": grid.to_vector(random_rhs(grid, seed=seed)),
            "dcdm": (A, {"shape": grid.shape, "mask": grid.fluid}),
            "ndim": 3,
        }
    raise ValueError(f"unknown kind {kind!r}; expected one of {KINDS}")


def _solve(method: str, system: dict[str, Any], solvers, repeat: int, threads: int | None) -> dict[str, Any]:
    from sciml.solvers.linear import amg, cg, incomplete_cholesky

    A, b = system["A"], system["b"]
    setup = 0.0
    if method == "cg":
        result, seconds = _timed(lambda: cg(A, b, rtol=RTOL), repeat)
    elif method == "ic-pcg":
        try:
            M, setup = _timed(lambda: incomplete_cholesky(A), repeat)
        except (ValueError, np.linalg.LinAlgError) as exc:  # a zero pivot (singular systems)
            return {
                "iterations": -1,
                "seconds": math.nan,
                "setup_seconds": math.nan,
                "converged": False,
                "note": f"IC(0) failed: {exc}",
            }
        result, seconds = _timed(lambda: cg(A, b, rtol=RTOL, M=M), repeat)
    elif method == "amg-pcg":
        M, setup = _timed(lambda: amg(A), repeat)
        result, seconds = _timed(lambda: cg(A, b, rtol=RTOL, M=M), repeat)
    else:
        system_in, extra = system["dcdm"]
        solver = solvers[system["ndim"]]
        prepared, setup = _timed(lambda: solver.prepare(system_in, **extra), repeat)
        result, seconds = _timed(lambda: prepared.solve(b, rtol=RTOL, threads=threads), repeat)
    r = b - A @ result.x  # the true residual, independently of each method's own bookkeeping
    true_ok = bool(np.linalg.norm(r) <= 1.0001 * RTOL * np.linalg.norm(b))
    if method == "dcdm" and result.converged and not true_ok:
        raise RuntimeError("DCDM reported convergence but the true residual is above the tolerance")
    return {
        "iterations": int(result.iterations),
        "seconds": seconds,
        "setup_seconds": setup,
        "converged": bool(result.converged),
        "true_residual_ok": true_ok,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sciml.dcdm import DCDM

    kinds = list(args.kinds)
    for flag, values in (("--kinds", kinds), ("--methods", args.methods), ("--sizes", args.sizes or ()),
                         ("--sizes3d", args.sizes3d or ())):  # fmt: skip
        check_unique(values, flag)
    refuse_ignored(
        args,
        ([] if "box3d" in kinds else ["sizes3d"]) + ([] if set(kinds) - {"box3d"} else ["sizes"]),
        f"by --kinds {' '.join(kinds)}",
    )
    refuse_ignored(args, [] if "dcdm" in args.methods else ["threads"], "without dcdm in --methods")
    sizes2d = [64, 128, 256, 512] if args.sizes is None else args.sizes
    sizes3d = ([32, 64, 128] if args.full else [32, 64]) if args.sizes3d is None else args.sizes3d
    layouts = (3 if args.full else 1) if args.layouts is None else args.layouts
    repeat = (3 if args.full else 1) if args.repeat is None else args.repeat
    methods = list(args.methods)
    if "amg-pcg" in methods:
        try:
            import pyamg  # noqa: F401
        except ImportError:
            print("pyamg is not installed (python -m pip install '.[bench]'): skipping amg-pcg")
            methods.remove("amg-pcg")
    solvers: dict[int, Any] = {}
    if "dcdm" in methods:
        for ndim in sorted({3 if k == "box3d" else 2 for k in kinds}):
            solvers[ndim] = DCDM.load(ndim=ndim)
            warm = random_layout((16,) * ndim, seed=BENCH_SEED - 1)  # first-call overheads outside timings
            solvers[ndim].solve(warm, random_rhs(warm, seed=0))

    rows: list[dict[str, Any]] = []
    for kind in kinds:
        for n in sizes3d if kind == "box3d" else sizes2d:
            ndim = 3 if kind == "box3d" else 2
            label = "x".join([str(n)] * ndim)
            for i in range(layouts):
                system = make_system(kind, n, i)
                for method in methods:
                    row = {
                        "kind": kind,
                        "grid": label,
                        "method": method,
                        "layout": i,
                        "unknowns": len(system["b"]),
                    }
                    row.update(_solve(method, system, solvers, repeat, args.threads))
                    rows.append(row)
                    print(
                        f"{kind:9s} {label:9s} layout {i} {method:8s} iterations {row['iterations']:5d}  "
                        f"setup {row['setup_seconds']:.3f}  solve {row['seconds']:.3f}",
                        flush=True,
                    )

    summary = _summarise(rows, methods)
    print_table(
        summary,
        [
            "kind",
            "grid",
            "method",
            "iterations",
            "setup_seconds",
            "seconds",
            "iter/cg",
            "total/cg",
            "solve/cg",
            "total/amg",
            "solve/amg",
            "converged",
        ],
        title=f"poisson: means over systems (rtol {RTOL}); ratios to CG and AMG-PCG of the same run "
        "(total = setup + solve)",
    )
    spreads = _iteration_spread(summary)
    if spreads:
        print_table(
            spreads,
            ["kind", "sizes", "dcdm_iterations", "cg_iterations", "max/min"],
            title="DCDM iterations across sizes (resolution independence)",
        )
    return {
        "rows": rows,
        "summary": summary,
        "dcdm_iteration_spread": spreads,
        "rtol": RTOL,
        "dcdm_threads": args.threads,
        "models": {k: v.config for k, v in solvers.items()},
    }


def _summarise(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    summary = []
    keys = list(dict.fromkeys((r["kind"], r["grid"]) for r in rows))
    for kind, grid in keys:
        means = {}
        for method in methods:
            sel = [r for r in rows if r["kind"] == kind and r["grid"] == grid and r["method"] == method]
            if not sel:
                continue
            means[method] = {
                "iterations": float(np.mean([r["iterations"] for r in sel])),
                "seconds": float(np.mean([r["seconds"] for r in sel])),
                "setup_seconds": float(np.mean([r["setup_seconds"] for r in sel])),
                "converged": all(r["converged"] and r.get("true_residual_ok", False) for r in sel),
            }
        cg_row, amg_row = means.get("cg"), means.get("amg-pcg")
        for method, m in means.items():
            total = m["seconds"] + m["setup_seconds"]
            entry = {"kind": kind, "grid": grid, "method": method, **m}
            if cg_row:
                entry["iter/cg"] = ratio(m["iterations"], cg_row["iterations"])
                entry["total/cg"] = ratio(total, cg_row["seconds"] + cg_row["setup_seconds"])
                entry["solve/cg"] = ratio(m["seconds"], cg_row["seconds"])
            if amg_row:
                entry["total/amg"] = ratio(total, amg_row["seconds"] + amg_row["setup_seconds"])
                entry["solve/amg"] = ratio(m["seconds"], amg_row["seconds"])
            summary.append(entry)
    return summary


def _iteration_spread(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for kind in dict.fromkeys(s["kind"] for s in summary):
        dcdm = [s for s in summary if s["kind"] == kind and s["method"] == "dcdm"]
        cg = {s["grid"]: s["iterations"] for s in summary if s["kind"] == kind and s["method"] == "cg"}
        if len(dcdm) < 2:
            continue
        its = [s["iterations"] for s in dcdm]
        out.append(
            {
                "kind": kind,
                "sizes": " ".join(s["grid"] for s in dcdm),
                "dcdm_iterations": " ".join(f"{v:g}" for v in its),
                "cg_iterations": " ".join(f"{cg.get(s['grid'], math.nan):g}" for s in dcdm),
                "max/min": max(its) / min(its) if min(its) > 0 else math.nan,
            }
        )
    return out

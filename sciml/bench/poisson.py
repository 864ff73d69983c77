"""``sciml bench poisson``: DCDM against CG, IC(0)-PCG and AMG-PCG on grid Poisson systems (REFERENCES §6).

For each grid size, ``--layouts`` random obstacle layouts not seen in training
(:func:`sciml.problems.linear.generators.random_layout` with seeds from 200000; training uses ``[seed, i]``
seed sequences, validation 90000+) and a white-noise right-hand side each. Every method solves to
``rtol`` 1e-6 (‖r‖ ≤ rtol·‖b‖) from zero:

* ``cg`` — :func:`sciml.solvers.linear.cg` on the scipy CSR matrix;
* ``ic-pcg`` — CG preconditioned by IC(0) (:func:`sciml.solvers.linear.incomplete_cholesky`), setup = the
  factorisation;
* ``amg-pcg`` — CG preconditioned by one pyamg smoothed-aggregation V-cycle, setup = the hierarchy;
* ``dcdm`` — the shipped DCDM model (or ``--model``), setup = reading the stencil and the network's
  per-geometry setup (:meth:`DCDM.prepare`).

The same layout seed gives the same physical layout at every size, so the DCDM iteration counts across
sizes measure resolution independence. Rows ``{"grid", "method", "iterations", "seconds",
"setup_seconds", "converged", "layout"}``; the summary table reports means over layouts and ratios to CG
and to AMG-PCG measured in the same run. Torch runs with ``--threads`` threads (default 1: the machines are
shared and oversubscribed threads slow everything down).
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

from sciml.bench.report import print_table, ratio
from sciml.problems.linear.generators import random_layout, random_rhs

DESCRIPTION = "DCDM vs CG, IC(0)-PCG and AMG-PCG on unseen obstacle layouts, 64² to 512² (rtol 1e-6)"

RTOL = 1e-6
BENCH_SEED = 200_000
METHODS = ("cg", "ic-pcg", "amg-pcg", "dcdm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="cells per side (default 64 128 256 512)"
    )
    parser.add_argument(
        "--layouts", type=int, default=None, help="unseen layouts per size (default 2, full 5)"
    )
    parser.add_argument("--model", default=None, help="DCDM model file (default: the shipped 2D model)")
    parser.add_argument("--ndim", type=int, default=2, choices=(2, 3), help="grid dimension (3: 32³, 64³)")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--repeat", type=int, default=None, help="timed repeats per solve, median (default 1, full 3)"
    )


def _timed(fn, repeat: int) -> tuple[Any, float]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, float(np.median(times))


def _solve(method: str, grid, b: np.ndarray, solver, repeat: int) -> dict[str, Any]:
    from sciml.solvers.linear import amg, cg, incomplete_cholesky

    A = grid.matrix()
    bv = grid.to_vector(b)
    setup = 0.0
    if method == "cg":
        result, seconds = _timed(lambda: cg(A, bv, rtol=RTOL), repeat)
    elif method == "ic-pcg":
        M, setup = _timed(lambda: incomplete_cholesky(A), repeat)
        result, seconds = _timed(lambda: cg(A, bv, rtol=RTOL, M=M), repeat)
    elif method == "amg-pcg":
        M, setup = _timed(lambda: amg(A), repeat)
        result, seconds = _timed(lambda: cg(A, bv, rtol=RTOL, M=M), repeat)
    else:
        prepared, setup = _timed(lambda: solver.prepare(grid), repeat)
        result, seconds = _timed(lambda: prepared.solve(bv, rtol=RTOL), repeat)
        r = bv - A @ result.x  # the true residual, independently of DCDM's own bookkeeping
        if result.converged and np.linalg.norm(r) > 1.0001 * RTOL * np.linalg.norm(bv):
            raise RuntimeError("DCDM reported convergence but the true residual is above the tolerance")
    return {
        "iterations": int(result.iterations),
        "seconds": seconds,
        "setup_seconds": setup,
        "converged": bool(result.converged),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from sciml.dcdm import DCDM

    torch.set_num_threads(args.threads)
    ndim = args.ndim
    sizes = args.sizes or ([64, 128, 256, 512] if ndim == 2 else [32, 64])
    layouts = args.layouts or (5 if args.full else 2)
    repeat = args.repeat or (3 if args.full else 1)
    methods = list(args.methods)
    if "amg-pcg" in methods:
        try:
            import pyamg  # noqa: F401
        except ImportError:
            print("pyamg is not installed (python -m pip install '.[bench]'): skipping amg-pcg")
            methods.remove("amg-pcg")
    solver = DCDM.load(args.model, ndim=ndim) if "dcdm" in methods else None
    if solver is not None:  # warm up torch (first-call overheads) outside the timings
        warm = random_layout((16,) * ndim, seed=BENCH_SEED - 1)
        solver.solve(warm, random_rhs(warm, seed=0))

    rows: list[dict[str, Any]] = []
    for n in sizes:
        label = "x".join([str(n)] * ndim)
        for i in range(layouts):
            grid = random_layout((n,) * ndim, seed=BENCH_SEED + i)
            b = random_rhs(grid, seed=BENCH_SEED + i)
            for method in methods:
                row = {"grid": label, "method": method, "layout": i, "unknowns": grid.n_unknowns}
                row.update(_solve(method, grid, b, solver, repeat))
                rows.append(row)
                print(
                    f"{label} layout {i} {method:8s} iterations {row['iterations']:5d}  "
                    f"seconds {row['seconds']:.3f}"
                    f"  setup {row['setup_seconds']:.3f}",
                    flush=True,
                )

    costs = _network_costs(solver, sizes, ndim, repeat) if solver is not None else []
    summary = _summarise(rows, sizes, ndim, methods)
    print_table(
        rows,
        ["grid", "layout", "method", "iterations", "seconds", "setup_seconds", "converged"],
        title=f"poisson: every solve (rtol {RTOL})",
    )
    print_table(
        summary,
        [
            "grid",
            "method",
            "iterations",
            "seconds",
            "setup_seconds",
            "iter/cg",
            "time/cg",
            "total/cg",
            "iter/amg",
            "total/amg",
        ],
        title="poisson: means over layouts; ratios to CG and AMG-PCG (total = setup + solve)",
    )
    if costs:
        print_table(
            costs,
            ["grid", "dcdm_network_ms", "paper_network_ms", "paper/dcdm"],
            title="network cost per application (ms): our multigrid net vs the paper's 16-channel net",
        )
    payload: dict[str, Any] = {
        "rows": rows,
        "summary": summary,
        "network_costs": costs,
        "rtol": RTOL,
        "threads": args.threads,
    }
    if solver is not None:
        payload["model"] = {"config": solver.config, "command": solver.info.get("command")}
        dcdm_iters = [s["iterations"] for s in summary if s["method"] == "dcdm"]
        if dcdm_iters:
            spread = max(dcdm_iters) / min(dcdm_iters) if min(dcdm_iters) > 0 else math.nan
            payload["dcdm_iteration_spread"] = spread
            print(f"DCDM mean iterations per size {dcdm_iters}: max/min = {spread:.3f}")
    return payload


def _network_costs(solver, sizes: list[int], ndim: int, repeat: int) -> list[dict[str, Any]]:
    """Milliseconds per network application: the DCDM model and the paper's network (untrained; its cost
    does not depend on its weights) on the benchmark layouts."""
    from sciml.dcdm import PaperNet

    paper = PaperNet(ndim=ndim).eval()
    costs = []
    for n in sizes:
        grid = random_layout((n,) * ndim, seed=BENCH_SEED)
        r = torch.as_tensor(random_rhs(grid, seed=0))
        prepared = solver.prepare(grid)
        with torch.no_grad():
            _, ms_ours = _timed(lambda p=prepared, r=r: p.precondition(r), repeat + 2)
            context = paper.setup(prepared.diag[None].float(), [])
            r32 = r[None].float()
            _, ms_paper = _timed(lambda r=r32, c=context: paper.precondition(r, c), repeat)
        costs.append(
            {
                "grid": "x".join([str(n)] * ndim),
                "dcdm_network_ms": 1e3 * ms_ours,
                "paper_network_ms": 1e3 * ms_paper,
                "paper/dcdm": ratio(ms_paper, ms_ours),
            }
        )
    return costs


def _summarise(
    rows: list[dict[str, Any]], sizes: list[int], ndim: int, methods: list[str]
) -> list[dict[str, Any]]:
    summary = []
    for n in sizes:
        label = "x".join([str(n)] * ndim)
        means = {}
        for method in methods:
            sel = [r for r in rows if r["grid"] == label and r["method"] == method]
            means[method] = {
                "iterations": float(np.mean([r["iterations"] for r in sel])),
                "seconds": float(np.mean([r["seconds"] for r in sel])),
                "setup_seconds": float(np.mean([r["setup_seconds"] for r in sel])),
                "converged": all(r["converged"] for r in sel),
            }
        cg_row, amg_row = means.get("cg"), means.get("amg-pcg")
        for method, m in means.items():
            total = m["seconds"] + m["setup_seconds"]
            entry = {"grid": label, "method": method, **m}
            if cg_row:
                entry["iter/cg"] = ratio(m["iterations"], cg_row["iterations"])
                entry["time/cg"] = ratio(m["seconds"], cg_row["seconds"])
                entry["total/cg"] = ratio(total, cg_row["seconds"] + cg_row["setup_seconds"])
            if amg_row:
                entry["iter/amg"] = ratio(m["iterations"], amg_row["iterations"])
                entry["total/amg"] = ratio(total, amg_row["seconds"] + amg_row["setup_seconds"])
            summary.append(entry)
    return summary

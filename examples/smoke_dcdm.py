"""A 2D smoke plume past obstacles whose pressure projection uses DCDM, compared frame by frame with CG.

Every frame the simulation (:class:`sciml.solvers.fluid.SmokeSimulation`) projects its velocity with DCDM (the
shipped model; the geometry is fixed, so the network's setup runs once). The same right-hand side is also
solved by CG on a copy of the state, so both solvers see identical systems. Printed and written per frame:
iterations, seconds and the divergence left after the projection (‖∇·u‖ relative to before).

    python examples/smoke_dcdm.py --size 128 --frames 60 --out runs/smoke-dcdm
    python examples/smoke_dcdm.py --torchscript   # project through the exported TorchScript file instead

With ``--torchscript`` the model is exported and loaded with ``torch.jit.load`` and driven exactly as a
simulation code without sciml would: pass ``b`` and the operator's coefficient fields (diag, couplings).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from sciml.problems.linear import random_obstacles
from sciml.problems.linear.generators import fill_unanchored
from sciml.solvers.fluid import SmokeSimulation, cg_pressure_solver, plume_grid
from sciml.solvers.linear import LinearSolveResult, SolveStatus

from sciml.checkpoint import check_writable_dir, save_figure, write_json
from sciml.dcdm import DCDM, stencil_fields


def torchscript_pressure_solver(path: Path, grid, rtol: float):
    """A pressure solver that only uses the TorchScript file (what an external simulation code does)."""
    module = torch.jit.load(str(path))
    diag, couplings = stencil_fields(grid)  # the coefficient fields a fluid code keeps anyway
    diag, couplings = diag[0], [c[0] for c in couplings]

    def solve(grid, b):
        x, iterations, history, status = module(torch.as_tensor(b), diag, couplings, None, rtol, 0.0, 1000)
        name = module.status_names[status]
        return LinearSolveResult(
            x.numpy(), iterations, history.numpy(), name == "converged", SolveStatus(name), name
        )

    return solve


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--size", type=int, default=128, help="cells per side, >= 16")
    parser.add_argument("--frames", type=int, default=60, help="frames to simulate, >= 1")
    parser.add_argument("--obstacles", type=int, default=4, help="random obstacles, >= 0")
    parser.add_argument("--seed", type=int, default=7, help="obstacle layout seed")
    parser.add_argument("--rtol", type=float, default=1e-6, help="relative tolerance of both pressure solves")
    parser.add_argument(
        "--torchscript", action="store_true", help="project through the exported file (OUT/dcdm.pt)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads, >= 1")
    parser.add_argument(
        "--out", default="runs/smoke-dcdm", help="directory for smoke_dcdm.json, smoke_dcdm.png (and dcdm.pt)"
    )
    args = parser.parse_args()
    for flag, value, low in (
        ("--size", args.size, 16),
        ("--frames", args.frames, 1),
        ("--obstacles", args.obstacles, 0),
        ("--threads", args.threads, 1),
    ):
        if value < low:
            parser.error(f"argument {flag}: must be >= {low}, got {value}")
    if not (0 < args.rtol < 1):
        parser.error(f"argument --rtol: must lie in (0, 1), got {args.rtol}")
    try:
        out = check_writable_dir(args.out)
    except ValueError as error:
        parser.error(str(error))
    torch.set_num_threads(args.threads)

    walls = (("neumann", "neumann"), ("neumann", "dirichlet"))
    cells = random_obstacles(
        (args.size, args.size), count=args.obstacles, size=(0.04, 0.1), margin=0.2, seed=args.seed
    )
    grid = plume_grid(args.size, fill_unanchored(cells, walls))
    model = DCDM.load()
    written = []
    if args.torchscript:
        start = time.perf_counter()
        path = model.export(out / "dcdm.pt")
        dcdm_solver = torchscript_pressure_solver(path, grid, args.rtol)
        setup = time.perf_counter() - start
        written.append(path)
    else:
        start = time.perf_counter()
        prepared = model.prepare(grid)
        setup = time.perf_counter() - start

        def dcdm_solver(grid, b):
            return prepared.solve(b, rtol=args.rtol, threads=args.threads)

    cg_solver = cg_pressure_solver(rtol=args.rtol)
    sim = SmokeSimulation(grid, pressure_solver=dcdm_solver)
    rows = []
    what = "once: export + torch.jit.load" if args.torchscript else "once"
    print(f"{args.size}² plume, {args.obstacles} obstacles, DCDM setup {setup:.3f} s ({what})")
    print("frame  dcdm-it  cg-it  dcdm-s  cg-s    div-left-dcdm  div-left-cg")
    for _ in range(args.frames):
        sim.advance()
        twin = copy.deepcopy(sim)  # the same state, projected by CG
        twin.pressure_solver = cg_solver
        ref = twin.project()
        stats = sim.project()
        row = {
            "frame": stats.frame,
            "dcdm_iterations": stats.iterations,
            "cg_iterations": ref.iterations,
            "dcdm_seconds": stats.seconds,
            "cg_seconds": ref.seconds,
            "dcdm_divergence_left": stats.divergence_after / max(stats.divergence_before, 1e-300),
            "cg_divergence_left": ref.divergence_after / max(ref.divergence_before, 1e-300),
            "converged": stats.converged and ref.converged,
        }
        rows.append(row)
        if stats.frame % 5 == 0 or stats.frame == 1:
            print(
                f"{row['frame']:5d}  {row['dcdm_iterations']:7d}  {row['cg_iterations']:5d}  "
                f"{row['dcdm_seconds']:6.3f}  {row['cg_seconds']:6.3f}  {row['dcdm_divergence_left']:13.2e}  "
                f"{row['cg_divergence_left']:11.2e}"
            )
    summary = {
        "size": args.size,
        "frames": args.frames,
        "dcdm_setup_seconds": setup,
        "torchscript": args.torchscript,
        "dcdm_iterations_mean": float(np.mean([r["dcdm_iterations"] for r in rows])),
        "cg_iterations_mean": float(np.mean([r["cg_iterations"] for r in rows])),
        "dcdm_seconds_total": float(sum(r["dcdm_seconds"] for r in rows)),
        "cg_seconds_total": float(sum(r["cg_seconds"] for r in rows)),
        "dcdm_divergence_left_max": float(max(r["dcdm_divergence_left"] for r in rows)),
        "cg_divergence_left_max": float(max(r["cg_divergence_left"] for r in rows)),
    }
    print({k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in summary.items()})
    write_json(out / "smoke_dcdm.json", {"summary": summary, "frames": rows, "argv": vars(args)})
    _plot(sim, grid, rows, out / "smoke_dcdm.png")
    written += [out / "smoke_dcdm.json", out / "smoke_dcdm.png"]
    print(f"wrote {', '.join(map(str, written[:-1]))} and {written[-1]}")


def _plot(sim, grid, rows, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    smoke = np.ma.masked_where(grid.cells == 1, sim.smoke)
    (x0, y0), (x1, y1) = grid.lower, grid.upper
    cmap = matplotlib.colormaps["magma"].with_extremes(bad="0.6")  # obstacles in grey
    image = axes[0].imshow(
        smoke.T, origin="lower", cmap=cmap, vmin=0, vmax=1, extent=(x0, x1, y0, y1), interpolation="nearest"
    )
    fig.colorbar(image, ax=axes[0], label="smoke density (obstacles grey)")
    axes[0].set_xlabel("x")
    axes[0].set_ylabel("y (open top)")
    axes[0].set_title(f"smoke at frame {sim.frame} (DCDM projection)")
    frames = [r["frame"] for r in rows]
    axes[1].plot(frames, [r["cg_iterations"] for r in rows], label="CG")
    axes[1].plot(frames, [r["dcdm_iterations"] for r in rows], label="DCDM")
    axes[1].set_yscale("log")
    axes[1].set_xlabel("frame")
    axes[1].set_ylabel("iterations to rtol")
    axes[1].set_title("pressure solve: iterations")
    axes[1].legend()
    axes[2].plot(frames, [r["cg_seconds"] for r in rows], label="CG")
    axes[2].plot(frames, [r["dcdm_seconds"] for r in rows], label="DCDM")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("frame")
    axes[2].set_ylabel("seconds per projection")
    axes[2].set_title("pressure solve: wall time")
    axes[2].legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


if __name__ == "__main__":
    main()

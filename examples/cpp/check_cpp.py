"""Run the C++ DCDM consumer (``pressure_solve``) and check it against Python.

For the plume (open top) and the closed box (pure Neumann, singular): export the shipped 2D model, run the
C++ program, read the system it assembled and its answer, and check that

* its system is sciml's own: the stencil of ``PoissonGrid`` with the same solid disc and walls
  (``plume_grid``; all-Neumann for the box), entry for entry;
* its answer agrees with Python's DCDM (``DCDM.solve`` on that system and right-hand side) to rtol 1e-6,
  and solves the system (true residual ≤ rtol·‖b‖; for the box with zero mean).

    python examples/cpp/check_cpp.py --exe build/cpp/pressure_solve [--work runs/cpp-check] [--n 64]

Exits 0 when everything agrees; prints one line per case and where its files went (``--work``: the exported
model ``dcdm_2d.pt`` and the program's outputs ``plume.bin`` and ``box.bin``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
from sciml.problems.linear import PoissonGrid
from sciml.solvers.fluid import plume_grid

from sciml.checkpoint import check_writable_dir
from sciml.dcdm import DCDM

RTOL_SOLVE = 1e-8
RTOL_AGREE = 1e-6


def read_output(path: Path) -> dict[str, np.ndarray | int]:
    raw = path.read_bytes()
    n, iterations = np.frombuffer(raw[:16], dtype=np.int64)
    fields = np.frombuffer(raw[16:], dtype=np.float64).reshape(5, n, n)
    return {
        "n": int(n),
        "iterations": int(iterations),
        "diag": fields[0],
        "couplings": fields[1:3],
        "b": fields[3],
        "x": fields[4],
    }


def disc_cells(n: int) -> np.ndarray:
    """The C++ program's solid disc (centre (0.5, 0.55), radius 0.12; cell (i, j) at x_i, y_j)."""
    centres = (np.arange(n) + 0.5) / n
    x, y = np.meshgrid(centres, centres, indexing="ij")
    return ((x - 0.5) ** 2 + (y - 0.55) ** 2 < 0.12**2).astype(np.int8)


def check(exe: Path, model: Path, work: Path, n: int, box: bool) -> tuple[bool, str]:
    out = work / ("box.bin" if box else "plume.bin")
    command = [str(exe), str(model), "--n", str(n), "--rtol", str(RTOL_SOLVE), "--out", str(out)]
    command += ["--box"] if box else []
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if run.returncode != 0:
        return False, f"C++ program failed ({run.returncode}): {run.stdout} {run.stderr}"
    data = read_output(out)
    cells = disc_cells(n)
    grid = PoissonGrid((n, n), cells=cells, walls="neumann") if box else plume_grid(n, cells)
    stencil = grid.stencil()
    same = np.array_equal(stencil.diag, data["diag"]) and all(
        np.array_equal(a, b) for a, b in zip(stencil.couplings, data["couplings"])
    )
    if not same:
        return False, "the C++ program's matrix differs from sciml's PoissonGrid stencil"
    solver = DCDM.load()
    result = solver.solve(grid, data["b"], rtol=RTOL_SOLVE)
    x_cpp, x_py = data["x"], result.x
    A, b = grid.matrix(), grid.to_vector(data["b"])
    residual = np.linalg.norm(b - A @ grid.to_vector(x_cpp)) / np.linalg.norm(b)
    error = np.linalg.norm(x_cpp - x_py) / np.linalg.norm(x_py)
    ok = result.converged and residual <= RTOL_SOLVE * 1.0001 and error <= RTOL_AGREE
    if box:
        ok = ok and abs(grid.to_vector(x_cpp).mean()) <= 1e-12 * np.abs(x_cpp).max()
    line = (
        f"{'box  ' if box else 'plume'} {n}x{n}: C++ {data['iterations']} iterations, Python "
        f"{result.iterations}; C++ relative residual {residual:.2e}; ‖x_cpp − x_py‖/‖x_py‖ = {error:.2e}"
        f" ({'ok' if ok else 'MISMATCH'}); C++ says: {run.stdout.strip()}"
    )
    return ok, line


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument("--exe", required=True, help="the built pressure_solve program")
    parser.add_argument(
        "--work",
        default="runs/cpp-check",
        help="directory for the exported model (dcdm_2d.pt) and the outputs (plume.bin, box.bin)",
    )
    parser.add_argument("--n", type=int, default=64, help="cells per side (>= 8)")
    args = parser.parse_args()
    if args.n < 8:
        parser.error(f"--n must be >= 8, got {args.n}")
    exe = Path(args.exe)
    if not exe.is_file() or not os.access(exe, os.X_OK):
        parser.error(
            f"argument --exe: {exe} is not an executable file (build it with examples/cpp/build_and_run.sh)"
        )
    try:
        work = check_writable_dir(args.work, "--work")
    except ValueError as error:
        parser.error(str(error))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = DCDM.load().export(work / "dcdm_2d.pt")
    results = [check(exe, model, work, args.n, box) for box in (False, True)]
    for _, line in results:
        print(line)
    files = [f.name for f in (Path(model), work / "plume.bin", work / "box.bin") if f.exists()]
    print(f"wrote {', '.join(files)} in {work} (the exported model and the C++ program's outputs)")
    return 0 if all(ok for ok, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""``sciml relax SEQUENCE``: solve a user's sequence of linear systems with a tuned relaxation factor.

SEQUENCE is a folder or an HDF5 file:

* folder — one matrix per system, ``STEM.npz`` (``scipy.sparse.save_npz``) or ``STEM.mtx`` (Matrix Market,
  ``scipy.io.mmwrite``), and its right-hand side ``STEM.rhs.npy`` or ``STEM.rhs.mtx``; systems are taken
  in natural order of STEM (``A2`` before ``A10``);
* HDF5 (``.h5`` / ``.hdf5``) — one group per system (natural order of the names) holding the CSR arrays
  ``data``, ``indices``, ``indptr``, ``shape`` and the right-hand side ``b``.

Every system is solved by SOR or SSOR-preconditioned CG with ω from :class:`~sciml.relax.PriorTuner`
(spectral prior + capped exploration). Unless ``--no-baselines``, the same systems are also solved with
ω = 1, Young's ω from the estimated Jacobi spectral radius, and every ω of a fine grid (best fixed ω in
hindsight, instance-optimal). Writes ``relax.json`` (per system: iterations, ω, whether explored) and
``relax.png`` (cumulative iterations of the tuner and every baseline).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
import scipy.sparse as sp

from sciml.checkpoint import check_writable_dir, save_figure, write_json
from sciml.problems.linear.sequences import LinearInstance
from sciml.relax.prior import SOLVERS, PriorTuner
from sciml.relax.sequence import grid_table, run_fixed, run_prior, run_young

HELP = "solve a folder (or HDF5 file) of linear systems with a tuned SOR / SSOR-PCG relaxation factor"

_MATRIX_EXT = (".npz", ".mtx")
_RHS_EXT = (".rhs.npy", ".rhs.mtx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sequence", metavar="SEQUENCE", help="folder of STEM.npz|mtx + STEM.rhs.npy|mtx, or HDF5 file"
    )
    parser.add_argument(
        "--solver", choices=SOLVERS, default="sor", help="SOR or SSOR-preconditioned CG (default sor)"
    )
    parser.add_argument("--rtol", type=float, default=1e-8, help="relative residual tolerance (default 1e-8)")
    parser.add_argument(
        "--maxiter", type=int, default=10_000, help="iteration limit per system (default 10000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="tuner seed (default 0)")
    parser.add_argument("--out", default="relax-results", help="folder for relax.json and relax.png")
    parser.add_argument(
        "--grid-step", type=float, default=0.01, help="ω spacing of the best-fixed grid (0.01)"
    )
    parser.add_argument("--no-baselines", action="store_true", help="only run the tuner (no baseline solves)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _load_matrix(path: Path) -> sp.csr_array:
    try:
        if path.suffix == ".npz":
            A = sp.load_npz(path)
            if hasattr(A, "check_format"):  # index arrays out of range would crash the conversion below
                A.check_format(full_check=True)
            return sp.csr_array(A)
        return sp.csr_array(scipy.io.mmread(path))
    except Exception as exc:  # noqa: BLE001 - every reader error becomes one message naming the file
        raise ValueError(
            f"SEQUENCE: cannot read {path.name} as a sparse matrix ({exc}); write .npz files with "
            "scipy.sparse.save_npz and .mtx files with scipy.io.mmwrite"
        ) from exc


def _load_vector(path: Path) -> np.ndarray:
    try:
        v = np.load(path, allow_pickle=False) if path.suffix == ".npy" else scipy.io.mmread(path)
        v = v.toarray() if sp.issparse(v) else np.asarray(v)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"SEQUENCE: cannot read right-hand side {path.name} ({exc})") from exc
    if v.ndim == 2 and 1 in v.shape:
        v = v.ravel()
    if v.ndim != 1:
        raise ValueError(f"SEQUENCE: right-hand side {path.name} must be a vector, got shape {v.shape}")
    if v.dtype.kind not in "biuf":
        raise ValueError(
            f"SEQUENCE: right-hand side {path.name} has dtype {v.dtype}; it must be real (the solvers do not "
            "drop an imaginary part: split a complex system into real and imaginary parts)"
        )
    return np.asarray(v, dtype=np.float64)


def _check(name: str, A: sp.csr_array, b: np.ndarray, solver: str) -> LinearInstance:
    if A.shape[0] != A.shape[1]:
        raise ValueError(
            f"SEQUENCE: matrix of {name} is {A.shape[0]}×{A.shape[1]}; every matrix must be square"
        )
    if A.shape[0] == 0:
        raise ValueError(f"SEQUENCE: matrix of {name} is empty")
    if A.dtype.kind not in "biuf":
        raise ValueError(f"SEQUENCE: matrix of {name} has dtype {A.dtype}; it must be real")
    A = sp.csr_array(A, dtype=np.float64)
    A.sum_duplicates()
    if not np.isfinite(A.data).all():
        raise ValueError(f"SEQUENCE: matrix of {name} has non-finite entries")
    if b.shape != (A.shape[0],):
        raise ValueError(
            f"SEQUENCE: right-hand side of {name} has length {b.size}, its matrix {A.shape[0]} rows"
        )
    if not np.isfinite(b).all():
        raise ValueError(f"SEQUENCE: right-hand side of {name} has non-finite entries")
    d = A.diagonal()
    bad = np.flatnonzero(~(d > 0))
    if bad.size:
        raise ValueError(
            f"SEQUENCE: matrix of {name} has diagonal entry {d[bad[0]]:.3g} at row {bad[0]}; SOR and SSOR "
            "need a positive diagonal (reorder or scale the system so it has one)"
        )
    if solver == "ssor-pcg":
        asym = abs(A - A.T)
        if asym.nnz and asym.max() > 1e-12 * abs(A).max():
            raise ValueError(
                f"SEQUENCE: matrix of {name} is not symmetric; --solver ssor-pcg needs SPD matrices"
            )
    return LinearInstance(A, b, 0.0)


def load_sequence(path: str | Path, solver: str = "sor") -> tuple[list[str], list[LinearInstance]]:
    """Read a sequence folder or HDF5 file (layouts in the module docstring) and check every system.

    Returns:
        ``(names, systems)`` in natural order of the names.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: an empty folder, a matrix without right-hand side or the reverse, unreadable files,
            non-square matrices, non-positive diagonal entries, length mismatches, non-finite values,
            nonsymmetric matrices for ``ssor-pcg`` — each naming the file or group.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"SEQUENCE {path} does not exist (give a folder or an .h5 file)")
    if path.is_file():
        if path.suffix not in (".h5", ".hdf5"):
            raise ValueError(
                f"SEQUENCE {path} is a file but not HDF5 (.h5/.hdf5); give a folder or an HDF5 file"
            )
        return _load_hdf5(path, solver)
    matrices: dict[str, Path] = {}
    rhs: dict[str, Path] = {}
    for f in path.iterdir():
        if f.name.startswith(".") or not f.is_file():
            continue
        ext = next((e for e in _RHS_EXT if f.name.endswith(e)), None)
        if ext:
            rhs[f.name[: -len(ext)]] = f
        elif f.suffix in _MATRIX_EXT:
            matrices[f.stem] = f
    if not matrices and not rhs:
        raise ValueError(
            f"SEQUENCE folder {path} holds no systems: expected STEM.npz or STEM.mtx matrices with "
            "STEM.rhs.npy or STEM.rhs.mtx right-hand sides"
        )
    lonely = sorted(set(matrices) - set(rhs), key=_natural_key)
    orphans = sorted(set(rhs) - set(matrices), key=_natural_key)
    if lonely or orphans:
        parts = []
        if lonely:
            parts.append(
                f"matrices without right-hand side: {', '.join(matrices[s].name for s in lonely[:5])}"
            )
        if orphans:
            parts.append(f"right-hand sides without matrix: {', '.join(rhs[s].name for s in orphans[:5])}")
        raise ValueError(
            f"SEQUENCE folder {path} has unmatched files ({'; '.join(parts)}); each STEM.npz|mtx needs "
            "STEM.rhs.npy|mtx"
        )
    names = sorted(matrices, key=_natural_key)
    systems = [
        _check(matrices[s].name, _load_matrix(matrices[s]), _load_vector(rhs[s]), solver) for s in names
    ]
    return names, systems


def _load_hdf5(path: Path, solver: str) -> tuple[list[str], list[LinearInstance]]:
    import h5py

    names, systems = [], []
    with h5py.File(path, "r") as f:
        keys = sorted(f.keys(), key=_natural_key)
        if not keys:
            raise ValueError(f"SEQUENCE file {path} holds no groups; expected one group per system")
        for key in keys:
            g = f[key]
            missing = [k for k in ("data", "indices", "indptr", "shape", "b") if k not in g]
            if missing:
                raise ValueError(
                    f"SEQUENCE file {path}: group {key!r} lacks {', '.join(missing)} (each group holds "
                    "the CSR arrays data, indices, indptr, shape and the right-hand side b)"
                )
            shape = tuple(int(v) for v in np.asarray(g["shape"]))
            try:
                A = sp.csr_array(
                    (np.asarray(g["data"]), np.asarray(g["indices"]), np.asarray(g["indptr"])), shape=shape
                )
                A.check_format(full_check=True)  # indices out of range would crash the solvers
            except ValueError as exc:
                raise ValueError(
                    f"SEQUENCE file {path}: group {key!r} is not a valid CSR matrix ({exc})"
                ) from exc
            names.append(key)
            systems.append(_check(f"group {key!r}", A, np.asarray(g["b"], dtype=np.float64).ravel(), solver))
    return names, systems


def _cost(run: dict, maxiter: int) -> np.ndarray:
    """Per system the iterations of a run, ``maxiter`` where it did not converge (never looks cheap)."""
    return np.where(run["converged"], run["iterations"], maxiter)


def _best_fixed(systems, solver, grid, table, rtol, maxiter) -> tuple[int, dict]:
    """The grid's ω with the least true total (failed solves counted as ``maxiter``) and its uncapped run.

    The table's column sums are lower bounds (capped entries), so columns are rerun without the cap in
    order of their bound until no bound is below the best true total found.
    """
    bounds = table.sum(0)
    best_j, best, best_total = -1, None, np.inf
    for j in np.argsort(bounds, kind="stable"):
        if bounds[j] >= best_total:
            break
        run = run_fixed(systems, solver, float(grid[j]), rtol=rtol, maxiter=maxiter)
        total = _cost(run, maxiter).sum()
        if total < best_total:
            best_j, best, best_total = int(j), run, total
    return best_j, best


def _plot(curves: dict[str, np.ndarray], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, its in curves.items():
        c = np.cumsum(its)
        ax.plot(np.arange(1, c.size + 1), c, "-" if name == "prior-tuner" else "--", label=name, lw=1.6)
    ax.set_yscale("log")
    ax.set_xlabel("system")
    ax.set_ylabel("cumulative iterations")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main(args: argparse.Namespace) -> int:
    if not (np.isfinite(args.rtol) and 0 < args.rtol < 1):
        raise ValueError(f"--rtol must lie in (0, 1), got {args.rtol}")
    if args.maxiter < 1:
        raise ValueError(f"--maxiter must be a positive integer, got {args.maxiter}")
    if not 0 < args.grid_step <= 0.1:
        raise ValueError(f"--grid-step must lie in (0, 0.1], got {args.grid_step}")
    names, systems = load_sequence(args.sequence, args.solver)
    out = check_writable_dir(args.out)  # (only once the inputs loaded: a failed load leaves no folder)
    progress = not args.no_progress
    kw: dict[str, Any] = {"rtol": args.rtol, "maxiter": args.maxiter, "progress": progress}
    tuner = PriorTuner(args.solver, seed=args.seed)
    main_run = run_prior(
        systems, args.solver, seed=args.seed, desc=f"{args.solver} + prior tuner", tuner=tuner, **kw
    )
    curves = {"prior-tuner": main_run["iterations"]}
    totals = {"prior-tuner": int(main_run["iterations"].sum())}
    failed = {"prior-tuner": int((~np.asarray(main_run["converged"], dtype=bool)).sum())}  # hit --maxiter
    payload: dict[str, Any] = {
        "sequence": str(args.sequence),
        "solver": args.solver,
        "rtol": args.rtol,
        "systems": [
            {
                "name": n,
                "iterations": int(main_run["iterations"][t]),
                "omega": float(main_run["omega"][t]),
                "explored": bool(main_run["explored"][t]),
                "censored": bool(main_run["censored"][t]),
                "converged": bool(main_run["converged"][t]),
            }
            for t, n in enumerate(names)
        ],
        "prior_matvecs": int(main_run["prior_matvecs"]),
        "seconds": main_run["seconds"],
    }
    if not args.no_baselines:
        one = run_fixed(systems, args.solver, 1.0, desc="ω = 1", **kw)
        young = run_young(systems, args.solver, desc="Young (estimated)", **kw)
        best_seen = np.minimum.reduce([_cost(r, args.maxiter) for r in (main_run, one, young)])
        used = np.concatenate([main_run["omega"], young["omega"]])
        grid, table = grid_table(
            systems,
            args.solver,
            used,
            rtol=args.rtol,
            maxiter=args.maxiter,
            step=args.grid_step,
            reference=np.maximum(best_seen, 1),
            progress=progress,
        )
        j, best = _best_fixed(systems, args.solver, grid, table, args.rtol, args.maxiter)
        instance = np.minimum.reduce(
            [table.min(1)] + [_cost(r, args.maxiter) for r in (main_run, one, young, best)]
        )
        curves.update(
            {
                "omega=1": one["iterations"],
                "young-estimated": young["iterations"],
                f"best-fixed (ω={grid[j]:.3f})": best["iterations"],
                "instance-optimal": instance,
            }
        )
        failed.update(
            {
                "omega=1": int((~np.asarray(one["converged"], dtype=bool)).sum()),
                "young-estimated": int((~np.asarray(young["converged"], dtype=bool)).sum()),
                "best-fixed": int((~np.asarray(best["converged"], dtype=bool)).sum()),
                # failed solves count as --maxiter here: such an entry may not have converged
                "instance-optimal": int((instance >= args.maxiter).sum()),
            }
        )
        totals.update(
            {
                "omega=1": int(one["iterations"].sum()),
                "young-estimated": int(young["iterations"].sum()),
                "best-fixed": int(best["iterations"].sum()),
                "instance-optimal": int(instance.sum()),
            }
        )
        payload["baselines"] = {
            "best_fixed_omega": float(grid[j]),
            "grid": [float(grid[0]), float(grid[-1]), float(args.grid_step)],
            "young_undefined": young["young_undefined"],
            "per_system": {k: [int(v) for v in its] for k, its in curves.items() if k != "prior-tuner"},
        }
        for t, row in enumerate(payload["systems"]):
            row["young_omega"] = float(young["omega"][t])
    payload["totals"] = totals
    write_json(out / "relax.json", payload)
    png = out / "relax.png"
    _plot(
        curves, png, f"{Path(args.sequence).name}: {len(systems)} systems, {args.solver}, rtol {args.rtol:g}"
    )
    width = max(len(k) for k in totals)
    ref = totals.get("best-fixed") if not failed.get("best-fixed") else None  # capped totals: no ratios
    for k, v in totals.items():
        extra = f"  ({v / ref:.3f}× best fixed)" if ref else ""
        if failed.get(k):
            extra += f"  [not converged on {failed[k]} of {len(systems)} systems: a lower bound]"
        print(f"{k:<{width}}  {v:>10d} iterations{extra}")
    undefined = payload.get("baselines", {}).get("young_undefined", 0)
    if undefined:
        print(
            f"young-estimated: Young's formula is undefined on {undefined} of {len(systems)} systems "
            "(estimated Jacobi spectral radius >= 1, e.g. a singular or pure-Neumann matrix); ω = 1 was used "
            "there"
        )
    if failed.get("best-fixed"):
        print(
            "ratios to the best fixed ω are omitted: it did not converge on some systems, so the totals are "
            "not costs; raise --maxiter, or see the other baselines"
        )
    if not all(r["converged"] for r in payload["systems"]):
        bad = [r["name"] for r in payload["systems"] if not r["converged"]]
        print(
            f"warning: {len(bad)} system(s) did not converge within --maxiter: {', '.join(bad[:5])}",
            file=sys.stderr,
        )
    print(f"wrote {out / 'relax.json'} and {png}")
    return 0

"""``sciml pde``: train a PINN or a PIG on a problem of the PDE suite, or on a user's own problem
(``--problem FILE.py:FUNCTION``); ``--reference FILE``: errors against points and values from a file, e.g. a
finite-element solution.

Writes to ``--out``: ``metrics.json`` (final relative L2 error, iterations, wall time, parameters,
history), ``fields.h5`` (test-grid axes, reference, prediction and error), ``fields.png`` (prediction /
reference / error), ``history.png``
(loss terms and error against the iteration) and ``checkpoint.pt`` (for ``--resume``).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from sciml.problems.pde import PDEProblem

HELP = "train a PINN or PIG on a PDE problem (--list shows the problems)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--problem",
        help="problem name (see --list), or FILE.py:FUNCTION, a function of yours that returns a PDEProblem",
    )
    parser.add_argument("--model", choices=("pinn", "pig"), default="pig", help="default: %(default)s")
    parser.add_argument("--list", action="store_true", help="list the problems and exit")
    parser.add_argument(
        "--budget",
        choices=("quick", "default", "full"),
        default="default",
        help="preset budget: quick smoke run, default (~3 min on 2 CPU cores), full (the paper's)",
    )
    parser.add_argument(
        "--iterations", type=int, default=None, help="total iterations, split like the preset's Adam/L-BFGS"
    )
    parser.add_argument("--adam", type=int, default=None, help="Adam iterations (overrides the split)")
    parser.add_argument("--lbfgs", type=int, default=None, help="L-BFGS iterations (overrides the split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--time-windows",
        type=int,
        default=None,
        help="time-marching over K time windows, the iterations split between them (default: the preset's)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: the preset's")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu, cuda, cuda:N or auto (cuda when available); default: %(default)s",
    )
    parser.add_argument("--out", default=None, help="output directory (default: runs/pde-PROBLEM-MODEL)")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    parser.add_argument(
        "--reference",
        default=None,
        help="measure errors against FILE (.npz or .h5 with arrays 'points' (m, ndim) and 'values'), "
        "e.g. a finite-element solution, instead of the problem's own reference",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def _split(config, iterations: int | None, adam: int | None, lbfgs: int | None):
    """Apply ``--iterations`` / ``--adam`` / ``--lbfgs`` to a config."""
    changes = {}
    if iterations is not None:
        if iterations < 0:
            raise ValueError(f"--iterations must be ≥ 0, got {iterations}")
        total = config.iterations or 1
        a = round(iterations * config.adam_iterations / total)
        changes.update(adam_iterations=a, lbfgs_iterations=iterations - a)
    if adam is not None:
        changes["adam_iterations"] = adam
    if lbfgs is not None:
        changes["lbfgs_iterations"] = lbfgs
    return dataclasses.replace(config, **changes)


def save_fields(path: Path, reference, prediction: np.ndarray, names: tuple[str, ...], attrs: dict) -> None:
    """Axes, reference, prediction and error on the test grid, as HDF5 (written atomically)."""
    import h5py

    from sciml.solvers.cache import atomic_write

    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, axis in zip(names, reference.axes):
                f.create_dataset(f"axes/{name}", data=axis)
            f.create_dataset("reference", data=reference.values)
            f.create_dataset("prediction", data=prediction)
            f.create_dataset("error", data=prediction - reference.values)
            for key, value in attrs.items():
                f.attrs[key] = value


def plot_fields(path: Path, reference, prediction: np.ndarray, names: tuple[str, ...], title: str) -> None:
    """PNG of prediction / reference / error (1-D: curves; 2-D: images; 3-D: the last time slice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    ref, pred = reference.values[..., 0], prediction[..., 0]
    axes = reference.axes
    if ref.ndim == 1:
        fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
        ax[0].plot(axes[0], ref, "k-", label="reference")
        ax[0].plot(axes[0], pred, "r--", label="prediction")
        ax[0].set_xlabel(names[0])
        ax[0].legend()
        err = np.abs(pred - ref)
        floor = max(
            float(np.nanmax(err)) * 1e-12, np.finfo(np.float64).tiny
        )  # exact zeros do not stretch the axis
        ax[1].semilogy(axes[0], np.maximum(err, floor))
        ax[1].set_title("|error|")
        ax[1].set_xlabel(names[0])
    else:
        label = ""
        if ref.ndim == 3:  # (x, y, t): last time slice
            ref, pred = ref[..., -1], pred[..., -1]
            label = f" at {names[2]} = {axes[2][-1]:g}"
        # arrays are indexed (first coordinate, second): transpose so the first runs along the x axis
        extent = [axes[0][0], axes[0][-1], axes[1][0], axes[1][-1]]
        fig, ax = plt.subplots(1, 3, figsize=(14, 4))
        # NaN marks grid points outside a non-box domain (left blank)
        lo, hi = float(min(np.nanmin(ref), np.nanmin(pred))), float(max(np.nanmax(ref), np.nanmax(pred)))
        if lo < 0 < hi:  # a diverging map centred on zero
            lo, hi = -max(-lo, hi), max(-lo, hi)
        for a, data, name in ((ax[0], pred, "prediction"), (ax[1], ref, "reference")):
            im = a.imshow(
                data.T, origin="lower", extent=extent, aspect="auto", vmin=lo, vmax=hi, cmap="RdBu_r"
            )
            a.set_title(name + label)
            fig.colorbar(im, ax=a)
        bound = float(np.nanmax(np.abs(pred - ref))) or 1.0
        im = ax[2].imshow(
            (pred - ref).T,
            origin="lower",
            extent=extent,
            aspect="auto",
            vmin=-bound,
            vmax=bound,
            cmap="RdBu_r",
        )
        ax[2].set_title("error")
        fig.colorbar(im, ax=ax[2])
        for a in ax:
            a.set_xlabel(names[0])
            a.set_ylabel(names[1])
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_history(path: Path, history: list[dict], title: str) -> None:
    """PNG of the training loss (and each loss term) and the relative L2 error against the iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    averaged = [h for h in history if h.get("phase") == "average"]  # the tail-averaged model, if any
    history = [h for h in history if h.get("phase") != "average"]
    it = np.array([h["iteration"] for h in history], dtype=float)
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.5))
    keys = ["loss"] + sorted(k for k in (history[0] if history else {}) if k.startswith("loss_"))
    for key in keys:
        values = np.array([h.get(key, np.nan) for h in history], dtype=float)
        ax[0].semilogy(
            it, np.where(values > 0, values, np.nan), "." + ("-" if key == "loss" else "--"), label=key
        )
    ax[1].semilogy(it, [h["rel_l2"] for h in history], "k.-", label="last iterate")
    for h in averaged:
        ax[0].semilogy([h["iteration"]], [h["loss"]], "r*", markersize=10, label="loss, tail average")
        if h["rel_l2"] is not None:
            ax[1].semilogy([h["iteration"]], [h["rel_l2"]], "r*", markersize=10, label="tail average")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("loss")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("relative L2 error")
    if averaged:
        ax[1].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _load_problem(spec: str) -> PDEProblem:
    """A registered problem by name, or ``FILE.py:FUNCTION``: a user's function that returns a problem.

    Raises:
        ValueError: an unknown name, a missing file or function, or a function that does not return a
            ``PDEProblem``.
    """
    import sciml.problems.pde as pde

    path, sep, function = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        return pde.get(spec)
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--problem {spec}: no file {file}")
    module_spec = importlib.util.spec_from_file_location(f"sciml_user_problem_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    factory = getattr(module, function, None)
    if not callable(factory):
        raise ValueError(f"--problem {spec}: {file} defines no function {function!r}")
    problem = factory()
    if not isinstance(problem, pde.PDEProblem):
        kind = type(problem).__name__
        raise ValueError(f"--problem {spec}: {function}() returned {kind}, not a PDEProblem")
    return problem


def main(args: argparse.Namespace) -> int:
    import sciml.problems.pde as pde
    from sciml.checkpoint import check_writable_dir, write_json
    from sciml.pinn.presets import build_model, preset
    from sciml.pinn.trainer import Trainer, TrainingDiverged, resolve_device

    if args.list:
        for name, description in pde.describe().items():
            print(f"{name:22s} {description}")
        return 0
    if not args.problem:
        raise ValueError(f"--problem is required; choose one of: {', '.join(pde.names())} (or use --list)")
    for flag in ("iterations", "adam", "lbfgs", "seed"):
        value = getattr(args, flag)
        if value is not None and value < 0:
            raise ValueError(f"--{flag} must be ≥ 0, got {value}")
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(getattr(args, "device", "cpu"), "--device")
    problem = _load_problem(args.problem)
    settings = preset(problem.name)
    config = _split(settings.config(args.budget, args.model), args.iterations, args.adam, args.lbfgs)
    if args.time_windows is not None:
        if args.time_windows < 1:
            raise ValueError(f"--time-windows must be ≥ 1, got {args.time_windows}")
        config = dataclasses.replace(config, time_windows=args.time_windows)
    config = dataclasses.replace(
        config, seed=args.seed, device=str(device), **({"dtype": args.dtype} if args.dtype else {})
    )
    out = Path(args.out or f"runs/pde-{problem.name}-{args.model}")
    if args.resume and not (out / "checkpoint.pt").exists():  # checked before the directory is created
        raise ValueError(
            f"--resume: {out / 'checkpoint.pt'} does not exist; drop --resume to train from scratch "
            "or pass the --out directory of an earlier run"
        )
    if not args.resume and (out / "checkpoint.pt").exists():  # a second run would overwrite the first
        raise ValueError(
            f"--out {out} already holds a run (checkpoint.pt): pass --resume to continue it, or a new --out "
            "(or delete that folder) to train from scratch"
        )
    out = check_writable_dir(out)
    if args.budget == "quick" and args.iterations is None and args.adam is None and args.lbfgs is None:
        print(
            f"sciml pde: --budget quick is a smoke run ({config.iterations} iterations) that checks the "
            "pipeline; its error says nothing about the method (use --budget default or full)"
        )
    model = build_model(problem, args.model, settings, seed=args.seed)
    trainer = Trainer(problem, model, config, reference=args.reference, checkpoint=out / "checkpoint.pt")
    try:
        result = trainer.fit(progress=not args.no_progress, resume=args.resume)
    except TrainingDiverged as exc:
        print(f"sciml pde: {exc}", file=sys.stderr)
        return 1
    names = problem.domain.names
    metrics = {
        "problem": problem.name,
        "model": args.model,
        "seed": args.seed,
        "rel_l2": result.rel_l2,
        "iterations": result.iterations,
        "seconds": result.seconds,
        "params": result.params,
        "message": result.message,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "reference": trainer.reference_source,
        "config": config.to_dict(),
        "history": result.history,
    }
    write_json(out / "metrics.json", metrics)
    attrs = {
        "problem": problem.name,
        "model": args.model,
        "rel_l2": result.rel_l2,
        "coordinates": ",".join(names),
    }
    title = f"{problem.name}, {args.model.upper()}: rel. L2 error {result.rel_l2:.3e}, {result.iterations} it"
    written = [out / "metrics.json", out / "history.png"]
    if trainer.reference is not None:  # a grid: fields on it (scattered reference points have none)
        prediction = trainer.prediction_grid()
        save_fields(out / "fields.h5", trainer.reference, prediction, names, attrs)
        plot_fields(out / "fields.png", trainer.reference, prediction, names, title)
        written[1:1] = [out / "fields.h5", out / "fields.png"]
    plot_history(out / "history.png", result.history, title)
    print(
        f"{problem.name} {args.model}: relative L2 error {result.rel_l2:.4e} after {result.iterations} "
        f"iterations in {result.seconds:.1f} s ({result.params} parameters); {result.message}"
    )
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0

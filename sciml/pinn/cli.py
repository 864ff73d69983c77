"""``sciml pde``: train a PINN or a PIG on a problem of the PDE suite, or on a user's own problem
(``--problem FILE.py:FUNCTION``); ``--reference FILE``: errors against points and values from a file, e.g. a
finite-element solution.

Writes to ``--out``: ``metrics.json`` (final relative L2 error, iterations, wall time, parameters,
history), ``fields.h5`` (test-grid axes, reference, prediction and error, the field names in the attribute
``fields``; a ``--reference`` file whose points form a complete tensor grid is written on that grid; without
a reference on a grid, the prediction alone on the problem's test grid), ``fields.png`` (prediction /
reference / error, one row per
field; grids of more than two coordinates are sliced at the last time and through the middle of the other
spatial coordinates), ``history.png``
(loss terms and error against the iteration; without a reference, the residual statistics) and
``checkpoint.pt`` (for ``--resume``). A problem from a file gets its suite preset only if it is the suite
problem of its name (the same content); otherwise the generic preset, which logs (``--eval-every``) at least
20 times in a short run. The command prints which.

``--unknowns a=0.2,D=1``: an inverse problem, the coefficients ``a`` and ``D`` of the problem's ``params``
fitted (from these initial guesses) to its ``Observations``; the fitted values are printed, and written to
``metrics.json`` (``"unknowns"``, ``{}`` for a forward problem) and as ``unknown_NAME`` attributes of
``fields.h5``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import dis
import importlib.util
import inspect
import math
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
        help="problem name (see --list), or FILE.py:FUNCTION, a function of yours that returns a PDEProblem "
        "(or FILE.py:NAME, a PDEProblem the file defines)",
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
        "--iterations",
        type=int,
        default=None,
        help="total iterations, split between Adam and L-BFGS in the preset's proportions; the generic "
        "preset (a problem without a suite preset, e.g. from a file) trains with Adam alone (with --budget "
        "quick: 4/5 Adam, 1/5 L-BFGS), so give --adam and --lbfgs for L-BFGS there (default: the budget's; "
        "not with --adam/--lbfgs)",
    )
    parser.add_argument(
        "--adam",
        type=int,
        default=None,
        help="Adam iterations (default: the budget's; not with --iterations)",
    )
    parser.add_argument(
        "--lbfgs",
        type=int,
        default=None,
        help="L-BFGS iterations (default: the budget's; not with --iterations)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the network's initial weights and the points (default 0)"
    )
    parser.add_argument(
        "--time-windows",
        type=int,
        default=None,
        help="time-marching over K time windows, the iterations split between them (default: the preset's)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        default=None,
        metavar="N",
        help="log the loss terms and the error every N iterations (history.png, metrics.json; default: the "
        "preset's; the generic preset logs at least 20 times in a short run)",
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
    parser.add_argument(
        "--unknowns",
        type=parse_unknowns,
        default=None,
        metavar="NAME=GUESS[,NAME=GUESS...]",
        help="inverse problem: fit these coefficients of the problem's params to its Observations, starting "
        "from the guesses, e.g. --unknowns a=0.2,D=1; the fitted values are printed and written to "
        "metrics.json and fields.h5 (not with --time-windows; --resume needs the same --unknowns)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def parse_unknowns(text: str) -> dict[str, float]:
    """``--unknowns a=0.2,D=1`` as ``{"a": 0.2, "D": 1.0}``.

    Args:
        text: comma-separated ``NAME=GUESS`` pairs.

    Returns:
        The initial guess of each coefficient, in the order given.

    Raises:
        argparse.ArgumentTypeError: a pair that is not ``NAME=GUESS``, a guess that is not a finite
            number, or a name given twice.
    """
    example = "e.g. --unknowns a=0.2,D=1"
    out: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = (part.strip() for part in item.partition("="))
        if not sep or not name or not value:
            raise argparse.ArgumentTypeError(
                f"{item.strip()!r} is not NAME=GUESS (a coefficient of the problem's params and its initial "
                f"guess); {example}"
            )
        try:
            guess = float(value)
        except ValueError:
            guess = None
        if guess is None or not math.isfinite(guess):
            raise argparse.ArgumentTypeError(
                f"the initial guess of {name!r} is {value!r}, not a finite number; e.g. --unknowns {name}=0.1"
            )
        if name in out:
            raise argparse.ArgumentTypeError(f"{name!r} is given twice ({text!r}); give each one once")
        out[name] = guess
    return out


def time_windows_words(message: str, given: bool = True) -> str:
    """A trainer message about ``TrainConfig.time_windows`` in the words of the command line (``given``:
    the option was on the command line; else the preset's windows, which ``--time-windows 1`` turns off)."""
    own = "pass --time-windows 1 (to turn off the preset's time-marching windows)"
    fix = "drop --time-windows (or pass --time-windows 1)" if given else own
    return (
        message.replace("set time_windows=1", fix)
        .replace("`time_windows` = ", "--time-windows ")
        .replace("`time_windows`", "--time-windows")
    )


def reference_words(message: str, path: str) -> str:
    """A trainer message about the reference file ``path`` in the words of the command line."""
    option = f"--reference {path}"
    return message.replace(f"reference file {Path(path)}", option).replace("`reference`", option)


def unknowns_words(message: str) -> str:
    """A trainer message about ``unknowns`` in the words of the command line."""
    recipe = message.find(" Pass the reference yourself")
    if recipe >= 0:  # the Python ways to give a reference, in the command line's
        message = message[:recipe] + (
            " Pass the true solution with --reference FILE (.npz or .h5 with arrays 'points' and "
            "'values'), or, for a problem of your own, return it with reference=None (no errors are then "
            "measured); where problem.params hold the true coefficients (a synthetic test), start "
            "--unknowns from other guesses"
        )
    return message.replace("`unknowns`", "--unknowns")


#: the differences (of a CheckpointMismatch message) in the fields that the iteration budget sets
_BUDGET = ("config.adam_iterations:", "config.lbfgs_iterations:")


def resume_words(message: str, out: Path, eval_every_given: bool) -> str:
    """The trainer's refusal to resume (a :class:`CheckpointMismatch` message) in the command line's words.

    A changed iteration budget is a new run (a stored run is not extended): said so, and ``eval_every``,
    derived from the budget unless ``--eval-every`` was given, is then not listed as a difference.
    """
    what = message.split(". To continue that run")[0]
    if "cannot be continued" in what:  # written by an earlier sciml
        return f"--resume: {what.split(': train anew')[0]}: drop --resume and pass another --out directory"
    differences = what.partition("): ")[2].split("; ")
    budget = [d for d in differences if d.startswith(_BUDGET)]
    if not budget:
        return (
            f"--resume: {what}. To continue that run, give the options it was started with (--problem, "
            "--model, --budget, --iterations/--adam/--lbfgs, --time-windows, --eval-every, --dtype, --seed, "
            "--unknowns) with --resume; to train with these options, drop --resume and pass another --out "
            "directory"
        )
    derived = () if eval_every_given else ("config.eval_every:",)
    others = [d for d in differences if d not in budget and not d.startswith(derived)]
    also = f" and other options ({'; '.join(others)})" if others else ""
    budget = "; ".join(budget)
    return (
        f"--resume: {out / 'checkpoint.pt'} holds a run of another iteration budget ({budget}){also}, "
        "and a stored run, finished or not, cannot be extended by changing its budget. Start a new run with "
        f"this budget: drop --resume and pass another --out directory (or delete {out}); to continue the "
        "stored run, give --resume the options it was started with"
    )


def check_time_windows(problem: PDEProblem, windows: int, iterations: int) -> None:
    """Refuse ``--time-windows K`` (before any work) for a problem without time or with fewer iterations.

    Raises:
        ValueError: naming ``--time-windows``.
    """
    if windows > 1 and problem.domain.time_index is None:
        raise ValueError(
            f"--time-windows {windows} cuts the time interval into windows, but {problem.name} has no time "
            f"coordinate (coordinates {problem.domain.names}); drop --time-windows (or pass --time-windows 1)"
        )
    if windows > max(iterations, 1):
        raise ValueError(
            f"--time-windows {windows} needs at least {windows} iterations (one per window), got "
            f"{iterations}; raise --iterations or lower --time-windows"
        )


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


#: the generic preset logs at least this many times in a run (a short run of a problem from a file)
_MIN_LOGS = 20


def short_run_eval_every(config) -> int:
    """The generic preset's ``eval_every``, lowered so that a short run logs at least ``_MIN_LOGS`` times."""
    return max(1, min(config.eval_every, config.iterations // _MIN_LOGS))


def reference_grid(points: np.ndarray, values: np.ndarray, source: str):
    """The reference as a :class:`ReferenceSolution` when its ``points`` form a complete tensor grid (every
    combination of the coordinates' values once, in any row order, values within 1e-9 of the extent taken as
    equal; in one coordinate, where any points do, evenly spaced ones), else ``None``."""
    from sciml.pinn.trainer import _tensor_grid
    from sciml.solvers.fd.reference import ReferenceSolution

    found = _tensor_grid(points)
    if found is None:
        return None
    axes, flat = found
    shape = tuple(len(a) for a in axes)
    if len(axes) == 1 and not np.allclose(np.diff(axes[0]), axes[0][1] - axes[0][0], rtol=1e-6, atol=0):
        return None  # scattered points on a line: shown against the test grid instead
    values = values.reshape(points.shape[0], -1)
    grid = np.empty_like(values)
    grid[flat] = values
    return ReferenceSolution(axes, grid.reshape(*shape, values.shape[1]), source)


def _file_grid(trainer, path: str):
    """The reference file ``path`` on its tensor grid (NaN outside the domain) and the model there, or
    ``(None, None)`` for scattered points."""
    from sciml.pinn.trainer import _read_reference

    problem = trainer.problem
    points, values = _read_reference(Path(path), problem.domain.names, problem.fields)
    grid = reference_grid(points, values, trainer.reference_source)
    if grid is None:
        return None, None
    points = grid.points()
    inside = problem.domain.inside(torch.as_tensor(points, dtype=torch.float64)).cpu().numpy()
    prediction = trainer.predict(points)
    prediction[~inside] = np.nan
    masked = np.where(inside[:, None], grid.flat_values(), np.nan).reshape(grid.values.shape)
    return dataclasses.replace(grid, values=masked), prediction.reshape(grid.values.shape)


def save_fields(
    path: Path,
    reference,
    prediction: np.ndarray,
    names: tuple[str, ...],
    attrs: dict,
    *,
    axes: tuple[np.ndarray, ...] | None = None,
    scattered: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> None:
    """Axes, reference, prediction and error on the test grid, as HDF5 (written atomically).

    Args:
        path: the HDF5 file.
        reference: the reference grid, or ``None`` (then only the axes and the prediction are written).
        prediction: the model on the grid, ``(*shape, n_fields)`` (NaN outside the domain).
        names: the coordinate names.
        attrs: file attributes.
        axes: the grid's axes when there is no reference.
        scattered: a reference of scattered points (in the domain), their values and the model there, written
            as the group ``reference_points`` (``points``, ``values``, ``prediction``, ``error``).
    """
    import h5py

    from sciml.solvers.cache import atomic_write

    with atomic_write(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, axis in zip(names, reference.axes if reference is not None else axes):
                f.create_dataset(f"axes/{name}", data=axis)
            if reference is not None:
                f.create_dataset("reference", data=reference.values)
            f.create_dataset("prediction", data=prediction)
            if reference is not None:
                f.create_dataset("error", data=prediction - reference.values)
            if scattered is not None:
                points, values, at_points = scattered
                for key, data in (("points", points), ("values", values), ("prediction", at_points)):
                    f.create_dataset(f"reference_points/{key}", data=data)
                f.create_dataset("reference_points/error", data=at_points - values)
            for key, value in attrs.items():
                f.attrs[key] = value


#: ``plot_fields(time=...)`` left out: a coordinate named ``"t"`` is time
_GUESS_TIME = object()


def _slice_plan(
    axes: tuple[np.ndarray, ...], names: tuple[str, ...], time: str | None
) -> tuple[list[int], tuple, str]:
    """Which grid axes a field plot shows (one or two), the index that slices the others away, and a
    label for the slice: the last time, the middle of extra spatial coordinates."""
    ndim = len(axes)
    ti = names.index(time) if time is not None and time in names else None
    space = [i for i in range(ndim) if i != ti]
    if len(space) >= 2:
        shown = space[:2]
    elif space and ti is not None:  # one space coordinate: the (x, t) plane
        shown = [space[0], ti]
    else:
        shown = [0]
    index, labels = [], []
    for i in range(ndim):
        if i in shown:
            index.append(slice(None))
            continue
        k = len(axes[i]) - 1 if i == ti else len(axes[i]) // 2
        index.append(k)
        labels.append(f"{names[i]} = {axes[i][k]:g}")
    return shown, tuple(index), (" at " + ", ".join(labels)) if labels else ""


#: image panels of two spatial coordinates keep their true shape unless one extent is over this many times
#: the other
_EQUAL_ASPECT_UP_TO = 4.0


def _aspect(axes: tuple[np.ndarray, ...], names: tuple[str, ...], shown: list[int], time: str | None) -> str:
    """``"equal"`` for an image of two spatial coordinates of similar extent (a disk looks like a disk),
    else ``"auto"`` (an axis of time, or a thin domain, fills the panel)."""
    i, j = shown
    if time in (names[i], names[j]):
        return "auto"
    wi, wj = (abs(float(axes[k][-1] - axes[k][0])) for k in (i, j))
    if min(wi, wj) <= 0 or max(wi, wj) > _EQUAL_ASPECT_UP_TO * min(wi, wj):
        return "auto"
    return "equal"


def plot_fields(
    path: Path,
    reference,
    prediction: np.ndarray,
    names: tuple[str, ...],
    title: str,
    *,
    time: str | None = _GUESS_TIME,  # type: ignore[assignment]
    fields: tuple[str, ...] | None = None,
    axes: tuple[np.ndarray, ...] | None = None,
    scattered: bool = False,
) -> None:
    """PNG of prediction / reference / error, one row per field (the prediction alone without a reference).

    One coordinate: curves; two: images; more: images of the first two spatial coordinates (or of space and
    time with one spatial coordinate) at the last time and through the middle of the other spatial
    coordinates (the panel titles say where). Images of two spatial coordinates have their true aspect ratio
    unless one extent is more than 4× the other.

    Args:
        path: the PNG file.
        reference: the reference grid (``axes``, ``values`` ``(*shape, n_fields)``).
        prediction: the model on that grid, like ``reference.values``.
        names: the coordinate names.
        title: the figure's title.
        time: the time coordinate's name (``None``: all coordinates are spatial; left out: a coordinate
            named ``"t"``).
        fields: the field names (row labels; default ``field 0``, ``field 1``, … for several fields).
        axes: the grid's axes when ``reference`` is ``None`` (no reference: only the prediction is shown).
        scattered: the error was measured at scattered reference points, which no grid panel can show (the
            panels then say "no reference on a grid").
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    names = tuple(names)
    if time is _GUESS_TIME:
        time = "t" if "t" in names else None
    axes = reference.axes if reference is not None else axes
    n_fields = np.asarray(prediction).shape[-1]
    if fields is None:
        fields = ("",) if n_fields == 1 else tuple(f"field {k}" for k in range(n_fields))
    shown, index, label = _slice_plan(axes, names, time)
    order = sorted(shown)
    perm = [order.index(a) for a in shown] + [len(shown)]
    pred_all = np.asarray(prediction)[index].transpose(perm)
    if reference is None:  # the prediction alone: one panel per field
        no_grid = "no reference on a grid" if scattered else "no reference"
        fig, ax = plt.subplots(n_fields, 1, figsize=(6, 3.5 * n_fields), squeeze=False)
        for row, field_name in enumerate(fields):
            pred, a = pred_all[..., row], ax[row][0]
            what = f"{field_name}: prediction" if field_name else "prediction"
            if len(shown) == 1:
                a.plot(axes[shown[0]], pred, "r-")
                a.set_xlabel(names[shown[0]])
                a.set_ylabel(field_name or "prediction")
            else:
                (i, j) = shown
                extent = [axes[i][0], axes[i][-1], axes[j][0], axes[j][-1]]
                aspect = _aspect(axes, names, shown, time)
                im = a.imshow(pred.T, origin="lower", extent=extent, aspect=aspect, cmap="RdBu_r")
                fig.colorbar(im, ax=a)
                a.set_xlabel(names[i])
                a.set_ylabel(names[j])
            a.set_title(f"{what} ({no_grid}){label}")
        fig.suptitle(title)
        fig.tight_layout()
        save_figure(fig, path, dpi=110)
        return
    ref_all = np.asarray(reference.values)[index].transpose(perm)
    columns = 2 if len(shown) == 1 else 3
    fig, ax = plt.subplots(
        n_fields, columns, figsize=(5 * columns - (1 if columns == 3 else 0), 3.5 * n_fields), squeeze=False
    )
    for row, field_name in enumerate(fields):
        ref, pred = ref_all[..., row], pred_all[..., row]
        prefix = f"{field_name}: " if field_name else ""
        if len(shown) == 1:
            xs, xname = axes[shown[0]], names[shown[0]]
            a0, a1 = ax[row]
            a0.plot(xs, ref, "k-", label="reference")
            a0.plot(xs, pred, "r--", label="prediction")
            a0.set_xlabel(xname)
            a0.set_title(f"{prefix}prediction and reference{label}".strip())
            a0.legend()
            err = np.abs(pred - ref)
            peak = float(np.nanmax(err)) if np.isfinite(err).any() else 0.0
            floor = max(peak * 1e-12, np.finfo(np.float64).tiny)  # exact zeros do not stretch the axis
            a1.semilogy(xs, np.maximum(err, floor))
            a1.set_title(f"{prefix}|error|{label}")
            a1.set_xlabel(xname)
            continue
        (i, j) = shown
        # arrays are indexed (first coordinate, second): transpose so the first runs along the x axis
        extent = [axes[i][0], axes[i][-1], axes[j][0], axes[j][-1]]
        aspect = _aspect(axes, names, shown, time)
        # NaN marks grid points outside a non-box domain (left blank)
        finite = np.isfinite(ref).any() and np.isfinite(pred).any()
        lo = float(min(np.nanmin(ref), np.nanmin(pred))) if finite else -1.0
        hi = float(max(np.nanmax(ref), np.nanmax(pred))) if finite else 1.0
        if lo < 0 < hi:  # a diverging map centred on zero
            lo, hi = -max(-lo, hi), max(-lo, hi)
        for a, data, name in ((ax[row][0], pred, "prediction"), (ax[row][1], ref, "reference")):
            im = a.imshow(
                data.T, origin="lower", extent=extent, aspect=aspect, vmin=lo, vmax=hi, cmap="RdBu_r"
            )
            a.set_title(prefix + name + label)
            fig.colorbar(im, ax=a)
        diff = pred - ref
        bound = (float(np.nanmax(np.abs(diff))) if np.isfinite(diff).any() else 0.0) or 1.0
        im = ax[row][2].imshow(
            diff.T, origin="lower", extent=extent, aspect=aspect, vmin=-bound, vmax=bound, cmap="RdBu_r"
        )
        ax[row][2].set_title(prefix + "error" + label)
        fig.colorbar(im, ax=ax[row][2])
        for a in ax[row]:
            a.set_xlabel(names[i])
            a.set_ylabel(names[j])
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def plot_history(path: Path, history: list[dict], title: str) -> None:
    """PNG of the training loss (and each loss term) and the relative L2 error against the iteration (each
    field's too, where the history logs them).

    Without a reference (every ``rel_l2`` None) the right panel shows the residual statistics
    (``residual_rms``, ``residual_max``) instead. An inverse problem's history (``coef_NAME``, the fitted
    unknowns) gets a third panel with their values along the run.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sciml.checkpoint import save_figure

    averaged = [h for h in history if h.get("phase") == "average"]  # the tail-averaged model, if any
    history = [h for h in history if h.get("phase") != "average"]
    it = np.array([h["iteration"] for h in history], dtype=float)
    logged = {k for h in history for k in h}  # (a run resumed from an older checkpoint logs more keys later)
    unknowns = sorted(k for k in logged if k.startswith("coef_"))
    fig, ax = plt.subplots(1, 3 if unknowns else 2, figsize=(15 if unknowns else 10, 3.5))
    keys = ["loss"] + sorted(k for k in logged if k.startswith("loss_"))
    for key in keys:
        values = np.array([h.get(key, np.nan) for h in history], dtype=float)
        ax[0].semilogy(
            it,
            np.where(values > 0, values, np.nan),
            "." + ("-" if key == "loss" else "--"),
            label="loss (weighted sum)" if key == "loss" else f"{key} (unweighted)",
        )
    # without a reference (rel_l2 None) the right panel shows the residual statistics instead
    has_error = any(h.get("rel_l2") is not None for h in history + averaged)
    fields = sorted(k for k in logged if k.startswith("rel_l2_"))
    if has_error:
        errors = np.array([np.nan if h.get("rel_l2") is None else h["rel_l2"] for h in history], dtype=float)
        ax[1].semilogy(it, errors, "k.-", label="last iterate" + (", all fields" if fields else ""))
        for key in fields:  # each field's error, logged for problems with more than one
            values = np.array([h.get(key, np.nan) for h in history], dtype=float)
            ax[1].semilogy(it, values, ".--", label=key.removeprefix("rel_l2_"))
    else:
        for key, style in (("residual_rms", "k.-"), ("residual_max", "r.--")):
            values = np.array([h.get(key, np.nan) for h in history], dtype=float)
            ax[1].semilogy(it, np.where(values > 0, values, np.nan), style, label=key.replace("_", " "))
    for h in averaged:
        ax[0].semilogy([h["iteration"]], [h["loss"]], "r*", markersize=10, label="loss, tail average")
        shown = h.get("rel_l2") if has_error else h.get("residual_rms")
        if shown is not None:
            ax[1].semilogy([h["iteration"]], [shown], "r*", markersize=10, label="tail average")
    ax[0].set_xlabel("iteration")
    ax[0].set_ylabel("loss")
    ax[0].legend(fontsize=7)
    ax[1].set_xlabel("iteration")
    ax[1].set_ylabel("relative L2 error" if has_error else "|residual| (no reference)")
    if averaged or fields or not has_error:
        ax[1].legend(fontsize=7)
    for key in unknowns:  # the fitted coefficients of an inverse problem (linear scale: they may be < 0)
        values = np.array([h.get(key, np.nan) for h in history], dtype=float)
        ax[2].plot(it, values, ".-", label=key.removeprefix("coef_"))
        for h in averaged[:1]:
            ax[2].plot([h["iteration"]], [h.get(key, np.nan)], "r*", markersize=10)
    if unknowns:
        ax[2].set_xlabel("iteration")
        ax[2].set_ylabel("fitted unknowns")
        ax[2].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def _run_file(file: Path):
    """The module of a user's problem file, executed as ``python FILE.py`` runs it: its folder is put on
    ``sys.path`` (and kept there, as for a script: its functions may import the modules beside it when
    called), and the module is in ``sys.modules`` as it runs and after (``dataclasses``, ``typing`` and
    ``pickle`` look it up there), under a name of its own, ``sciml_user_problem_STEM`` (not ``__main__``: a
    script's ``if __name__ == "__main__"`` part does not run). Each call runs the file anew (the modules it
    imports are imported once, as in Python)."""
    folder = str(file.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = f"sciml_user_problem_{file.stem}"
    module_spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException:  # as a failed import: no half-run module left behind
        if sys.modules.get(name) is module:
            del sys.modules[name]
        raise
    return module


def _raised_here(exc: BaseException) -> bool:
    """Whether ``exc`` comes from a ``raise`` statement of this package (its message about a user's input),
    not from the user's code nor from an operation of the package's that failed (a bug)."""
    from sciml.pinn.trainer import _PACKAGE

    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    code = tb.tb_frame.f_code
    if not code.co_filename.startswith(_PACKAGE):
        return False
    # the instruction that raised is a raise statement's (not an operation inside its message, say)
    return any(i.offset == tb.tb_lasti and i.opname == "RAISE_VARARGS" for i in dis.get_instructions(code))


@contextlib.contextmanager
def _input_errors():
    """The package's own TypeErrors about the user's problem (a coefficient of the wrong type, numpy on the
    points) as ValueErrors, which ``sciml`` reports in one line (``SCIML_DEBUG=1``: the traceback); other
    TypeErrors (the user's code, a bug of the package) keep their traceback."""
    try:
        yield
    except TypeError as exc:
        if not _raised_here(exc):
            raise
        raise ValueError(str(exc)) from exc


def _problems_in(module) -> list[str]:
    """The public functions a module defines and the PDEProblems it holds (the names ``--problem`` takes)."""
    from sciml.problems.pde import PDEProblem

    return [
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (
            isinstance(value, PDEProblem)
            or (inspect.isfunction(value) and value.__module__ == module.__name__ and _no_arguments(value))
        )
    ]


def _no_arguments(function) -> bool:
    """Whether ``function`` can be called without arguments (a problem factory, not a helper like exact)."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    required = (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )
    return all(p.default is not p.empty for p in parameters if p.kind in required)


def _load_problem(spec: str) -> PDEProblem:
    """A registered problem by name, or ``FILE.py:NAME``: a user's function that returns a problem, or a
    ``PDEProblem`` the file defines.

    Raises:
        ValueError: an unknown name, a file without ``:NAME`` (the message lists the names it defines), a
            missing file or name, or a function that does not return a ``PDEProblem``.
    """
    import sciml.problems.pde as pde

    form = "give the problem as FILE.py:FUNCTION, a function of yours that returns a PDEProblem"
    if spec.endswith(".py"):
        file = Path(spec)
        if not file.is_file():
            raise ValueError(f"--problem {spec}: no file {file}; {form}")
        try:
            names = _problems_in(_run_file(file))
        except (Exception, SystemExit):  # noqa: BLE001 — only the listing is lost (a script's argparse exits)
            names = []
        defined = f", e.g. --problem {spec}:{names[0]} ({file} defines {', '.join(names)})" if names else ""
        raise ValueError(f"--problem {spec} names no function: {form}{defined}")
    path, sep, function = spec.rpartition(":")
    if not sep or not path.endswith(".py"):
        return pde.get(spec)
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"--problem {spec}: no file {file}; {form}")
    module = _run_file(file)
    factory = getattr(module, function, None)
    if isinstance(factory, pde.PDEProblem):  # a problem defined at module level (DeepXDE-style scripts)
        return factory
    if not callable(factory):
        names = _problems_in(module)
        found = f" ({function!r} is {type(factory).__name__})" if hasattr(module, function) else ""
        defined = f"; it defines {', '.join(names)}" if names else ""
        raise ValueError(
            f"--problem {spec}: {file} defines no function {function!r}{found}: name a function that returns "
            f"a PDEProblem, or a PDEProblem{defined}"
        )
    if not _no_arguments(factory):
        names = _problems_in(module)
        defined = f"; it defines {', '.join(names)}" if names else ""
        raise ValueError(
            f"--problem {spec}: {function!r} takes arguments; name a function without arguments that returns "
            f"a PDEProblem, or a PDEProblem{defined}"
        )
    problem = factory()
    if not isinstance(problem, pde.PDEProblem):
        kind = type(problem).__name__
        raise ValueError(f"--problem {spec}: {function}() returned {kind}, not a PDEProblem")
    return problem


def main(args: argparse.Namespace) -> int:
    import sciml.problems.pde as pde
    from sciml.checkpoint import check_writable_dir, write_json
    from sciml.pinn.presets import PRESETS, build_model, preset
    from sciml.pinn.trainer import CheckpointMismatch, Trainer, TrainingDiverged, resolve_device

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
    split = [f"--{flag}" for flag in ("adam", "lbfgs") if getattr(args, flag) is not None]
    if args.iterations is not None and split:
        raise ValueError(
            f"--iterations and {' and '.join(split)} both set the iterations: give --iterations (split like "
            "the preset's), or --adam and/or --lbfgs"
        )
    if args.threads is not None:
        if args.threads < 1:
            raise ValueError(f"--threads must be ≥ 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    device = resolve_device(getattr(args, "device", "cpu"), "--device")
    with _input_errors():  # a problem the package refuses (not a slip in the user's code)
        problem = _load_problem(args.problem)
    from_file = args.problem.rpartition(":")[0].endswith(".py")
    # a user's problem gets a suite preset only if it is that suite problem, not for sharing its name
    settings = preset(problem) if from_file else preset(problem.name)
    if settings is PRESETS.get(problem.name):
        origin = "" if not from_file else " (the problem is the suite's problem of that name)"
        print(f"sciml pde: using the suite preset of {problem.name!r}{origin}")
    elif problem.name in PRESETS:
        print(
            f"sciml pde: using the generic preset: {problem.name!r} from {args.problem} differs from the "
            "suite problem of that name, so the suite's settings (network, training strategies) do not apply"
        )
    else:
        print(f"sciml pde: using the generic preset (no suite preset for {problem.name!r})")
    config = _split(settings.config(args.budget, args.model), args.iterations, args.adam, args.lbfgs)
    if split and config.adam_iterations + config.lbfgs_iterations == 0:
        raise ValueError(
            f"{' and '.join(split)}: no iterations left to train (Adam {config.adam_iterations}, L-BFGS "
            f"{config.lbfgs_iterations}); give at least one iteration"
        )
    if args.time_windows is not None:
        if args.time_windows < 1:
            raise ValueError(f"--time-windows must be ≥ 1, got {args.time_windows}")
        check_time_windows(problem, args.time_windows, config.iterations)
        config = dataclasses.replace(config, time_windows=args.time_windows)
    eval_every = getattr(args, "eval_every", None)
    if eval_every is not None:
        if eval_every < 1:
            raise ValueError(f"--eval-every must be ≥ 1, got {eval_every}")
        config = dataclasses.replace(config, eval_every=eval_every)
    elif settings is not PRESETS.get(problem.name):  # the generic preset: a short run logs enough points
        config = dataclasses.replace(config, eval_every=short_run_eval_every(config))
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
    if args.budget == "quick" and args.iterations is None and args.adam is None and args.lbfgs is None:
        print(
            f"sciml pde: --budget quick is a smoke run ({config.iterations} iterations) that checks the "
            "pipeline; its error says nothing about the method (use --budget default or full)"
        )
    try:
        with _input_errors():  # e.g. a condition value that calls numpy, found by the trainer's probe
            model = build_model(problem, args.model, settings, seed=args.seed)
            trainer = Trainer(
                problem,
                model,
                config,
                reference=args.reference,
                unknowns=args.unknowns,
                checkpoint=out / "checkpoint.pt",
            )
    except ValueError as exc:  # refusals of time-marching, the reference file, unknowns: in the CLI's words
        message = str(exc) if args.reference is None else reference_words(str(exc), args.reference)
        if config.time_windows > 1:  # given, or the preset's (Allen–Cahn's PINN marches)
            message = time_windows_words(message, given=args.time_windows is not None)
        message = message if args.unknowns is None else unknowns_words(message)
        if message == str(exc):
            raise
        raise ValueError(message) from None
    out = check_writable_dir(out)  # created only once the inputs are checked (a failed start leaves none)
    try:
        result = trainer.fit(progress=not args.no_progress, resume=args.resume)
    except TrainingDiverged as exc:
        print(f"sciml pde: {exc}", file=sys.stderr)
        return 1
    except CheckpointMismatch as exc:  # the command line's own way out, not the Python API's
        raise ValueError(resume_words(str(exc), out, eval_every_given=eval_every is not None)) from None
    except KeyboardInterrupt as interrupt:  # the trainer says what it wrote (the last completed iteration)
        checkpoint = out / "checkpoint.pt"
        said = str(interrupt.args[0]).split(", which fit(")[0] if interrupt.args else ""
        if checkpoint.exists():
            said = said or f"the last checkpoint is {checkpoint}"
            where = f"{said}; continue with the same options and --resume --out {out}"
        else:
            where = f"{said or 'no checkpoint was written yet'}, so there is nothing to resume"
        print(f"sciml pde: interrupted; {where}", file=sys.stderr)
        return 130
    names = problem.domain.names
    metrics = {
        "problem": problem.name,
        "model": args.model,
        "seed": args.seed,
        "rel_l2": result.rel_l2,
        "rel_l2_fields": result.rel_l2_fields,
        "unknowns": result.unknowns,
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
        "rel_l2": np.nan if result.rel_l2 is None else result.rel_l2,
        "coordinates": ",".join(names),
        **{f"unknown_{k}": v for k, v in result.unknowns.items()},  # the fitted coefficients
    }
    attrs["fields"] = ",".join(problem.fields)  # the columns of the last axis of prediction / reference
    # display labels of the fields, e.g. ρ/ρ_c for a field stored in units of its critical value
    labels = tuple(getattr(problem.reference, "field_labels", None) or problem.fields)
    if labels != tuple(problem.fields):
        attrs["field_labels"] = ",".join(labels)
    normalisation = getattr(problem.reference, "normalisation", None)
    if normalisation:
        attrs["normalisation"] = normalisation
        from sciml.pinn.models import _real

        attrs.update({f"param_{k}": float(v) for k, v in problem.params.items() if _real(v)})
    error = "n/a (no reference)" if result.rel_l2 is None else f"{result.rel_l2:.3e}"
    title = f"{problem.name}, {args.model.upper()}: rel. L2 error {error}, {result.iterations} it"
    # fields on the reference grid (the problem's, or a reference file's tensor grid), else (no reference,
    # or scattered reference points) on the test grid
    grid, prediction = trainer.reference, None
    if grid is None and args.reference is not None:
        grid, prediction = _file_grid(trainer, args.reference)
    axes = trainer.test_axes()
    if prediction is None:
        prediction = trainer.prediction_grid()
    scattered = trainer.reference_points() if grid is None else None  # (a reference file's scattered points)
    save_fields(out / "fields.h5", grid, prediction, names, attrs, axes=axes, scattered=scattered)
    plot_fields(
        out / "fields.png",
        grid,
        prediction,
        names,
        title,
        time=problem.domain.time,
        fields=labels,
        axes=axes,
        scattered=grid is None and trainer.reference_source is not None,
    )
    written = [out / "metrics.json", out / "fields.h5", out / "fields.png", out / "history.png"]
    plot_history(out / "history.png", result.history, title)
    if result.rel_l2 is None:
        last = result.history[-1] if result.history else {}
        rms = last.get("residual_rms")
        error = "n/a (no reference" + (f"; residual RMS {rms:.4e})" if rms is not None else ")")
    else:
        error = f"{result.rel_l2:.4e}"
        if len(problem.fields) > 1:  # all fields together hide a field of small values: each one's too
            error += " (" + ", ".join(f"{k} {v:.4e}" for k, v in result.rel_l2_fields.items()) + ")"
    print(
        f"{problem.name} {args.model}: relative L2 error {error} after {result.iterations} "
        f"iterations in {result.seconds:.1f} s ({result.params} parameters); {result.message}"
    )
    if result.unknowns:
        fitted = ", ".join(
            f"{k} = {v:.6g} (initial guess {args.unknowns[k]:g})" for k, v in result.unknowns.items()
        )
        print(f"fitted unknowns: {fitted}")
    print(f"wrote {', '.join(str(p) for p in written)}")
    return 0

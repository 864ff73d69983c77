"""One trainer for PINNs, PIGs and any coordinate-to-field model on a :class:`~sciml.problems.pde.PDEProblem`.

Loss: ``w_res · mean(residual²) + Σ_c w_c · mean(condition_c²)`` on collocation points drawn uniformly
(resampled every ``resample_every`` iterations), plus ``w_pre · mean(((−Δ)⁻¹ residual)²)`` on a fixed grid
when ``preconditioned = w_pre > 0`` (:class:`~sciml.pinn.strategies.PreconditionedResidual`).
Optimisation: Adam with exponential learning-rate decay (``lr · lr_decay^(iteration / decay_every)``), then
optionally L-BFGS with a strong-Wolfe line search.
torch's L-BFGS stops as soon as a step changes the loss by less than ``tolerance_change`` (1e-9) or the
gradient falls below ``tolerance_grad`` (1e-7) — with the small losses of a good PINN that happens long
before the budget is spent (a recurring DeepXDE complaint). Here both tolerances are 0, and an early stop
resets the L-BFGS memory instead of ending training; only when a fresh start makes no progress either does
training stop (3 resets in a row without a step that lowers the loss), with the reason in
``TrainResult.message``. An iteration whose line search finds no step still counts as one, so a run of a few
iterations that moved nothing counts as an early stop too, whatever the chunk length between log entries,
checkpoints and resamplings. torch also drops every curvature pair with
``yᵀs ≤ 1e-10``, an absolute threshold: once the loss has fallen by orders of magnitude it drops nearly all
of them and L-BFGS stalls (a float64 Legendre PINN stopped at loss 1.6e-7, 1130 of 1499 pairs dropped).
So the loss L-BFGS sees is rescaled to 1 when the phase starts and, in float64, again whenever it has fallen
below 1e-2 of that, with the stored pairs rescaled alike (the iterates do not depend on the scale otherwise).
float32 runs keep the one rescaling at the start: their losses do not fall far enough for the threshold to
matter (a Poisson run dropped 21 of its 3998 pairs), and rescaling them again would only change their
rounding.

With ``time_windows = K > 1`` (time-marching, :mod:`sciml.pinn.strategies`) the run trains ``K`` copies of
the model one time window after the other, each on its share of the iterations, and the trained model is
one :class:`~sciml.pinn.strategies.TimeWindows` module over the whole time interval.

Every ``eval_every`` iterations the relative L2 error on the reference grid is logged; the result holds
the *final* error, not the minimum over training. Checkpoints are atomic and hold everything needed to
resume bit-for-bit (parameters, optimiser state, RNG state, collocation points, history); Ctrl-C writes one
too (the state of the last completed iteration, or L-BFGS chunk). A non-finite loss stops training with
:class:`TrainingDiverged` naming the iteration and the offending terms.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import os
import sys
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.pinn import strategies
from sciml.pinn.derivatives import derivatives
from sciml.pinn.models import Constrained, _Normalized, _real, count_parameters
from sciml.problems.pde.conditions import (
    _BROADCAST_FIX,
    Dirichlet,
    InitialValue,
    InitialVelocity,
    Observations,
    Periodic,
    PointCondition,
    _evaluate,
)
from sciml.problems.pde.derivatives import AutogradDerivatives
from sciml.problems.pde.domain import Box
from sciml.problems.pde.geometry import _points_checked
from sciml.problems.pde.problem import (
    PDEProblem,
    _check_loss_weight,
    default_test_shape,
    value_shapes,
)
from sciml.solvers.fd.reference import ReferenceSolution, reference_solution

__all__ = [
    "CheckpointMismatch",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "resolve_device",
    "train",
]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}
_SAMPLINGS = ("uniform", "sobol", "halton")
#: fields' RMS values that differ by more than this factor are warned about (``Trainer._warn_scales``)
_SCALE_RATIO = 100.0
#: points on which residual statistics are logged
_N_RESIDUAL_STATS = 2048

#: float64 L-BFGS: the loss it sees is rescaled to 1 whenever it falls below this (module docstring),
#: checked at least every ``_LBFGS_CHUNK`` iterations
_LBFGS_RESCALE_BELOW = 1e-2
_LBFGS_CHUNK = 50

#: on a GPU the Adam loop checks the loss for NaN/inf every so many iterations (and at every log entry
#: and checkpoint) instead of every step: each check is a host-device synchronisation
_CHECK_EVERY = 50
#: a residual non-finite at this fraction of its points (or more), with finite model outputs, points to
#: the unknown coefficients rather than to the model's values
_NEARLY_ALL = 0.9
#: an inverse problem whose weighted Observations terms start below this fraction of the weighted residual
#: term is warned about: the data carry (almost) no gradient, so the residual alone drives the coefficients
_DATA_RATIO = 1e-6


#: ``_shape_checked(geometry, x)``: ``x`` as a tensor, checked to be ``(n, ndim)`` by the geometry's own check
_shape_checked = _points_checked(lambda geometry, x: x)


def _device_name(device: Any) -> str:
    """``device`` as a string if it names a CPU or CUDA device (or ``"auto"``); else a ValueError."""
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise ValueError(f"`device` must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    if device == "auto":
        return device
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        parsed = None
    if parsed is None or parsed.type not in ("cpu", "cuda"):
        raise ValueError(f"`device` must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}")
    return device


def resolve_device(device: str | torch.device = "auto", argument: str = "device") -> torch.device:
    """The torch device for ``device``: ``"auto"`` is CUDA when available, else the CPU.

    Args:
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``.
        argument: the name to blame in error messages (``"--device"`` from the command line).

    Returns:
        A ``torch.device`` with an explicit index for CUDA.

    Raises:
        ValueError: an unknown device, or CUDA requested where ``torch.cuda.is_available()`` is False (or
            the index is out of range).
    """
    name = argument if argument.startswith("-") else f"`{argument}`"
    try:
        device = _device_name(device)
    except ValueError:
        raise ValueError(f"{name} must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {device!r}") from None
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    parsed = torch.device(device)
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name} {device!r} asks for a GPU, but torch.cuda.is_available() is False here (torch "
                f"{torch.__version__}, CUDA build {torch.version.cuda}); use {name} cpu or auto"
            )
        index = torch.cuda.current_device() if parsed.index is None else parsed.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"{name} {device!r}: only {torch.cuda.device_count()} CUDA device(s) here")
        parsed = torch.device("cuda", index)
    return parsed


def _to_cpu(obj: Any, copy: bool = False) -> Any:
    """``obj`` with every tensor (in dicts, lists, tuples) moved to the CPU, for device-free checkpoints
    (``copy``: tensors on the CPU copied too, so that later in-place updates do not reach them)."""
    if torch.is_tensor(obj):
        return obj.detach().to("cpu", copy=copy)
    if isinstance(obj, dict):
        return {k: _to_cpu(v, copy) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v, copy) for v in obj)
    return obj


def _grid_points(axes: Sequence[np.ndarray]) -> np.ndarray:
    """The points of the tensor grid of ``axes`` as rows ``(M, ndim)``, in C order (as
    :meth:`ReferenceSolution.points`)."""
    return np.stack([m.reshape(-1) for m in np.meshgrid(*axes, indexing="ij")], axis=1)


def _tensor_grid(points: np.ndarray) -> tuple[tuple[np.ndarray, ...], np.ndarray] | None:
    """Whether ``points`` ``(m, ndim)`` form a complete tensor grid: every combination of the columns' values
    once, in any row order, values within 1e-9 of a column's extent counting as one grid line (a text round
    trip, a mesh export's last bits).

    Returns:
        ``(axes, flat)``: each column's grid lines (the mean of their values, ascending) and each point's
        flat index in the grid of shape ``(len(a) for a in axes)``; ``None`` for other points (fewer than 2
        lines in a column, a missing or repeated combination).
    """
    axes, index = [], []
    for column in points.T:
        ordered = np.sort(column)
        starts = ordered[np.r_[True, np.diff(ordered) > 1e-9 * float(np.ptp(column))]]
        inverse = np.searchsorted(starts, column, side="right") - 1
        axes.append(np.bincount(inverse, weights=column) / np.bincount(inverse))
        index.append(inverse)
    shape = tuple(len(a) for a in axes)
    if min(shape) < 2 or math.prod(shape) != points.shape[0]:
        return None
    flat = np.ravel_multi_index(tuple(index), shape)
    return (tuple(axes), flat) if len(np.unique(flat)) == flat.size else None


def _spans_box(points: np.ndarray, lower: Sequence[float], upper: Sequence[float]) -> bool:
    """Whether ``points`` form a complete tensor grid (:func:`_tensor_grid`) whose lines reach each end of the
    box ``lower``–``upper`` to within one grid step, column by column (a grid of swapped columns does not)."""
    grid = _tensor_grid(points)
    if grid is None:
        return False
    for axis, lo, hi in zip(grid[0], lower, upper):
        reach = (axis[-1] - axis[0]) / (len(axis) - 1) + 1e-9 * (hi - lo)  # one grid step
        if not (abs(axis[0] - lo) <= reach and abs(axis[-1] - hi) <= reach):
            return False
    return True


#: what a trainer accepts as a reference (see :class:`Trainer`)
ReferenceLike = ReferenceSolution | Callable[[torch.Tensor], Any] | tuple | str | os.PathLike


def _read_reference(
    path: Path, names: tuple[str, ...], fields: tuple[str, ...] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``points`` and ``values`` arrays from an ``.npz`` or HDF5 (``.h5``/``.hdf5``) file; an optional array
    ``names`` names the columns of ``points``, which are then put in the order of the domain's ``names``, and
    an optional array ``fields`` names the columns of ``values``, put in the order of the problem's
    ``fields``.

    Raises:
        ValueError: a missing file, another suffix, missing arrays, arrays of other than numbers, or
            ``names`` / ``fields`` other than the domain's coordinates / the problem's fields (the message
            names both lists).
    """
    if not path.is_file():
        raise ValueError(f"reference file {path} does not exist")

    def numbers(data: Any, key: str) -> np.ndarray:
        try:
            array = np.asarray(data[key])
        except (TypeError, ValueError) as exc:  # e.g. an object array, which np.load does not unpickle
            raise ValueError(
                f"reference file {path}: array {key!r} cannot be read as numbers ({exc})"
            ) from None
        if array.dtype.kind not in "biuf":
            raise ValueError(
                f"reference file {path}: array {key!r} must hold real numbers, got dtype {array.dtype} "
                f"(e.g. {array.reshape(-1)[:1].tolist()}); save float arrays (points (m, ndim), values (m,) "
                "or (m, n_fields))"
            )
        return array.astype(float)

    def strings(data: Any, key: str, example: tuple[str, ...]) -> tuple[str, ...] | None:
        if key not in data:
            return None
        try:
            found = np.asarray(data[key]).reshape(-1).tolist()
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"reference file {path}: array {key!r} cannot be read ({exc}); save strings, e.g. "
                f"np.array({list(example)})"
            ) from None
        return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in found)

    order = fields or ()
    if path.suffix == ".npz":
        with np.load(path) as data:
            arrays = {k: numbers(data, k) for k in ("points", "values") if k in data}
            keys, found = sorted(data.files), strings(data, "names", names)
            shapes = {k: data[k].shape for k in keys}
            columns = strings(data, "fields", order)
    elif path.suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            arrays = {k: numbers(f, k) for k in ("points", "values") if k in f}
            keys, found = sorted(f), strings(f, "names", names)
            shapes = {k: f[k].shape for k in keys if isinstance(f[k], h5py.Dataset)}
            columns = strings(f, "fields", order)
    else:
        raise ValueError(f"reference file {path}: use .npz, .h5 or .hdf5 (arrays 'points' and 'values')")
    missing = {"points", "values"} - set(arrays)
    if missing:
        raise ValueError(
            f"reference file {path} lacks the arrays {sorted(missing)} (needs points, values); it has the "
            f"arrays {keys}{_layout_fix(shapes, names)}"
        )
    points = arrays["points"]
    if found is not None:
        if sorted(found) != sorted(names) or len(set(found)) != len(found):
            raise ValueError(
                f"reference file {path}: its array 'names' {found} must name the columns of its points by "
                f"the domain's coordinates {names}, each once (in any order)"
            )
        if points.ndim == 2 and points.shape[1] == len(names):  # (other shapes: the caller reports them)
            points = points[:, [found.index(n) for n in names]]
    values = arrays["values"]
    if columns is not None and fields is not None:
        if sorted(columns) != sorted(fields) or len(set(columns)) != len(columns):
            raise ValueError(
                f"reference file {path}: its array 'fields' {list(columns)} must name the columns of its "
                f"values by the problem's fields {list(fields)}, each once (in any order); save e.g. "
                f"fields=np.array({list(fields)})"
            )
        if values.ndim == 2 and values.shape[1] == len(fields):  # (other shapes: the caller reports them)
            values = values[:, [columns.index(f) for f in fields]]
    return points, values


def _layout_fix(shapes: Mapping[str, tuple[int, ...]], names: tuple[str, ...]) -> str:
    """How to write a finite-element layout (node coordinates ``(n, ndim − 1)``, times ``(m,)``, values
    ``(m, n)``) as one row per node and time, as the end of a message (``""`` when the file is not one)."""
    value = shapes.get("values", ())
    nodes = [k for k, s in shapes.items() if len(s) == 2 and s[1] == len(names) - 1 and s[0] in value]
    times = [k for k, s in shapes.items() if len(s) == 1 and s[0] in value and s[0] > 1]
    if len(value) != 2 or len(nodes) != 1 or len(times) != 1:
        return ""
    (c, n), (t, m) = (nodes[0], shapes[nodes[0]][0]), (times[0], shapes[times[0]][0])
    if value not in ((m, n), (n, m)):
        return ""
    flat = "values.reshape(-1)" if value == (m, n) else "values.T.reshape(-1)"
    return (
        f"; it looks like a finite-element layout ({c} of {n} nodes, {t} of {m} times, values per time and "
        f"node): write one row per node and time, points = np.column_stack([np.tile({c}, ({m}, 1)), "
        f"np.repeat({t}, {n})]) and values = {flat}, with the columns in the order {list(names)}"
    )


def _shape_fix(points: np.ndarray, values: np.ndarray, ndim: int, k: int) -> str:
    """The likely fix of reference ``points`` and ``values`` of the wrong shapes, as the end of a message
    (``""`` when none is apparent): a transpose, or a constant extra column of points (z = 0 of a 2-D
    mesh export)."""
    for fix in (("points",), ("values",), ("points", "values")):
        p = points.T if "points" in fix else points
        v = values.T if "values" in fix else values
        if p.ndim == 2 and p.shape[1] == ndim and v.shape in value_shapes(p.shape[0], k):
            return f"; transpose the {' and the '.join(fix)} ({'.T, '.join(fix)}.T: one row per point)"
    if points.ndim == 1 and ndim == 1:
        return "; give the points one column, points[:, None]"
    if points.ndim == 2 and points.shape[1] == ndim + 1 and points.shape[0]:
        constant = [j for j in range(ndim + 1) if np.ptp(points[:, j]) == 0]
        if constant:
            j = constant[-1]
            return (
                f"; its column {j} is constant ({points[0, j]:g}): drop it (e.g. z = 0 of a 2-D mesh "
                f"export), np.delete(points, {j}, axis=1)"
            )
    return ""


#: the folders of this package (``sciml``, and ``sciml.problems`` / ``sciml.solvers``, which an editable
#: install keeps beside it): a warning about a user's input points at the first frame outside them
_PACKAGE = tuple(
    os.path.dirname(os.path.abspath(module.__file__)) + os.sep
    for module in (sys.modules["sciml"], sys.modules["sciml.problems"], sys.modules["sciml.solvers"])
)


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning issued by the caller of this function that points at the first frame
    outside this package (the user's call, whichever of the package's functions lead to it)."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


def _rescale_lbfgs(opt: torch.optim.LBFGS, factor: float) -> None:
    """Make ``opt`` continue on its objective multiplied by ``factor``, with the same iterates.

    The stored gradient differences ``y`` and the last gradient and loss scale by ``factor``, the inverse
    curvatures ``1 / yᵀs`` and the initial inverse-Hessian scale ``yᵀs / yᵀy`` by ``1 / factor``; the
    steps ``s`` and the search direction do not change. Only torch's absolute ``yᵀs > 1e-10`` test for
    keeping a pair sees the difference (module docstring).
    """
    state = opt.state[opt._params[0]]
    if "old_dirs" in state:
        state["old_dirs"] = [y * factor for y in state["old_dirs"]]
        state["ro"] = [r / factor for r in state["ro"]]
        state["H_diag"] = state["H_diag"] / factor
    if state.get("prev_flat_grad") is not None:
        state["prev_flat_grad"] = state["prev_flat_grad"] * factor
    if state.get("prev_loss") is not None:
        state["prev_loss"] = state["prev_loss"] * factor


class _ProbeParams(dict):
    """The coefficients as the residual's first trial run sees them: a missing name says what to do."""

    def __missing__(self, key):
        raise KeyError(
            f"params[{key!r}], which the problem does not define (its params: {sorted(self)}); add it with "
            f"PDEProblem(..., params={{{key!r}: ...}}) or problem.replace(params={{{key!r}: ...}})"
        )


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite."""


class CheckpointMismatch(ValueError):
    """``resume``: the checkpoint was written for another run (problem, model, config or unknowns)."""


def _short(value: Any, width: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _fingerprint_differences(stored: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """What differs between two run fingerprints, one entry per field (``config.adam_iterations: 20 in
    the checkpoint, 40 now``; functions of the problem by the name of what was probed; at most
    ``_MAX_DIFFERENCES`` entries per top-level field)."""
    out = []
    for key in sorted(set(stored) | set(now), key=str):
        a, b = stored.get(key), now.get(key)
        if a == b:
            continue
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            lines = []
            for sub in sorted(set(a) | set(b), key=str):
                if a.get(sub) == b.get(sub):
                    continue
                x, y = a.get(sub), b.get(sub)
                if isinstance(x, (list, tuple, Mapping)) or isinstance(y, (list, tuple, Mapping)):
                    lines.append(f"{key}.{sub} (its probed values differ)")
                else:
                    lines.append(f"{key}.{sub}: {_short(x)} in the checkpoint, {_short(y)} now")
            if len(lines) > _MAX_DIFFERENCES:
                lines[_MAX_DIFFERENCES:] = [f"{len(lines) - _MAX_DIFFERENCES} more in {key}"]
            out.extend(lines)
        else:
            out.append(f"{key}: {_short(a)} in the checkpoint, {_short(b)} now")
    return out


#: what a checkpoint's fingerprint holds about the model's structure (``Trainer._fingerprint``); a checkpoint
#: written before these keys existed is compared on what it holds
_MODEL_KEYS = ("model_modules", "model_tensors")
#: differences listed per field of a fingerprint in a CheckpointMismatch message
_MAX_DIFFERENCES = 4


def _model_fingerprint(model: nn.Module) -> dict[str, dict[str, str]]:
    """What defines ``model`` besides its trainable values: the class of every submodule, the name and shape
    of every parameter and buffer, and a hash of the values of the buffers of the PINNs and PIGs inside it
    (input box, Fourier matrix, periodic phases; fixed at construction). Other modules' buffers (e.g.
    running statistics, which training changes) count by name and shape only."""
    modules = {name: type(m).__name__ for name, m in model.named_modules() if name}
    fixed = {id(b) for m in model.modules() if isinstance(m, _Normalized) for b in m.buffers(recurse=False)}
    tensors = {name: f"parameter {tuple(p.shape)}" for name, p in model.named_parameters()}
    for name, b in model.named_buffers():
        text = f"buffer {tuple(b.shape)}"
        if id(b) in fixed:
            data = b.detach().double().cpu().contiguous().numpy().tobytes()
            text += f" sha256 {hashlib.sha256(data).hexdigest()[:16]}"
        tensors[name] = text
    return {"model_modules": modules, "model_tensors": tensors}


class _NonFiniteTrial(Exception):
    """An L-BFGS trial point gave a non-finite loss (handled by rolling back, never raised to the user)."""


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"`{name}` must be an integer ≥ {minimum}, got {value!r}")


def _number(name: str, value: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a real number."""
    if not _real(value):
        raise ValueError(f"`{name}` must be a number, got {value!r} ({type(value).__name__})")


def _mapping(name: str, value: Any, example: str) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a mapping."""
    if not isinstance(value, Mapping):
        raise ValueError(
            f"`{name}` must be a mapping (a dict) like {example}, got {type(value).__name__} {value!r}"
        )


def _one_of(name: str, value: Any, choices: Any) -> None:
    """Raise a ValueError naming ``name`` unless ``value`` is a string among ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"`{name}` must be one of {list(choices)}, got {value!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Budget and settings of one training run.

    Args:
        adam_iterations: Adam steps.
        lbfgs_iterations: L-BFGS iterations after Adam (0 for none).
        lr: Adam's initial learning rate.
        lr_decay: factor per ``decay_every`` steps (exponential, applied smoothly).
        decay_every: see ``lr_decay``.
        lbfgs_lr: L-BFGS step length scale (1 with the line search).
        lbfgs_history: L-BFGS memory.
        n_residual: collocation points for the PDE residual.
        n_condition: points per condition (the default for every condition).
        condition_points: per-condition overrides, ``{"initial": 2048}``.
        resample_every: draw new points every so many iterations (0: never).
        weights: loss-weight overrides, ``{"residual": 1e-3, "dirichlet": 10}`` (default: the problem's).
            ``"residual"`` also takes one weight per equation, ``{"residual": (1.0, 1e6)}`` (as many as the
            problem's ``n_equations``, finite, ≥ 0, not all 0): they multiply the squared residual's columns
            before the mean (and before causal weighting, RAD's density and the preconditioned residual),
            and the residual term's own weight is then 1. The history's ``loss_residual`` stays the
            mean square over all equations without these weights.
        eval_every: iterations between test-error evaluations (and log entries).
        checkpoint_every: iterations between checkpoints (when a checkpoint path is given).
        dtype: ``"float32"`` or ``"float64"``.
        seed: seeds the collocation points.
        engine: derivative engine: ``"auto"`` (forward jets when the model has them), ``"jet"``,
            ``"autograd"``.
        eval_batch: points per batch when evaluating on the test grid.
        sampling: how collocation points are drawn inside the domain: ``"uniform"`` (torch's stream),
            ``"sobol"`` or ``"halton"`` (scrambled low-discrepancy sequences, scipy.stats.qmc).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when available): where the model,
            the points, the test grid and every tensor of training live (resolved by the trainer, which
            raises a ValueError if CUDA is asked for but not available). Not part of a checkpoint's
            fingerprint: a run may resume on another device.
        causal_chunks: causal weighting of the residual over this many time chunks (0: off; needs a
            time coordinate), see :func:`sciml.pinn.strategies.causal_residual`. Adam recomputes the chunk
            weights at every step; L-BFGS once per step of its own (at the step's first evaluation, held
            through the line search, which must see one objective), i.e. at every chunk of at most 50
            iterations between resamplings, log entries and checkpoints.
        causal_eps: its causality parameter ε.
        rad: residual-based adaptive resampling (RAD): each resampling draws the residual points from a
            pool of ``rad_pool × n_residual`` (drawn as ``sampling`` says) with probability
            ``∝ |r|^rad_k / mean + rad_c``. Needs ``resample_every > 0`` and ``rad_pool ≥ 2``.
        rad_pool, rad_k, rad_c: see ``rad``.
        balance: ``"none"`` or ``"grad_norm"``: loss weights balanced by the terms' gradient norms (Adam
            phase only; L-BFGS keeps the last weights), updated every ``balance_every`` iterations with
            smoothing ``balance_alpha``; the factors come from the unweighted terms and multiply the
            configured weights; a term whose gradient norm is below machine ε of the largest one's (rounding
            noise, e.g. a condition the architecture satisfies exactly) is left out of the balance (see
            :class:`sciml.pinn.strategies.GradNormBalance`).
        preconditioned: weight of the preconditioned residual ``mean(((−Δ)⁻¹ r)²)`` on a grid of the
            domain's bounding box, added to the loss as the term ``"preconditioned"`` (0: off), see
            :class:`sciml.pinn.strategies.PreconditionedResidual`; it makes smooth errors cost what they
            weigh in the L2 error, which the pointwise residual does not (high-wavenumber Helmholtz: README).
        preconditioned_points: its grid points per axis (``points ** ndim`` residual evaluations per loss;
            0: about 4096 in all, ``round(4096 ** (1 / ndim))``).
        time_windows: time-marching over this many equal time windows (1: off; needs a time coordinate).
            Window ``k`` trains a copy of the model that starts from window ``k − 1``'s weights, with
            window ``k − 1``'s prediction (value, and time derivative for an initial velocity) as its
            initial condition; the Adam and L-BFGS iterations are split evenly over the windows (the
            first windows take the remainder) so the run costs what it costs without marching, and
            ``decay_every`` is divided by ``K`` so each window runs the whole learning-rate schedule;
            window ``k`` draws its points with seed ``seed + k``. Causal weighting, RAD, balancing and hard
            constraints act inside each window. Errors, residual statistics and the history are over the
            whole domain (windows not trained yet still hold their initial weights).
        average_last: tail averaging: the trained parameters are the mean of the iterates at the ends of
            the resampling periods that fall in the last ``average_last`` fraction of the iterations (0:
            off, the last iterate), see :class:`sciml.pinn.strategies.TailAverage`. Each period ends fitted
            to its own points; the mean cancels much of that scatter (the history gets a last entry,
            phase ``"average"``, for the averaged model). Needs ``resample_every > 0``.

    Raises:
        ValueError: non-positive counts or rates, values of the wrong type (the message names the
            field), loss weights that are not finite numbers ≥ 0 (per-equation residual weights: not all 0),
            unknown dtype, engine or device, and RAD that would change nothing (``rad=True`` with
            ``resample_every=0`` or ``rad_pool=1``).
    """

    adam_iterations: int = 2000
    lbfgs_iterations: int = 0
    lr: float = 1e-3
    lr_decay: float = 0.9
    decay_every: int = 1000
    lbfgs_lr: float = 1.0
    lbfgs_history: int = 50
    n_residual: int = 2048
    n_condition: int = 512
    condition_points: Mapping[str, int] = field(default_factory=dict)
    resample_every: int = 100
    weights: Mapping[str, float] = field(default_factory=dict)
    eval_every: int = 500
    checkpoint_every: int = 1000
    dtype: str = "float32"
    seed: int = 0
    engine: str = "auto"
    eval_batch: int = 8192
    device: str = "cpu"
    sampling: str = "uniform"
    causal_chunks: int = 0
    causal_eps: float = 1.0
    rad: bool = False
    rad_pool: int = 4
    rad_k: float = 1.0
    rad_c: float = 1.0
    balance: str = "none"
    balance_every: int = 100
    balance_alpha: float = 0.9
    preconditioned: float = 0.0
    preconditioned_points: int = 0
    time_windows: int = 1
    average_last: float = 0.0

    def __post_init__(self) -> None:
        _positive_int("adam_iterations", self.adam_iterations, 0)
        _positive_int("lbfgs_iterations", self.lbfgs_iterations, 0)
        _positive_int("n_residual", self.n_residual)
        _positive_int("n_condition", self.n_condition)
        _mapping("condition_points", self.condition_points, "{'initial': 2048}")
        _mapping("weights", self.weights, "{'residual': 1e-3, 'dirichlet': 10}")
        for name in ("lr_decay", "balance_alpha"):
            _number(name, getattr(self, name))
        for name, n in self.condition_points.items():
            _positive_int(f"condition_points[{name!r}]", n)
        _positive_int("resample_every", self.resample_every, 0)
        _positive_int("decay_every", self.decay_every)
        _positive_int("lbfgs_history", self.lbfgs_history)
        _positive_int("eval_every", self.eval_every)
        _positive_int("checkpoint_every", self.checkpoint_every)
        _positive_int("eval_batch", self.eval_batch)
        _positive_int("seed", self.seed, 0)
        for name in ("lr", "lbfgs_lr"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0):
                raise ValueError(f"`{name}` must be a positive number, got {v!r}")
        if not (0 < self.lr_decay <= 1):
            raise ValueError(f"`lr_decay` must be in (0, 1], got {self.lr_decay!r}")
        # (per-equation residual weights become a tuple of floats; their count is the trainer's to check)
        weights = {key: _check_loss_weight(key, w, "weights") for key, w in self.weights.items()}
        _one_of("dtype", self.dtype, _DTYPES)
        _positive_int("causal_chunks", self.causal_chunks, 0)
        _positive_int("rad_pool", self.rad_pool)
        _positive_int("balance_every", self.balance_every)
        _positive_int("time_windows", self.time_windows)
        if not (isinstance(self.average_last, (int, float)) and 0 <= self.average_last < 1):
            raise ValueError(f"`average_last` must be a fraction in [0, 1), got {self.average_last!r}")
        if self.average_last > 0 and self.resample_every == 0:
            raise ValueError(
                "`average_last` averages the iterates at the ends of the resampling periods, and "
                "resample_every=0 has none: set resample_every > 0 or average_last=0"
            )
        if self.preconditioned_points == 1:
            raise ValueError("`preconditioned_points` must be 0 (automatic) or ≥ 2, got 1")
        _positive_int("preconditioned_points", self.preconditioned_points, 0)
        for name in ("causal_eps", "rad_k", "rad_c", "preconditioned"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0):
                raise ValueError(f"`{name}` must be a finite number ≥ 0, got {v!r}")
        if not isinstance(self.rad, bool):
            raise ValueError(f"`rad` must be True or False, got {self.rad!r}")
        if self.rad and self.resample_every == 0:
            raise ValueError(
                "`rad` draws new residual points where the residual is large at every resampling, and "
                "resample_every=0 never resamples (the points would come once, from the untrained "
                "network's residual): set resample_every > 0, or rad=False"
            )
        if self.rad and self.rad_pool < 2:
            raise ValueError(
                f"`rad_pool` = {self.rad_pool} with rad=True: RAD keeps n_residual of rad_pool × n_residual "
                "candidates, so a pool of 1 is the sample itself and RAD would change nothing; use "
                "rad_pool ≥ 2 (default 4), or rad=False"
            )
        _one_of("balance", self.balance, ("none", "grad_norm"))
        if not (0 <= self.balance_alpha < 1):
            raise ValueError(f"`balance_alpha` must be in [0, 1), got {self.balance_alpha!r}")
        _one_of("engine", self.engine, ("auto", "jet", "autograd"))
        _one_of("sampling", self.sampling, _SAMPLINGS)
        object.__setattr__(self, "device", _device_name(self.device))
        object.__setattr__(self, "condition_points", dict(self.condition_points))
        object.__setattr__(self, "weights", weights)

    @property
    def iterations(self) -> int:
        return self.adam_iterations + self.lbfgs_iterations

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        rel_l2: final relative L2 error on the reference points inside the domain (all fields together);
            ``None`` when the trainer has no reference (give one with ``Trainer.evaluate(reference=...)``).
        iterations: iterations done (Adam + L-BFGS).
        seconds: wall time of training (including evaluations; summed over resumed sessions).
        cpu_seconds: CPU time of this process over the same span (on a shared machine, the better measure
            of the work done; with one thread it is what the wall time would be on an idle core).
        params: trainable parameters of the model (plus fitted coefficients).
        history: log entries ``{"iteration", "phase", "loss", "rel_l2", "seconds", "loss_<term>",
            "residual_rms", "residual_max", ...}`` (residual statistics on fixed points of the domain).
        unknowns: fitted coefficients of an inverse problem.
        message: how training ended.
        model: the trained model (the one passed in; with ``time_windows > 1`` the
            :class:`~sciml.pinn.strategies.TimeWindows` module made of all windows).
        rel_l2_fields: each field's final relative L2 error (:meth:`Trainer.evaluate_fields`; ``rel_l2``
            takes all fields together, so a field of small values hides in it); ``None`` without a
            reference. With more than one field the history logs them too, as ``rel_l2_<field>``.
    """

    rel_l2: float | None
    iterations: int
    seconds: float
    cpu_seconds: float
    params: int
    history: list[dict[str, Any]]
    unknowns: dict[str, float]
    message: str
    model: nn.Module | None = None
    rel_l2_fields: dict[str, float] | None = None


class Trainer:
    """Trains ``model`` on ``problem`` (see the module docstring); most users call :func:`train`.

    Args:
        problem: the PDE.
        model: maps ``(n, ndim)`` points to ``(n, n_fields)``; wrap it in :class:`~sciml.pinn.Constrained`
            to use the problem's hard constraint (its enforced conditions then leave the loss; they are
            checked to hold for this problem). A PINN or PIG must be built with a box that covers the
            domain (``lower=problem.domain.lower, upper=problem.domain.upper``).
        config: budget and settings.
        reference: what errors are measured against (default: ``sciml.solvers.fd.reference_solution``
            for a problem with an exact solution or a recipe, else none; a recipe is refused where
            ``problem.params`` hold an unknown's guess, as it would be solved with it): a
            ``ReferenceSolution`` (grid), a callable ``points -> values`` (evaluated on the problem's test
            grid), a pair
            ``(points (m, ndim), values (m, n_fields))`` (``(m,)`` for one field), or the path of an
            ``.npz`` / HDF5 file with arrays ``points`` and ``values`` (e.g. exported from a finite-element
            code; optional string arrays ``names`` and ``fields`` name the columns of ``points`` and
            ``values``, which are then put in the problem's order). Only points inside the domain count;
            grid points outside it are NaN in ``prediction_grid``.
        unknowns: coefficients of ``problem.params`` to fit (inverse problem): ``{"D": initial guess}``
            (finite numbers).
        checkpoint: file for atomic checkpoints (and ``resume``): ``fit()`` refuses to overwrite an
            existing one (an earlier run's), ``fit(resume=True)`` needs it.

    Raises:
        ValueError: before any training, for a model whose input or output size does not match the
            problem, a model whose input box (``lower``/``upper`` of a PINN or PIG) does not cover the
            domain, a :class:`~sciml.pinn.Constrained` model whose constraint does not satisfy the
            conditions it claims to enforce for *this* problem, was built from another domain or other
            conditions than the problem's constraint, or whose factor vanishes inside the domain (a wrapper
            built for another problem, e.g. before ``problem.replace(...)``: wrap the network with
            ``Constrained(net, problem.constraint)``), unknown coefficient or loss-term names, per-equation
            residual weights whose count is not ``n_equations``, a residual / condition that returns the
            wrong shape (the residual: ``(n, n_equations)``, ``(n,)`` only for one equation; ``(n, n)``
            is named as a broadcast) or asks for an unknown derivative, or a reference that
            does not fit the problem (see :meth:`set_reference`), ``unknowns`` that are not a mapping
            of names to finite numbers, or ``unknowns`` whose guesses ``problem.params`` hold, with the
            problem's reference recipe and no ``reference`` (the recipe would be solved with the guesses).
        TypeError: a ``problem``, ``model`` or ``config`` of the wrong type (a dict for ``config``: pass
            ``TrainConfig(**config)``).

    Warns:
        UserWarning: a problem with ``constraint="auto"`` and a model not wrapped in it (wrap it:
            ``Constrained(net, problem.constraint)``), a field whose time derivative the residual reads
            without an ``InitialValue`` of it (and, for a second time derivative, an ``InitialVelocity``) nor
            ``Observations`` of it, fields whose RMS values (in the reference, else in the conditions' data)
            differ by more than 100× (fix: ``output_scale=`` on the model, or per-equation residual weights),
            a PINN periodic in a coordinate without a ``Periodic``
            condition, and options that would have no effect: ``balance="grad_norm"`` without Adam
            iterations, ``weights`` or ``condition_points`` for conditions the hard constraint enforces,
            ``condition_points`` for conditions on fixed points (``Observations``, ``PointCondition``: all
            their points are used every iteration), ``unknowns`` that neither the residual nor a condition
            reads, or ``unknowns`` without any ``Observations`` (or only with Observations of loss weight 0);
            and, at the first loss evaluation of an inverse problem, Observations terms below
            ``1e-6`` × the residual term (weighted; the data would carry no gradient).
    """

    def __init__(
        self,
        problem: PDEProblem,
        model: nn.Module,
        config: TrainConfig | None = None,
        *,
        reference: ReferenceLike | None = None,
        unknowns: Mapping[str, float] | None = None,
        checkpoint: str | os.PathLike | None = None,
    ) -> None:
        if not isinstance(problem, PDEProblem):
            raise TypeError(f"`problem` must be a PDEProblem, got {type(problem).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
        if config is not None and not isinstance(config, TrainConfig):
            raise TypeError(
                f"`config` must be a TrainConfig, got {type(config).__name__}"
                + (": pass TrainConfig(**config)" if isinstance(config, Mapping) else "")
            )
        unknowns = self._check_unknowns(problem, unknowns)
        self.problem = problem
        self._warn_setup(model)
        self.config = config or TrainConfig()
        self.dtype = _DTYPES[self.config.dtype]
        self.device = resolve_device(self.config.device)
        #: on a GPU the Adam loop checks for NaN every ``_CHECK_EVERY`` steps (a sync), not every step
        self._defer_checks = self.device.type != "cpu"
        #: time-marching: one problem per window (``None`` without marching)
        self.window_problems: list[PDEProblem] | None = None
        if self.config.time_windows > 1:
            model, self.window_problems = self._marching_model(problem, model, unknowns)
        self.model = model.to(device=self.device, dtype=self.dtype)
        #: trainable parameters (counted once: time-marching freezes earlier windows while it trains)
        self._n_params = count_parameters(self.model)
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        domain = problem.domain
        self._check_model()

        missing = set(unknowns) - set(problem.params)
        if missing:
            raise ValueError(
                f"`unknowns` {sorted(missing)} are not coefficients of {problem.name}; "
                f"its params are {sorted(problem.params)}"
            )
        #: the unknowns' initial guesses (part of a checkpoint's fingerprint: another guess is another run)
        self._guesses = dict(unknowns)
        self.coefficients = nn.ParameterDict(
            {
                k: nn.Parameter(torch.tensor(float(v), dtype=self.dtype, device=self.device))
                for k, v in unknowns.items()
            }
        )

        self._check_constraint(self.model.windows[0] if self.window_problems else self.model)
        enforced = set(model.constraint.enforces) if isinstance(model, Constrained) else set()
        self.conditions = [c for c in problem.conditions if c.name not in enforced]
        terms = {"residual", *(c.name for c in self.conditions)}
        all_terms = {"residual", *(c.name for c in problem.conditions)}
        bad = set(self.config.weights) - all_terms
        if bad:
            raise ValueError(
                f"`weights` names unknown loss terms {sorted(bad)}; the terms are {sorted(all_terms)}"
            )
        bad = set(self.config.condition_points) - all_terms
        if bad:
            raise ValueError(f"`condition_points` names unknown conditions {sorted(bad)}")
        #: per-equation residual weights ``(n_equations,)`` (``None``: one weight for the whole residual)
        self._equation_weights: torch.Tensor | None = None
        self.weights = {}
        for t in terms:
            w = self.config.weights.get(t, problem.weight(t))
            if isinstance(w, tuple):  # (TrainConfig does not know n_equations: the count is checked here)
                w = _check_loss_weight(t, w, "weights", problem.n_equations, problem.name)
                self._equation_weights = torch.tensor(w, dtype=self.dtype, device=self.device)
                w = 1.0
            self.weights[t] = float(w)
        self._warn_options(unknowns)
        #: whether the first :meth:`loss` compares the data's terms with the residual's (inverse problems)
        self._check_data_scale = bool(unknowns)
        #: the preconditioned residual term (``None`` when ``config.preconditioned`` is 0)
        self._preconditioned: strategies.PreconditionedResidual | None = None
        if self.config.preconditioned > 0:
            n = self.config.preconditioned_points or max(2, round(4096 ** (1 / domain.ndim)))
            self._preconditioned = strategies.PreconditionedResidual(
                domain, n, dtype=self.dtype, device=self.device
            )
            terms.add("preconditioned")
            self.weights["preconditioned"] = float(self.config.preconditioned)
        if not any(self.weights.values()):
            raise ValueError(
                f"every loss term has weight 0 ({self.weights}): nothing would be trained; give the residual "
                "or a condition a positive weight in TrainConfig(weights=...) or the problem's loss_weights"
            )
        self.counts = {
            c.name: int(self.config.condition_points.get(c.name, self.config.n_condition))
            for c in self.conditions
        }

        # on a GPU the points are drawn there (a CUDA generator: another stream than the CPU's)
        self.generator = torch.Generator(device=self.device).manual_seed(int(self.config.seed))
        # the recipe is solved with problem.params: refused where they hold an unknown's guess (params with
        # the true coefficient, a synthetic inverse problem, give the right reference)
        guessed = {k: v for k, v in unknowns.items() if float(problem.params.get(k, math.nan)) == float(v)}
        if reference is None and problem.exact is None and problem.reference is not None and guessed:
            guesses = ", ".join(f"{k} = {v:g}" for k, v in guessed.items())
            first = next(iter(guessed))
            raise ValueError(
                f"{problem.name}: its reference recipe ({type(problem.reference).__name__}) would be solved "
                f"with problem.params, which hold the initial guesses of the unknowns ({guesses}), so every "
                "error would be measured against another problem's solution. Pass the reference yourself, "
                "Trainer(..., reference=...) with (points, values) arrays, a callable or a ReferenceSolution "
                "(e.g. sciml.solvers.fd.reference_solution(problem.replace(params="
                f"{{{first!r}: true value}}))), or train without errors: "
                "Trainer(problem.replace(reference=None), ...)"
            )
        if reference is None and (problem.exact is not None or problem.reference is not None):
            reference = reference_solution(problem, progress=True)
        #: the reference grid (``None`` for scattered reference points or no reference)
        self.reference: ReferenceSolution | None = None
        self._test_x: torch.Tensor | None = None
        self._test_u: torch.Tensor | None = None
        self._grid_inside: np.ndarray | None = None
        self.reference_source: str | None = None
        if reference is not None:
            self.set_reference(reference)
        stats = torch.Generator(device=self.device).manual_seed(int(self.config.seed) + 7919)
        self._stats_x = domain.sample(_N_RESIDUAL_STATS, stats, dtype=self.dtype, device=self.device)
        self.keys = self._probe()
        self._warn_initial()
        self._warn_scales()
        if self._unread:
            warnings.warn(
                f"unknowns {self._unread} are never read by the residual or a condition of {problem.name} "
                "(no gradient reaches them), so they would stay at their initial guesses: read them as "
                f"params[{self._unread[0]!r}] in the residual, or drop them from `unknowns`",
                stacklevel=2,
            )
        #: causal weighting: the chunk weights that L-BFGS holds through one of its steps (``None``: the
        #: loss computes them, as it always does in the Adam phase)
        self._causal_weights: torch.Tensor | None = None
        self._hold_causal = False
        #: the terms the last :meth:`loss` summed (per-equation weights inside the residual's)
        self._optimized: dict[str, torch.Tensor] = {}
        if self.config.causal_chunks and problem.domain.time_index is None:
            raise ValueError(
                f"`causal_chunks` weights the residual over time, but {problem.name} has no time "
                "coordinate; set causal_chunks=0"
            )
        self._balance = None
        if self.config.balance == "grad_norm":
            self._balance = strategies.GradNormBalance(
                sorted(terms), self.weights, self.config.balance_every, self.config.balance_alpha
            )

    # ----------------------------------------------------------------- validation
    @staticmethod
    def _check_unknowns(problem: PDEProblem, unknowns: Any) -> dict[str, float]:
        """``unknowns`` as ``{name: initial guess}`` of finite floats.

        Raises:
            ValueError: not a mapping of names to numbers, or a guess that is not finite.
        """
        name = next(iter(problem.params), "D")
        example = f"e.g. {{{name!r}: 0.1}}"
        if unknowns is None:
            return {}
        if not isinstance(unknowns, Mapping) or not all(
            isinstance(k, str) and (_real(v) or (torch.is_tensor(v) and v.numel() == 1))
            for k, v in unknowns.items()
        ):
            raise ValueError(
                f"`unknowns` must map coefficient names to initial guesses (numbers), {example}, got "
                f"{unknowns!r}"
            )
        out = {k: float(v) for k, v in unknowns.items()}
        for k, v in out.items():
            if not math.isfinite(v):
                raise ValueError(
                    f"the initial guess of unknowns[{k!r}] is {v}, which is not finite: give a finite "
                    f"number, e.g. unknowns={{{k!r}: 0.1}}"
                )
        return out

    def _warn_options(self, unknowns: Mapping[str, float]) -> None:
        """Warn (UserWarning) about options that would have no effect: ``balance="grad_norm"`` without Adam
        iterations, ``weights`` / ``condition_points`` for conditions the hard constraint enforces,
        ``condition_points`` for conditions on fixed points (``Observations``, ``PointCondition``), and
        ``unknowns`` without any ``Observations`` (or only with Observations of loss weight 0)."""
        cfg, problem = self.config, self.problem
        if cfg.balance == "grad_norm" and cfg.adam_iterations == 0:
            warnings.warn(
                "balance='grad_norm' balances the loss weights during the Adam phase only, and "
                "adam_iterations=0: L-BFGS trains with the configured weights. Give Adam iterations "
                "(adam_iterations > 0), or set balance='none'",
                stacklevel=3,
            )
        model = self.model.windows[0] if self.window_problems else self.model
        enforced = set(model.constraint.enforces) if isinstance(model, Constrained) else set()
        ignored = {
            option: {k: v for k, v in getattr(cfg, option).items() if k in enforced}
            for option in ("weights", "condition_points")
        }
        if any(ignored.values()):
            what = " and ".join(f"{option} {value}" for option, value in ignored.items() if value)
            warnings.warn(
                f"the model's hard constraint enforces {sorted(enforced)} exactly, so they are not loss "
                f"terms: TrainConfig {what} have no effect. Drop them, or train those conditions in the loss "
                "(a model not wrapped in Constrained, or a problem built with constraint=None)",
                stacklevel=3,
            )
        fixed = {
            c.name: (type(c).__name__, c.points.shape[0])
            for c in problem.conditions
            if isinstance(c, (Observations, PointCondition)) and c.name in cfg.condition_points
        }
        if fixed:
            what = ", ".join(f"{kind} {name!r} ({m} points)" for name, (kind, m) in fixed.items())
            warnings.warn(
                f"TrainConfig condition_points for {what} has no effect: a condition on fixed points uses "
                "all of them every iteration (they are not sampled). Drop those entries, or give the "
                "condition fewer points",
                stacklevel=3,
            )
        observed = [c.name for c in problem.conditions if isinstance(c, Observations)]
        if unknowns and not any(self.weights.get(name, 0.0) > 0 for name in observed):
            if observed:  # data with loss weight 0 are not trained on: as if there were none
                what = f" that is trained on (the Observations {observed} have loss weight 0)"
                fix = (
                    f"Give them a positive weight, e.g. TrainConfig(weights={{{observed[0]!r}: 1.0}}) (or in "
                    "the problem's loss_weights)"
                )
            else:
                what = ""
                fix = "Add data, PDEProblem(..., conditions=(..., Observations(points=..., values=...)))"
            warnings.warn(
                f"unknowns {sorted(unknowns)} are fitted without any Observations condition{what}: the PDE "
                f"and its boundary and initial conditions alone rarely determine a coefficient. {fix}",
                stacklevel=3,
            )

    def _marching_model(
        self, problem: PDEProblem, model: nn.Module, unknowns: Mapping[str, float] | None
    ) -> tuple[strategies.TimeWindows, list[PDEProblem]]:
        """The piecewise model and the window problems of ``time_windows > 1`` (checked)."""
        k = self.config.time_windows
        if problem.domain.time_index is None:
            raise ValueError(
                f"`time_windows` = {k} cuts the time interval into windows, but {problem.name} has no time "
                f"coordinate (coordinates {problem.domain.names}); set time_windows=1"
            )
        if unknowns:
            raise ValueError(
                f"`time_windows` = {k}: time-marching does not fit `unknowns` (each window would fit its "
                "own coefficients); set time_windows=1 for an inverse problem"
            )
        if self.config.iterations < k:
            raise ValueError(
                f"`time_windows` = {k} needs at least {k} iterations (one per window), got "
                f"{self.config.iterations}"
            )
        return strategies.window_problems(problem, model, k)

    def _warn_setup(self, model: nn.Module) -> None:
        """Warn (UserWarning) about a setup that trains, but likely not as meant: a problem with
        ``constraint="auto"`` and a model not wrapped in it, or a time coordinate without an
        ``InitialValue`` condition (nor ``Observations``, which may determine the solution instead)."""
        problem, domain = self.problem, self.problem.domain
        periodic = {  # coordinate name -> the period (the width of the model's box there)
            domain.names[i]: 2 * float(m.box_half[i])
            for m in model.modules()
            if isinstance(m, _Normalized) and hasattr(m, "box_half")
            for i in getattr(m, "periodic", ())
            if i < domain.ndim
        }
        declared = {c.coordinate for c in problem.conditions if isinstance(c, Periodic)}
        for name in sorted(set(periodic) - declared):
            if isinstance(domain, Box) and name in domain.space_names:
                message = (
                    f"the model is periodic in {name!r} (PINN(..., periodic=...)), but {problem.name} has no "
                    f"Periodic condition on {name!r}: the model cannot represent a solution that is not "
                    f"periodic there. If the solution is periodic, add Periodic(coordinate={name!r}) to the "
                    "conditions (the embedding then satisfies it); if not, leave the column out of periodic="
                )
            else:  # no Periodic condition is possible: nothing to add, only the column to drop
                if name == domain.time:
                    why, what, polar = (
                        "it is the time coordinate (Periodic conditions pair opposite faces in space)",
                        "time",
                        "",
                    )
                else:
                    why = (
                        f"the {type(domain).__name__} domain of {problem.name} has no opposite faces in "
                        f"{name!r} for a Periodic condition to pair (a Box has)"
                    )
                    what, polar = (
                        repr(name),
                        (
                            "; for periodicity in an angle, write the problem in polar coordinates on a Box, "
                            "with a Periodic condition on the angle"
                        ),
                    )
                message = (
                    f"the model is periodic in {name!r} (PINN(..., periodic=...)) with the width of its box "
                    f"as the period ({periodic[name]:g}), but {why}. Unless the solution repeats in {what} "
                    f"with that period, leave the column out of periodic={polar}"
                )
            warnings.warn(message, stacklevel=3)
        if problem.constraint_from_conditions and not isinstance(model, Constrained):
            warnings.warn(
                f"{problem.name} has a hard constraint (constraint='auto') but the model is not wrapped in "
                f"it, so it is not used: conditions {list(problem.constraint.enforces)} stay in the loss and "
                "hold only approximately. Wrap the network: Constrained(model, problem.constraint); or build "
                "the problem with constraint=None to train with every condition in the loss",
                stacklevel=3,
            )

    def _warn_initial(self) -> None:
        """Warn (UserWarning) per field whose time derivative the residual reads (``self.keys``) but that no
        ``InitialValue`` of it determines (nor its ``Observations``; a hard constraint enforces the problem's
        own InitialValue conditions), and, where the residual reads its second time derivative, no
        ``InitialVelocity`` of it either. Fields the residual never differentiates in time (e.g. a pressure)
        need none."""
        problem, domain = self.problem, self.problem.domain
        ti, fields = domain.time_index, problem.fields
        if ti is None:
            return
        reads: dict[str, list[str]] = defaultdict(list)  # field -> its time derivatives the residual reads
        order: dict[str, int] = defaultdict(int)
        for index, dims in sorted(self.keys["residual"]):
            if ti in dims:
                f = fields[index]
                reads[f].append(f"{f}_" + "".join(domain.names[j] for j in dims))
                order[f] = max(order[f], dims.count(ti))

        def given(kind: type) -> set[str]:
            return {c.field or fields[0] for c in problem.conditions if isinstance(c, kind)}

        observed, initial, velocity = given(Observations), given(InitialValue), given(InitialVelocity)
        for f in reads:
            missing = [] if f in observed else [
                kind for kind, has in (("InitialValue", initial), ("InitialVelocity", velocity))
                if f not in has and (kind == "InitialValue" or order[f] >= 2)
            ]  # fmt: skip
            if not missing:
                continue
            named = f"field={f!r}, " if len(fields) > 1 else ""
            value = "u0" if missing[0] == "InitialValue" else "v0"
            warnings.warn(
                f"{problem.name} has the time coordinate {domain.time!r} but no "
                f"{' and no '.join(missing)} condition for field {f!r} (nor Observations of it), though its "
                f"residual reads {reads[f]}, so the solution is not determined; add one, e.g. "
                f"PDEProblem(..., conditions=(..., {missing[0]}({named}value={value})))",
                stacklevel=3,
            )

    def _warn_scales(self) -> None:
        """Warn (UserWarning) when the fields' RMS values differ by more than ``_SCALE_RATIO`` (100×): the
        reference's inside the domain, else the conditions' data per field (the largest RMS of its Dirichlet
        and InitialValue values and Observations; fields whose data are all 0 are left out). A small field
        then gets almost no training signal. Not when the model scales its outputs and the residual has
        per-equation weights (either alone leaves a field badly learned: README, "Systems")."""
        problem = self.problem
        scaled = any(getattr(m, "output_scale", None) is not None for m in self.model.modules())
        if len(problem.fields) < 2 or (scaled and self._equation_weights is not None):
            return
        if self._test_u is not None:
            rms = dict(zip(problem.fields, self._test_u.pow(2).mean(dim=0).sqrt().tolist()))
            source = f"the reference ({self.reference_source})"
        else:
            rms, source = self._condition_rms(), "the conditions' data"
        rms = {f: v for f, v in rms.items() if v > 0 and math.isfinite(v)}
        if len(rms) < 2 or max(rms.values()) <= _SCALE_RATIO * min(rms.values()):
            return
        shown = ", ".join(f"{f} {v:.3g}" for f, v in rms.items())
        top = max(rms.values())
        scales = tuple(float(f"{rms.get(f, top) / top:.1g}") for f in problem.fields)
        if isinstance(self.model, Constrained) and self.model.split:  # the network's N₁ and N₂ columns
            scales = scales * 2
        per_field = tuple(float(f"{(top / rms.get(f, top)) ** 2:.1g}") for f in problem.fields)
        example = per_field if problem.n_equations == len(problem.fields) else "(w_0, …)"
        warnings.warn(
            f"{problem.name}: the fields' RMS values in {source} differ by more than {_SCALE_RATIO:g}× "
            f"({shown}): the small field's share of the loss is tiny, so it gets almost no training signal "
            "and its relative error stays large. Scale the model's outputs, "
            f"PINN(..., output_scale={scales}) (or PIG), and weight the equations, one weight per "
            f"equation (n_equations = {problem.n_equations}), e.g. "
            f"TrainConfig(weights={{'residual': {example}}}) (about 1 / scale² of the field each equation "
            "is about); the two together work best",
            stacklevel=3,
        )

    def _condition_rms(self) -> dict[str, float]:
        """Per field, the largest RMS of its conditions' data: Dirichlet and InitialValue values (at 64 of
        their points) and Observations (a zero wall says nothing about the field's scale)."""
        problem, domain, fields = self.problem, self.problem.domain, self.problem.fields
        out: dict[str, float] = {}
        g = torch.Generator().manual_seed(11)
        for c in problem.conditions:
            if not isinstance(c, (Dirichlet, InitialValue, Observations)):
                continue
            try:
                if isinstance(c, Observations):
                    v = torch.as_tensor(c.values, dtype=torch.float64)
                else:
                    x = c.sample(domain, 64, g, torch.float64)
                    v = torch.as_tensor(_evaluate(c.value, x), dtype=torch.float64).expand(x.shape[0])
                rms = float(v.detach().pow(2).mean().sqrt())
            except Exception:  # noqa: BLE001 — data that fail here fail, with their own error, in the loss
                continue
            f = c.field or fields[0]
            out[f] = max(out.get(f, 0.0), rms)
        return out

    def _check_model(self) -> None:
        problem, model = self.problem, self.model
        ndim, n_fields = problem.domain.ndim, len(problem.fields)
        in_features = getattr(model, "in_features", None)
        if in_features is not None and in_features != ndim:
            raise ValueError(
                f"the model takes {in_features} coordinates but {problem.name} has {ndim} "
                f"{problem.domain.names}; build it with in_features={ndim}"
            )
        x = problem.domain.sample(2, torch.Generator().manual_seed(0), dtype=self.dtype).to(self.device)
        try:
            with torch.no_grad():
                out = model(x)
        except RuntimeError as exc:
            raise ValueError(f"the model failed on points of shape (2, {ndim}): {exc}") from exc
        if not torch.is_tensor(out) or out.ndim != 2 or out.shape[1] != n_fields:
            shape = tuple(out.shape) if torch.is_tensor(out) else type(out).__name__
            raise ValueError(
                f"the model returns {shape} for 2 points, but {problem.name} has {n_fields} field(s) "
                f"{problem.fields}: it must return (2, {n_fields}); build it with out_features={n_fields}"
            )
        self._check_box()

    def _check_box(self) -> None:
        """Every PINN / PIG inside the model (also inside a Constrained or time-window wrapper) maps a box
        that covers the domain's bounding box to [−1, 1]^d, and a PINN's periodic columns span exactly the
        domain's extent (their period is the box's width); other modules are not checked.

        Raises:
            ValueError: a box that leaves part of the domain outside (the default [−1, 1]^d of a model
                built without ``lower=`` / ``upper=`` on another domain), or whose periodic column is
                wider or narrower than the domain (the model would repeat with another period).
        """
        domain = self.problem.domain
        lo, hi = np.asarray(domain.lower, dtype=float), np.asarray(domain.upper, dtype=float)
        for module in self.model.modules():
            if not isinstance(module, _Normalized) or not hasattr(module, "box_centre"):
                continue
            centre = module.box_centre.detach().double().cpu().numpy()
            half = module.box_half.detach().double().cpu().numpy()
            if centre.shape != lo.shape:  # a sub-model on other coordinates: not ours to judge
                continue
            slack = 1e-5 * (np.abs(half) + np.abs(centre)) + 1e-6 * (hi - lo)  # the box is stored in float32
            fmt = lambda a: "[" + ", ".join(f"{v:g}" for v in a) + "]"  # noqa: E731
            kind = type(module).__name__
            covers = np.all(centre - half <= lo + slack) and np.all(centre + half >= hi - slack)
            for i in getattr(module, "periodic", ()) if covers else ():
                if (
                    abs(centre[i] - half[i] - lo[i]) <= slack[i]
                    and abs(centre[i] + half[i] - hi[i]) <= slack[i]
                ):
                    continue
                name = domain.names[i]
                raise ValueError(
                    f"the model's {kind} is periodic in {name!r} with the period of its box, lower="
                    f"{fmt(centre - half)}, upper={fmt(centre + half)}: {2 * half[i]:g} in {name!r}, but "
                    f"{self.problem.name}'s domain spans [{lo[i]:g}, {hi[i]:g}] there, so the model would "
                    f"repeat with another period than the domain's (a {kind} built without lower=/upper= has "
                    f"the box [-1, 1] per coordinate). Build it with the domain's box, e.g. "
                    f"{kind}({domain.ndim}, ..., periodic=({i},), lower=problem.domain.lower, "
                    "upper=problem.domain.upper)"
                )
            if covers:
                continue
            raise ValueError(
                f"the model's {kind} maps the box lower={fmt(centre - half)}, upper={fmt(centre + half)} to "
                f"[-1, 1]^{domain.ndim}, but {self.problem.name}'s domain spans lower={fmt(lo)}, "
                f"upper={fmt(hi)} {domain.names}: part of the domain lies outside the box (a {kind} built "
                "without lower=/upper= assumes [-1, 1] per coordinate). Build it with the domain's box, "
                f"e.g. {kind}({domain.ndim}, ..., lower=problem.domain.lower, upper=problem.domain.upper)"
            )

    def _check_constraint(self, model: nn.Module) -> None:
        """A :class:`Constrained` model must hold this problem's hard constraint (the conditions it enforces
        leave the loss): each such condition's residual must vanish at 16 of its points up to rounding
        (whatever the network's weights), a constraint built from conditions must have been built from
        those of the problem's own constraint (domain, fields, enforced conditions), and the factor must not
        vanish inside the domain (at 2 or more of 256 points, below 1e-16 of its largest value there).

        Raises:
            ValueError: the constraint names conditions the problem does not have, or fails one of those
                checks (a wrapper built for another problem, e.g. before ``problem.replace(...)``).
        """
        problem = self.problem
        if not isinstance(model, Constrained):
            return
        constraint, names = model.constraint, [c.name for c in problem.conditions]
        unknown = [n for n in constraint.enforces if n not in names]
        fix = (
            "the Constrained wrapper was built for another problem (e.g. before problem.replace(...)); wrap "
            "the network with the constraint of the problem you train, Constrained(net, problem.constraint)"
        )
        if unknown:
            raise ValueError(
                f"the model's hard constraint enforces conditions {unknown} that {problem.name} does not "
                "have "
                f"(its conditions: {names}): {fix}"
            )
        domain, params = problem.domain, self.params()
        g = torch.Generator().manual_seed(3)
        rel = 1e-3 if self.dtype == torch.float32 else 1e-6
        for name in constraint.enforces:
            c = problem.condition(name)
            x = c.sample(domain, 16, g, self.dtype).to(self.device)
            d = AutogradDerivatives(model, x, domain.names, problem.fields)
            r = c.residual(domain, d.x, d, params).detach().abs()
            u = d.value().detach().abs()
            scale = max(1.0, float(u.max())) if u.numel() else 1.0
            worst = float(r.max()) if r.numel() else 0.0
            if worst > rel * scale:  # (NaN passes: the loss check reports non-finite values)
                i = int(r.argmax())
                where = ", ".join(f"{k}={float(v):.4g}" for k, v in zip(domain.names, x[i]))
                raise ValueError(
                    f"the model's hard constraint claims to enforce condition {name!r} of {problem.name}, "
                    f"which then leaves the loss, but it violates it: |residual| up to {worst:.3g} at its "
                    f"points (e.g. at {where}); {fix}"
                )
        built, own = constraint.origin, getattr(problem.constraint, "origin", None)
        if built is not None and own is not None and built != own:
            show = lambda k, v: f"{v[0]} (coordinates {v[1]})" if k == "domain" else v  # noqa: E731
            what = [
                f"{k} {show(k, a)} (the problem's: {show(k, b)})"
                for k, a, b in zip(("domain", "fields", "conditions"), built, own)
                if a != b
            ]
            raise ValueError(f"the model's hard constraint was built for another {'; '.join(what)}: {fix}")
        x = domain.sample(256, torch.Generator().manual_seed(5), dtype=self.dtype).to(self.device)
        with torch.no_grad():
            h = Constrained._columns(model._fixed()[1](x), x).abs()
        vanish = (h <= 1e-16 * h.amax(dim=0)).any(dim=1)
        if int(vanish.sum()) >= 2:
            where = ", ".join(f"{k}={float(v):.4g}" for k, v in zip(domain.names, x[vanish][0]))
            raise ValueError(
                f"the factor of the model's hard constraint vanishes at {int(vanish.sum())} of 256 points "
                f"inside the domain of {problem.name} (e.g. at {where}), where the network cannot change the "
                f"solution (a constraint built for a domain that does not cover this one?): {fix}"
            )

    def params(self) -> dict[str, Any]:
        """Coefficients for the residual: the problem's, with the fitted unknowns swapped in."""
        return {**self.problem.params, **dict(self.coefficients.items())}

    def _residual_shapes(self, n: int) -> set[tuple[int, ...]]:
        """The shapes a residual may return for ``n`` points: ``(n, n_equations)``, or ``(n,)`` for one."""
        k = self.problem.n_equations
        return {(n, k)} | ({(n,)} if k == 1 else set())

    def _shape_fix(self, r: Any, n: int) -> str:
        """What a residual of the wrong shape for ``n`` points looks like, and its fix ('' if unclear)."""
        if isinstance(r, (list, tuple)):
            return (
                f"; return one tensor with the {len(r)} equations as columns: return "
                "torch.stack([...], dim=1)"
            )
        if not torch.is_tensor(r):
            return ""
        if r.ndim == 2 and r.shape[1] == n and r.shape[0] != n:
            return (
                "; it holds the equations as rows: stack along dim=1 (or transpose), torch.stack([...], "
                "dim=1) or r.T"
            )
        if r.ndim >= 2 and r.shape[0] == r.shape[1] == n:  # (the probe tells n equations from this)
            return f"; {_BROADCAST_FIX}"
        if r.ndim == 2 and r.shape[0] == n and r.shape[1] > 1:
            return (
                f"; if the problem has {r.shape[1]} equations, set n_equations={r.shape[1]} in PDEProblem "
                f"(or problem.replace(n_equations={r.shape[1]}))"
            )
        if tuple(r.shape) == (n,):
            return (
                f"; one column for {self.problem.n_equations} equations would leave equations out: return "
                "all of them as columns, torch.stack([...], dim=1), or set n_equations=1"
            )
        return ""

    def _check_residual(self, r: Any, n: int, fix: str | None = None) -> torch.Tensor:
        """``r`` if it is a residual for ``n`` points of the problem's ``n_equations`` (a shape comparison:
        the probe and every loss evaluation check it, so a mismatch never trains).

        Raises:
            ValueError: another shape; the message says what it looks like and the fix (``fix``: the
                probe's finding, else judged from ``r``).
        """
        allowed = self._residual_shapes(n)
        if torch.is_tensor(r) and tuple(r.shape) in allowed:
            return r
        shape = tuple(r.shape) if torch.is_tensor(r) else type(r).__name__
        raise ValueError(
            f"{self.problem.name}: the residual returned {shape} for {n} points; it must return a tensor of "
            f"shape {' or '.join(str(a) for a in sorted(allowed))} (n_equations = {self.problem.n_equations})"
            f"{self._shape_fix(r, n) if fix is None else fix}"
        )

    def _probe(self) -> dict[str, set]:
        """Run the residual and each condition once by autograd: check shapes, record derivative keys, and
        set ``_unread`` to the unknown coefficients that no gradient of them reaches. A residual of shape
        ``(n, n)`` runs on a second point count, which tells a broadcast from ``n`` equations."""
        problem, domain = self.problem, self.problem.domain
        k = problem.n_equations
        n = 8 if k != 8 else 9  # a point count that no equation count is taken for: (n, n) is never right
        g = torch.Generator().manual_seed(1)
        keys: dict[str, set] = {}
        params = _ProbeParams(self.params())

        def evaluate(m: int) -> tuple[Any, AutogradDerivatives]:
            xm = domain.sample(m, g, dtype=self.dtype).to(self.device)
            dm = AutogradDerivatives(self.model, xm, domain.names, problem.fields)
            try:
                return problem.residual(dm.x, dm, params), dm
            except KeyError as exc:
                raise ValueError(f"{problem.name}: the residual looks up {exc.args[0]}") from exc
            except RuntimeError as exc:  # e.g. torch.stack of an (m, m) broadcast and an (m,) column
                if f"[{m}, {m}]" not in str(exc):
                    raise
                raise ValueError(
                    f"{problem.name}: the residual failed on {m} points with a tensor of shape ({m}, {m}) in "
                    f"it ({exc}); {_BROADCAST_FIX}"
                ) from exc

        r, d = evaluate(n)
        fix = None
        if torch.is_tensor(r) and r.ndim >= 2 and r.shape[0] == r.shape[1] == n:
            # (n, n): a broadcast, n equations, or n equations as rows? Another point count tells
            m = n + 3
            other = evaluate(m)[0]
            if torch.is_tensor(other) and tuple(other.shape) not in self._residual_shapes(m):
                fix = self._shape_fix(other, m) or None
        self._check_residual(r, n, fix)
        keys["residual"] = set(d.requested)
        outputs = [r]
        for c in self.conditions:
            xc = c.sample(domain, 4, g, self.dtype).to(self.device)
            dc = AutogradDerivatives(self.model, xc, domain.names, problem.fields)
            try:
                rc = c.residual(domain, dc.x, dc, params)
            except KeyError as exc:
                raise ValueError(f"{problem.name}: condition {c.name!r} looks up {exc.args[0]}") from exc
            if not torch.is_tensor(rc) or rc.ndim != 1:
                raise ValueError(f"{problem.name}: condition {c.name!r} must return a 1-D tensor")
            keys[c.name] = set(dc.requested)
            outputs.append(rc)
        #: unknown coefficients that neither the residual nor a condition reads (their gradient is None)
        self._unread: list[str] = []
        if self.coefficients:
            used = [o.sum() for o in outputs if o.requires_grad]
            coefficients = list(self.coefficients.values())
            grads = (
                torch.autograd.grad(used, coefficients, allow_unused=True)
                if used
                else [None] * len(coefficients)
            )
            self._unread = sorted(k for k, g in zip(self.coefficients, grads) if g is None)
        return keys

    # ----------------------------------------------------------------- loss
    def sample(self) -> dict[str, torch.Tensor]:
        """Fresh collocation points for the residual and every condition (drawn on the trainer's device)."""
        domain, device = self.problem.domain, self.device
        points = {
            "residual": domain.sample(
                self.config.n_residual,
                self.generator,
                dtype=self.dtype,
                device=device,
                method=self.config.sampling,
            )
        }
        for c in self.conditions:
            points[c.name] = c.sample(domain, self.counts[c.name], self.generator, self.dtype, device=device)
        return points

    def _derivatives(self, term: str, x: torch.Tensor):
        domain = self.problem.domain
        # the piecewise model of time-marching has no jets of its own (each window trains with them)
        engine = "autograd" if isinstance(self.model, strategies.TimeWindows) else self.config.engine
        return derivatives(self.model, x, domain.names, self.problem.fields, self.keys[term], engine=engine)

    def loss(self, points: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted loss and its unweighted terms (mean squares; the residual's without per-equation
        weights, as the history logs it). The terms the loss sums (the residual's with its per-equation
        weights, which gradient balancing sees) are left in ``_optimized`` until the next call."""
        params = self.params()
        d = self._derivatives("residual", points["residual"])
        squares = self._check_residual(self.problem.residual(d.x, d, params), d.x.shape[0]) ** 2
        ew = self._equation_weights
        weighted = squares if ew is None else squares * ew  # (n, k) columns, or (n,) for one equation
        if self.config.causal_chunks:  # causal weighting over time chunks (sciml.pinn.strategies)
            domain, ti = self.problem.domain, self.problem.domain.time_index
            held = self._causal_weights if self._hold_causal else None
            causal = functools.partial(
                strategies.causal_residual, t=d.x[:, ti], t0=float(domain.lower[ti]),
                t1=float(domain.upper[ti]), chunks=self.config.causal_chunks, eps=self.config.causal_eps,
            )  # fmt: skip
            residual, weights = causal(weighted, weights=held)
            if self._hold_causal and held is None:  # L-BFGS: the step's first evaluation sets them
                self._causal_weights = weights
            optimized = {"residual": residual}
            terms = {"residual": residual if ew is None else causal(squares.detach(), weights=weights)[0]}
        else:
            optimized = {"residual": weighted.mean()}
            terms = {"residual": optimized["residual"] if ew is None else squares.detach().mean()}
        if self._preconditioned is not None:
            dp = self._derivatives("residual", self._preconditioned.points)
            r = self._check_residual(self.problem.residual(dp.x, dp, params), dp.x.shape[0])
            # the transform is linear per equation: √w per column weighs its squares by w
            optimized["preconditioned"] = self._preconditioned(r if ew is None else r * ew.sqrt())
            terms["preconditioned"] = (
                optimized["preconditioned"] if ew is None else self._preconditioned(r.detach())
            )
        for c in self.conditions:
            dc = self._derivatives(c.name, points[c.name])
            rc = c.residual(self.problem.domain, dc.x, dc, params)
            terms[c.name] = optimized[c.name] = (rc**2).mean()
        weights = self.weights if self._balance is None else self._balance.weights()
        total = sum(weights[k] * v for k, v in optimized.items())  # (a fixed order: reproducible sums)
        self._optimized = optimized
        if self._check_data_scale:  # once, at the first evaluation (of an inverse problem)
            self._check_data_scale = False
            self._warn_data_scale(optimized, weights)
        return total, terms

    def _warn_data_scale(self, optimized: Mapping[str, torch.Tensor], weights: Mapping[str, float]) -> None:
        """Warn (UserWarning) when the weighted Observations terms are below ``_DATA_RATIO`` × the weighted
        residual term: the data then carry almost no gradient, and the residual alone drives the unknowns.

        Args:
            optimized: the terms the loss sums (:meth:`loss`).
            weights: their loss weights.
        """
        data = [
            c.name for c in self.conditions if isinstance(c, Observations) and weights.get(c.name, 0.0) > 0
        ]
        if not data or weights.get("residual", 0.0) <= 0:
            return  # (no data trained on: _warn_options said so)
        terms = torch.stack([weights[k] * optimized[k].detach() for k in ("residual", *data)])
        residual, *observed = terms.double().tolist()  # one device-to-host copy
        total = sum(observed)
        if not (math.isfinite(residual) and 0 < total < _DATA_RATIO * residual):
            return
        # the smallest positive term (one can be exactly 0, e.g. data at t₀ that a hard constraint fits)
        least = min((i for i, v in enumerate(observed) if v > 0), key=observed.__getitem__)
        name = data[least]
        w = float(f"{weights[name] * residual / observed[least]:.1g}")  # makes the two terms equal
        shown = ", ".join(f"{n!r} {v:.3g}" for n, v in zip(data, observed))
        term = "terms (" + shown + ", weighted) are" if len(data) > 1 else f"term ({shown}, weighted) is"
        balance = (
            ", or balance them, TrainConfig(balance='grad_norm')"
            if self._balance is None and self.config.adam_iterations > 0  # (it acts in the Adam phase)
            else ""
        )
        warnings.warn(
            f"{self.problem.name}: at the start of training the Observations {term} "
            f"{residual / total:.3g}× smaller than the residual term ({residual:.3g}, weighted), so the data "
            "carry almost no gradient and the fitted coefficients "
            f"{sorted(self.coefficients.keys())} will be driven by the residual rather than the data. "
            "Non-dimensionalise (normalise) the equation so that its terms are of order 1, raise the data's "
            f"loss weight, e.g. TrainConfig(weights={{{name!r}: {w:g}}}) (about the ratio of the terms)"
            f"{balance}",
            stacklevel=_user_stacklevel(),
        )

    def _adapt(self, points: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Freshly sampled ``points`` with the residual points redrawn by RAD when configured."""
        cfg = self.config
        if not cfg.rad:
            return points
        domain, n = self.problem.domain, cfg.n_residual
        pool = domain.sample(
            n * cfg.rad_pool, self.generator, dtype=self.dtype, device=self.device, method=cfg.sampling
        )

        def residual(x: torch.Tensor) -> torch.Tensor:  # with √w per equation: the density of the loss
            d = self._derivatives("residual", x)
            r = self._check_residual(self.problem.residual(d.x, d, self.params()), x.shape[0])
            return r if self._equation_weights is None else r * self._equation_weights.sqrt()

        return {
            **points,
            "residual": strategies.rad_points(pool, residual, n, self.generator, k=cfg.rad_k, c=cfg.rad_c),
        }

    # ----------------------------------------------------------------- evaluation
    @torch.no_grad()
    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        """Model values at points ``(m, ndim)`` on the trainer's device, float64 (batched)."""
        out = [
            self.model(x[i : i + self.config.eval_batch])
            for i in range(0, x.shape[0], self.config.eval_batch)
        ]
        return torch.cat(out).double()

    def predict(self, x: torch.Tensor | np.ndarray) -> np.ndarray:
        """Model values at points ``(m, ndim)`` as float64 numpy ``(m, n_fields)`` (batched).

        Raises:
            ValueError: points of another shape than ``(m, ndim)`` (the message names the coordinates).
        """
        try:
            x = _shape_checked(self.problem.domain, x)
        except ValueError as error:
            raise ValueError(f"Trainer.predict: `x`: {error}") from None
        return self._predict(torch.as_tensor(x, dtype=self.dtype, device=self.device)).cpu().numpy()

    def set_reference(self, reference: ReferenceLike) -> None:
        """Use ``reference`` for errors from now on (see the class docstring for the accepted forms).

        Raises:
            ValueError: a file without ``points`` / ``values`` arrays, shapes that do not match the
                problem (a callable that returns another shape than one value per grid point and field),
                non-finite points or values, no reference point inside the domain, or a reference that is
                zero at every point inside it (the relative error is undefined).
            TypeError: an unsupported kind of reference, or a callable that returns no array.

        Warns:
            UserWarning: scattered reference points outside the domain (they are left out; the warning
                says how many, and past 10 % the order the columns must have, unless the points form a
                complete tensor grid over the domain's bounding box), duplicate points, or fewer than 10
                points in the domain.
        """
        problem, domain = self.problem, self.problem.domain
        in_file = isinstance(reference, (str, os.PathLike))
        grid, what = None, f"reference file {Path(reference)}" if in_file else "`reference`"
        if in_file:
            points, values = _read_reference(Path(reference), domain.names, problem.fields)
        elif isinstance(reference, ReferenceSolution):
            grid = reference
            points, values = grid.points(), grid.flat_values()
        elif callable(reference):
            shape = self._test_shape()
            axes = domain.axes(shape)
            mesh = _grid_points(axes)
            out = reference(torch.as_tensor(mesh, dtype=torch.float64))
            try:
                out = np.asarray(out.detach().cpu() if torch.is_tensor(out) else out, dtype=float)
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"a callable `reference` must return values (m,) or (m, n_fields) as a tensor or array, "
                    f"got {type(out).__name__}: {exc}"
                ) from None
            m = mesh.shape[0]
            allowed = value_shapes(m, len(problem.fields))
            if out.shape not in allowed:
                raise ValueError(
                    f"a callable `reference` returned shape {out.shape} for the {m} points of the test grid "
                    f"{tuple(shape)} {domain.names}; it must return one value per point (and field): "
                    f"{' or '.join(str(a) for a in allowed)}"
                )
            out = out[:, None] if out.ndim == 1 else out
            grid = ReferenceSolution(axes, out.reshape(*shape, -1), "callable")
            points, values = mesh, out
        elif isinstance(reference, (tuple, list)) and len(reference) == 2:
            try:
                points, values = (np.asarray(_to_cpu(v), dtype=float) for v in reference)  # (detached)
            except (TypeError, ValueError) as exc:
                raise ValueError(
                    f"`reference` (points, values) must hold arrays or tensors of real numbers: {exc}"
                ) from None
        else:
            raise TypeError(
                "`reference` must be a ReferenceSolution, a callable, (points, values) or an .npz/.h5 path, "
                f"got {type(reference).__name__}"
            )
        k = len(problem.fields)
        shapes = "(m,) or (m, 1)" if k == 1 else f"(m, {k})"
        if (
            points.ndim != 2
            or points.shape[1] != domain.ndim
            or values.shape not in value_shapes(points.shape[0], k)
        ):
            raise ValueError(
                f"{what} has points {points.shape} and values {values.shape}; {problem.name} needs "
                f"(m, {domain.ndim}) points {domain.names} and values {shapes} "
                f"(one per point and field {problem.fields}){_shape_fix(points, values, domain.ndim, k)}"
            )
        if not points.shape[0]:
            raise ValueError(f"{what} has no points (arrays of shape {points.shape} and {values.shape})")
        values = values[:, None] if values.ndim == 1 else values
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            raise ValueError(
                f"{what} has non-finite points (NaN or inf) in {int(bad.sum())} of its "
                f"{points.shape[0]} rows, e.g. row {int(bad.argmax())}: {points[bad][0].tolist()}; remove "
                "those rows"
            )
        inside = domain.inside(torch.as_tensor(points, dtype=torch.float64)).cpu().numpy()
        n, m = int(inside.sum()), points.shape[0]
        order = ""
        if domain.ndim > 1 and grid is None:
            named = ", or name them in an array 'names' in the file" if in_file else ""
            order = f"; check the column order: columns must be {domain.names}, in that order{named}"
        if not n:
            raise ValueError(f"{what}: none of its {m} points lies inside the domain{order}")
        if grid is None:  # (a grid covers the bounding box: its outside is expected)
            duplicates = n - len(np.unique(points[inside], axis=0))
            far = order if m - n > 0.1 * m else ""
            if far and _spans_box(points, domain.lower, domain.upper):  # its outside is expected too
                far = ", as expected of a tensor grid over the domain's bounding box"
            for warn, message in (
                (n < m, f"{m - n} of its {m} points lie outside the domain of {problem.name} and are left "
                 f"out of the error{far}"),
                (duplicates, f"{duplicates} of its {n} points in the domain are duplicates: each copy counts "
                 "again, so duplicates weight the error towards their points; remove them"),
                (n < 10, f"fewer than 10 points in the domain ({n}): the relative L2 error over so few "
                 "points says little about the solution; give more points"),
            ):  # fmt: skip
                if warn:
                    warnings.warn(f"{what}: {message}", stacklevel=_user_stacklevel())
        bad = inside & ~np.isfinite(values).all(axis=1)
        if bad.any():
            first = dict(zip(domain.names, points[bad][0].tolist()))
            raise ValueError(
                f"{what} has non-finite values (NaN or inf) in {int(bad.sum())} of its {n} rows in the "
                f"domain, first row {int(bad.argmax())} at {first}; remove those rows"
                if grid is None
                else f"the reference (or the problem's `exact`) has non-finite values at {int(bad.sum())} of "
                f"its {n} points in the domain, e.g. at {first}; a callable that rounds to a tiny negative "
                "number under a square root on the boundary needs a clamp there"
            )
        if not np.any(values[inside]):
            raise ValueError(
                f"the reference (or the problem's `exact`) is zero at all its {int(inside.sum())} points in "
                "the "
                "domain: the relative L2 error ‖u − u_ref‖ / ‖u_ref‖ is undefined. Measure against a nonzero "
                "reference, or leave `exact` out of the problem (it trains without one; the history then "
                "logs the residual statistics)"
            )
        if grid is not None:
            masked = np.where(inside[:, None], grid.flat_values(), np.nan).reshape(grid.values.shape)
            grid = dataclasses.replace(grid, values=masked)
        self.reference, self._grid_inside = grid, inside
        self.reference_source = (
            grid.source if grid is not None else f"file {Path(reference)}" if in_file else "points"
        )
        # the test points are moved to the device once; evaluations never copy them again
        self._test_x = torch.as_tensor(points[inside], dtype=self.dtype, device=self.device)
        self._test_u = torch.as_tensor(values[inside], dtype=torch.float64, device=self.device)

    def reference_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The reference points inside the domain, their reference values and the model there.

        Returns:
            ``(points (m, ndim), values (m, n_fields), prediction (m, n_fields))`` as float64 arrays, or
            ``None`` without a reference.
        """
        if self._test_x is None:
            return None
        points = self._test_x.detach().cpu().double().numpy()
        return points, self._test_u.cpu().numpy(), self._predict(self._test_x).cpu().numpy()

    def evaluate(self, reference: ReferenceLike | None = None) -> float | None:
        """Relative L2 error ``‖u − u_ref‖ / ‖u_ref‖`` over the reference points inside the domain
        (computed on the device); ``None`` without a reference.

        Args:
            reference: a new reference to use from now on (any form the class accepts).
        """
        pred = self._test_prediction(reference)
        return None if pred is None else self._relative_error(pred)

    def _relative_error(self, pred: torch.Tensor) -> float:
        """All fields' relative L2 error of ``pred`` (the model at the reference points)."""
        return float(torch.linalg.norm(pred - self._test_u) / torch.linalg.norm(self._test_u))

    def _test_prediction(self, reference: ReferenceLike | None) -> torch.Tensor | None:
        """The model at the reference points inside the domain (after taking ``reference``, if given);
        ``None`` without a reference."""
        if reference is not None:
            self.set_reference(reference)
        return None if self._test_x is None else self._predict(self._test_x)

    def evaluate_fields(self, reference: ReferenceLike | None = None) -> dict[str, float] | None:
        """Relative L2 error of each field over the reference points inside the domain (:meth:`evaluate`
        takes all fields together, so a field of small values hides in it); ``None`` without a reference. A
        field that is zero at every reference point gets its RMS error, with a warning.

        Args:
            reference: a new reference to use from now on (any form the class accepts).
        """
        pred = self._test_prediction(reference)
        return None if pred is None else self._field_errors(pred)

    def _logged_errors(self) -> dict[str, float | None]:
        """The history's error entries from one prediction: ``rel_l2`` (all fields; ``None`` without a
        reference) and, with more than one field, each field's as ``rel_l2_<field>``."""
        pred = self._test_prediction(None)
        if pred is None:
            return {"rel_l2": None}
        out = {"rel_l2": self._relative_error(pred)}
        if len(self.problem.fields) > 1:
            out.update({f"rel_l2_{k}": v for k, v in self._field_errors(pred).items()})
        return out

    def _field_errors(self, pred: torch.Tensor) -> dict[str, float]:
        """Each field's relative L2 error of ``pred`` (RMS for a field that is zero everywhere, warned)."""
        errors, scales = torch.linalg.norm(pred - self._test_u, dim=0), torch.linalg.norm(self._test_u, dim=0)
        out = {}
        for name, error, scale in zip(self.problem.fields, errors.tolist(), scales.tolist()):
            if scale == 0:  # no relative error of a field that is zero: its RMS error instead
                warnings.warn(
                    f"field {name!r} is zero at every reference point: its entry is the RMS error, not a "
                    "relative one",
                    stacklevel=3,
                )
                scale = math.sqrt(self._test_u.shape[0])
            out[name] = error / scale
        return out

    def residual_statistics(self) -> dict[str, float]:
        """Root mean square and maximum of ``|residual|`` on fixed points of the domain (by the derivative
        engine; a measure of progress that needs no reference), without per-equation weights.

        Returns:
            ``{"residual_rms", "residual_max"}`` over all equations; with more than one equation also
            ``residual_rms_<i>`` and ``residual_max_<i>`` of equation ``i`` (``i = 0 … n_equations − 1``),
            which show the equation that lags.
        """
        d = self._derivatives("residual", self._stats_x)
        r = self._check_residual(self.problem.residual(d.x, d, self.params()), d.x.shape[0]).detach().abs()
        out = {"residual_rms": float(r.pow(2).mean().sqrt()), "residual_max": float(r.max())}
        if r.ndim == 2 and r.shape[1] > 1:
            rms, top = r.pow(2).mean(dim=0).sqrt().tolist(), r.amax(dim=0).tolist()  # one copy each
            for i, (a, b) in enumerate(zip(rms, top)):
                out[f"residual_rms_{i}"], out[f"residual_max_{i}"] = a, b
        return out

    def _test_shape(self) -> tuple[int, ...]:
        """The problem's ``test_shape``, else a default by the number of coordinates."""
        return self.problem.test_shape or default_test_shape(self.problem.domain)

    def test_axes(self) -> tuple[np.ndarray, ...]:
        """The axes of :meth:`prediction_grid`'s grid: the reference grid's, else the problem's test grid
        (``test_shape``, or a default by the number of coordinates) over the domain's bounding box."""
        if self.reference is not None:
            return self.reference.axes
        return self.problem.domain.axes(self._test_shape())

    def prediction_grid(self) -> np.ndarray:
        """The model on the grid of :meth:`test_axes` (the reference grid if there is one, else the problem's
        test grid): ``(*shape, n_fields)``, NaN outside the domain."""
        if self.reference is not None:
            values = self.predict(self.reference.points())
            values[~self._grid_inside] = np.nan
            return values.reshape(self.reference.values.shape)
        axes = self.test_axes()
        points = _grid_points(axes)
        values = self.predict(points)
        inside = self.problem.domain.inside(torch.as_tensor(points, dtype=torch.float64)).cpu().numpy()
        values[~inside] = np.nan
        return values.reshape(*(len(a) for a in axes), -1)

    # ----------------------------------------------------------------- checkpoints
    @functools.cached_property
    def _problem_fingerprint(self) -> dict[str, Any]:
        # not just the name: a checkpoint of another problem of the same name (a user's replace(...)) must
        # not resume; computed once, when a checkpoint is written or read
        return self.problem.fingerprint()

    def _fingerprint(self) -> dict[str, Any]:
        """What a checkpoint must match to be resumed: the problem, the model (its class, parameter count and
        structure, :func:`_model_fingerprint`; not its trainable values), the config (but the device) and
        the unknowns' initial guesses (by name)."""
        return {
            "problem": self._problem_fingerprint,
            "model": type(self.model).__name__,
            "params": self._n_params,
            **_model_fingerprint(self.model),
            "config": {k: v for k, v in self.config.to_dict().items() if k != "device"},
            "unknowns": dict(sorted(self._guesses.items())),
            # time-marching with a hard constraint: a checkpoint of the ansatz before later windows' factors
            # were stretched to the window's length is another model (strategies._window_constraint)
            **({"window_factor": "stretched to each window's length"} if self._stretched_windows() else {}),
        }

    def _stretched_windows(self) -> bool:
        """Whether later time windows move a hard-constrained initial value (their factor is stretched to the
        window's length, :func:`strategies._window_constraint`)."""
        return bool(
            self.window_problems
            and strategies.constrained_initial_values(self.problem, self.model.windows[0]).any()
        )

    def _save(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:  # CPU tensors only: a GPU checkpoint resumes on a CPU and back
            state = {**_to_cpu(state), "generator_device": self.device.type}
            save_checkpoint({**state, "fingerprint": self._fingerprint()}, self.checkpoint)

    def _load(self) -> dict[str, Any] | None:
        if self.checkpoint is None or not self.checkpoint.exists():
            return None
        state = load_checkpoint(self.checkpoint)
        stored, now = state.get("fingerprint", {}), self._fingerprint()
        if stored and not any(key in stored for key in _MODEL_KEYS):  # written before the model's structure
            now = {k: v for k, v in now.items() if k not in _MODEL_KEYS}  # was part of it
        if isinstance(stored.get("unknowns"), list):  # written when it held the unknowns' names only
            now = {**now, "unknowns": sorted(now["unknowns"])}
        if stored and "window_factor" in now and "window_factor" not in stored:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint} was written by an earlier sciml, whose later time windows had "
                "another hard-constraint factor (not stretched to the window's length), so the run cannot be "
                "continued: train anew, with another checkpoint= path (or delete the file) and fit() without "
                "resume=True"
            )
        if isinstance(stored.get("problem"), Mapping) and "probes" not in stored["problem"]:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint} was written by an earlier sciml, which probed the problem's "
                "functions at a few points only (too few to tell a changed problem apart), so the run cannot "
                "be continued: train anew, with another checkpoint= path (or delete the file) and fit() "
                "without resume=True"
            )
        if stored != now:
            diff = sorted(k for k in now if stored.get(k) != now[k])
            details = "; ".join(_fingerprint_differences(stored, now))
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint} was written for another run (differs in {diff}): {details}. "
                "To continue that run, resume with the problem, model, TrainConfig and unknowns (initial "
                "guesses) it was written with (a longer budget is another run); to train this one, pass "
                "another checkpoint= path (or delete the file) and call fit() without resume=True"
            )
        return state

    def _check_checkpoint_use(self, resume: bool) -> None:
        """``fit(resume=True)`` needs an existing checkpoint; ``fit()`` does not overwrite one.

        Raises:
            ValueError: ``resume=True`` without a ``checkpoint`` path.
            FileNotFoundError: ``resume=True`` and the checkpoint file does not exist.
            FileExistsError: ``resume=False`` and the checkpoint file exists (an earlier run's).
        """
        if resume and self.checkpoint is None:
            raise ValueError(
                "fit(resume=True) continues from a checkpoint, but this Trainer has none: build it with "
                "checkpoint=PATH (the file of an earlier run), or call fit() without resume=True to train "
                "from scratch"
            )
        if resume and not self.checkpoint.exists():
            raise FileNotFoundError(
                f"fit(resume=True): the checkpoint {self.checkpoint} does not exist; pass the checkpoint= "
                "path of an earlier run, or call fit() without resume=True to train from scratch"
            )
        if not resume and self.checkpoint is not None and self.checkpoint.exists():
            raise FileExistsError(
                f"the checkpoint {self.checkpoint} already exists (an earlier run) and fit() would overwrite "
                "it: call fit(resume=True) to continue that run, or pass another checkpoint= path (or delete "
                "the file) to train from scratch"
            )

    # ----------------------------------------------------------------- training
    #: whether the model starts from trained weights (a later time-marching window starts from the last one's)
    _starts_trained = False
    #: whether ``fit`` has run on this trainer (a second call warns: see :meth:`fit`)
    _fitted = False

    def _trainable(self) -> list[nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.coefficients.values())

    def _locate_non_finite(
        self, terms: Mapping[str, torch.Tensor], points: Mapping[str, torch.Tensor] | None
    ) -> str | None:
        """Where a non-finite loss term comes from, when the model's outputs are finite (computed only after
        a failure).

        Args:
            terms: the unweighted loss terms of the failed evaluation.
            points: the points they were evaluated at (``None``: unknown).

        Returns:
            A sentence naming the term, how many of its points give a non-finite value and the first such
            point (and the unknowns' current values; when it is (nearly) every point, the unknowns as the
            likely cause), a sentence naming the unknown coefficients that are themselves non-finite, or
            ``None`` when the model's outputs are non-finite too (the parameters diverged) or no point is
            to blame (e.g. the mean of finite squares overflowed).
        """
        try:
            return self._locate(terms, points) if points is not None else None
        except Exception:  # noqa: BLE001 — a diagnosis that fails must not hide the failure it explains
            return None

    def _locate(self, terms: Mapping[str, torch.Tensor], points: Mapping[str, torch.Tensor]) -> str | None:
        """See :meth:`_locate_non_finite`."""
        problem, params = self.problem, self.params()
        conditions = {c.name: c for c in self.conditions}
        broken = [k for k, v in self.coefficients.items() if not torch.isfinite(v)]
        if broken:
            return (
                f"the unknown coefficient(s) {self._unknowns_now(broken)} became non-finite, and every term "
                f"that reads them with it: lower the learning rate (lr={self.config.lr:g}), give a guess "
                f"closer to the solution, or parametrize the coefficient, e.g. {broken[0]} = exp(log_"
                f"{broken[0]}) for a positive one"
            )
        for name, value in terms.items():
            if torch.isfinite(value) or name not in points:
                continue
            x = points[name]
            with torch.no_grad():
                outputs = self.model(x)
            # outputs near the dtype's overflow are diverged parameters, not an undefined equation
            huge = torch.finfo(outputs.dtype).max ** 0.25
            if not torch.isfinite(outputs).all() or outputs.abs().max() > huge:
                return None
            with torch.enable_grad():
                d = self._derivatives(name, x)
                if name == "residual":
                    r = problem.residual(d.x, d, params)
                else:
                    r = conditions[name].residual(problem.domain, d.x, d, params)
            # NaN (0/0, a root or power of a negative number) is the equation's; ±inf may be an overflow
            bad = torch.isnan(r.detach().reshape(x.shape[0], -1)).any(dim=1)
            count = int(bad.sum())
            if not count:
                continue
            i = int(bad.nonzero()[0, 0])
            at = ", ".join(f"{k} = {float(v):.4g}" for k, v in zip(problem.domain.names, x[i]))
            values = ", ".join(f"{k} = {float(v):.4g}" for k, v in zip(problem.fields, outputs[i]))
            what = "residual" if name == "residual" else f"condition {name!r}"
            text = (
                f"the {what} is non-finite at {count} of {x.shape[0]} points although the model's outputs "
                f"there are finite (e.g. at {at}, where {values})"
            )
            if self.coefficients and count >= _NEARLY_ALL * x.shape[0]:
                first = next(iter(self.coefficients))
                return (
                    f"{text}: as it is (nearly) every point, the unknown coefficient(s) "
                    f"{self._unknowns_now()} may be the cause (the equation undefined for this value, e.g. "
                    "the square root or logarithm of a negative coefficient). Give a guess in the domain of "
                    f"the residual, a lower learning rate (lr={self.config.lr:g}), or parametrize it, e.g. "
                    f"{first} = exp(log_{first}) for a positive coefficient"
                )
            unknowns = f" (unknowns now: {self._unknowns_now()})" if self.coefficients else ""
            return (
                f"{text}{unknowns}: the equation is undefined for these values, e.g. a fractional power or "
                "square root of a negative number, a logarithm of a non-positive one, or a division by zero; "
                "write it so that it is defined for every value the model may take (e.g. sign(y) * abs(y)**p "
                "instead of y**p, or clamp the argument)"
            )
        return None

    def _unknowns_now(self, names: Sequence[str] | None = None) -> str:
        """The current values of the unknown coefficients ``names`` (default: all), as ``"D = 0.05, …"``."""
        names = list(self.coefficients) if names is None else names
        return ", ".join(f"{k} = {float(self.coefficients[k].detach()):.4g}" for k in names)

    def _check_finite(
        self,
        total: torch.Tensor,
        terms: Mapping[str, torch.Tensor],
        iteration: int,
        phase: str,
        since: int | None = None,
        points: Mapping[str, torch.Tensor] | None = None,
    ):
        """Raise :class:`TrainingDiverged` for a non-finite loss (``since``: it was checked only up to then,
        the first bad iteration lies after it; the terms are those of ``iteration``, evaluated at
        ``points``, which locate the fault when the model's outputs are finite)."""
        if since is not None or not torch.isfinite(total):
            bad = [k for k, v in terms.items() if not torch.isfinite(v)] or ["(weighted sum)"]
            where = f"; the last checkpoint is {self.checkpoint}" if self.checkpoint else ""
            when = f"iteration {iteration}" if since is None else f"iterations {max(since, 0)}–{iteration}"
            located = self._locate_non_finite(terms, points)
            if iteration == 0 and since is None:  # nothing has been trained yet: the data are at fault
                raise TrainingDiverged(
                    f"{self.problem.name}: the loss is {float(total.detach())} at the initial parameters "
                    f"(iteration 0, before any update); non-finite terms: {', '.join(bad)}. "
                    + (
                        f"{located[0].upper()}{located[1:]}"
                        if located
                        else "Check that the residual, the condition values and the hard constraint are "
                        "finite at every point of the domain and its boundary (a square root or logarithm of "
                        "a negative number, a division by zero, a NaN in the data)"
                    )
                )
            if located:
                advice = located
            else:
                lr = f"Lower the learning rate (lr={self.config.lr:g})"
                advice = (  # float64 only where it is not float64 already
                    f"{lr}, change the loss weights, or train in float64"
                    if self.dtype != torch.float64
                    else f"{lr} or change the loss weights"
                )
                if self.coefficients:
                    advice += f" (unknowns now: {self._unknowns_now()})"
            raise TrainingDiverged(
                f"{self.problem.name}: the loss became {float(total.detach())} at {when} "
                f"({phase}); "
                f"non-finite terms: {', '.join(bad)}" + (f": {advice}" if located else f". {advice}") + where
            )

    def _no_lbfgs_progress(
        self,
        iteration: int,
        loss: float,
        points: Mapping[str, torch.Tensor],
        trial: list[torch.Tensor],
        terms: Mapping[str, torch.Tensor],
    ) -> None:
        """L-BFGS gave up at its first iteration: every line search reached a non-finite loss.

        Args:
            iteration: where L-BFGS started (and stopped).
            loss: the loss of the parameters kept.
            points: the last trial's points.
            trial: the parameters of the last non-finite trial (the model holds the kept ones).
            terms: that trial's loss terms.

        Raises:
            TrainingDiverged: nothing was trained at all (``iteration`` 0 of a model that did not start from
                trained weights, as a later time-marching window does).

        Warns:
            RuntimeWarning: after Adam iterations (the model keeps Adam's parameters).
        """
        bad = [k for k, v in terms.items() if not torch.isfinite(v)] or ["(weighted sum)"]
        params = self._trainable()
        kept = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, value in zip(params, trial):
                p.copy_(value)
        try:
            located = self._locate_non_finite(terms, points)
        finally:
            with torch.no_grad():
                for p, value in zip(params, kept):
                    p.copy_(value)
        why = located or (
            "the model's outputs became non-finite along the search direction; lower "
            f"`lbfgs_lr` ({self.config.lbfgs_lr:g}), change the loss weights or train with Adam first "
            "(`adam_iterations`)"
        )
        text = (
            f"{self.problem.name}: L-BFGS made no progress from iteration {iteration}: its line search "
            f"reached a non-finite loss 3 times in a row (non-finite terms: {', '.join(bad)}): {why}"
        )
        if iteration == 0 and not self._starts_trained:
            raise TrainingDiverged(f"{text}. Nothing was trained (the model keeps its initial parameters)")
        warnings.warn(
            f"{text}. The model keeps the parameters of iteration {iteration} (loss {loss:.3e})",
            RuntimeWarning,
            stacklevel=3,
        )

    def fit(self, *, progress: bool = True, resume: bool = False) -> TrainResult:
        """Train to the configured budget (continuing from the checkpoint with ``resume``).

        Calling ``fit()`` again on the same trainer (without ``resume``) trains once more from the current
        weights and unknown coefficients (and the random stream of points), but restarts the iteration
        count, the history, the optimizers (Adam, then L-BFGS) and the learning-rate schedule from ``lr``,
        with a warning; for one longer run give a larger budget (``adam_iterations``,
        ``lbfgs_iterations``) to a new trainer.

        Args:
            progress: show a tqdm bar.
            resume: continue the run saved in ``checkpoint`` (bit-for-bit, as if it had not stopped).

        Returns:
            The :class:`TrainResult`.

        Raises:
            ValueError: ``resume=True`` without a ``checkpoint`` path.
            FileNotFoundError: ``resume=True`` and the checkpoint file does not exist.
            FileExistsError: ``resume=False`` and the checkpoint file exists: an earlier run would be
                overwritten (resume it, or pass another path).
            CheckpointMismatch: (a ValueError) ``resume=True`` with a checkpoint of another run; the message
                names the fields that differ.
            TrainingDiverged: the loss became NaN or infinite.
            ValueError: the residual returned another shape than ``(n, n_equations)`` for the ``n``
                training points (checked at every loss evaluation).
            KeyboardInterrupt: Ctrl-C, re-raised after writing the state of the last completed iteration
                to ``checkpoint`` (L-BFGS: of its last completed chunk of at most 50 iterations), which
                ``resume`` continues exactly; not written when Ctrl-C came inside an Adam step or log entry.
                Its message says which.
        """
        self._check_checkpoint_use(resume)
        if self._fitted and not resume:  # the model starts from trained weights now
            self._starts_trained = True
            warnings.warn(
                f"{self.problem.name}: fit() was called a second time on this trainer: it continues from the "
                "trained weights and unknown coefficients, but restarts the iteration count (from 0), the "
                "history, the optimizers and the learning-rate schedule (from lr="
                f"{self.config.lr:g}), so the result reports this run only. For one longer run, build a new "
                "trainer with a larger budget (TrainConfig(adam_iterations=..., lbfgs_iterations=...))",
                stacklevel=2,
            )
        self._fitted = True
        if self.window_problems is not None:
            return self._fit_windows(progress=progress, resume=resume)
        cfg = self.config
        params = self._trainable()
        iteration, phase, history, points, elapsed, message = 0, "adam", [], None, 0.0, ""
        cpu_elapsed = 0.0
        lbfgs_scale, opt_state, stalls, opt = None, None, 0, None
        last: dict[str, Any] = {}  # L-BFGS: its last evaluation (the loss a chunk must lower)
        lbfgs_start = None
        if resume:
            state = self._load()
            if state is not None:
                self.model.load_state_dict(state["model"])
                self.coefficients.load_state_dict(state["coefficients"])
                iteration, phase, history = int(state["iteration"]), state["phase"], list(state["history"])
                self._check_data_scale = self._check_data_scale and iteration == 0  # (said at the start)
                if state.get("generator_device", "cpu") == self.device.type:
                    self.generator.set_state(state["generator"])
                else:  # CPU and CUDA random streams differ: continue with a fresh, deterministic one
                    self.generator.manual_seed(int(cfg.seed) + 1 + iteration)
                points, elapsed = state["points"], float(state["seconds"])
                if points is not None:
                    points = {k: v.to(self.device) for k, v in points.items()}
                cpu_elapsed = float(state["cpu_seconds"])
                lbfgs_scale, opt_state, stalls = (
                    state["lbfgs_scale"],
                    state["optimizer"],
                    int(state["stalls"]),
                )
                message = state.get("message", "")
                if state.get("lbfgs_last") is not None:
                    last["total"] = float(state["lbfgs_last"])
                lbfgs_start = state.get("lbfgs_start")
                if self._balance is not None and state.get("balance") is not None:
                    self._balance.factors.update(state["balance"])
        total_iterations = cfg.iterations
        average = None
        if cfg.average_last > 0:
            first = total_iterations - round(cfg.average_last * total_iterations)
            average = strategies.TailAverage(params, first)
            if resume and state is not None and state.get("average") is not None:
                average.load_state_dict(state["average"])
        start, cpu_start = time.perf_counter(), time.process_time()

        def seconds() -> float:
            return elapsed + time.perf_counter() - start

        def cpu_seconds() -> float:
            return cpu_elapsed + time.process_time() - cpu_start

        def snapshot(optimizer) -> dict[str, Any]:
            return {
                "model": self.model.state_dict(),
                "coefficients": self.coefficients.state_dict(),
                "generator": self.generator.get_state(),
                "iteration": iteration,
                "phase": phase,
                "history": history,
                "points": points,
                "seconds": seconds(),
                "cpu_seconds": cpu_seconds(),
                "lbfgs_scale": lbfgs_scale,
                "optimizer": opt_state if optimizer is None else optimizer.state_dict(),
                "stalls": stalls,
                "message": message,
                "balance": None if self._balance is None else dict(self._balance.factors),
                "average": None if average is None else average.state_dict(),
                "lbfgs_last": last.get("total"),
                "lbfgs_start": lbfgs_start,
            }

        def frozen(optimizer) -> dict[str, Any] | None:
            """A copy of the state that later in-place updates do not reach (what Ctrl-C writes in L-BFGS;
            none without a checkpoint path)."""
            if self.checkpoint is None:
                return None
            state = snapshot(optimizer)
            history_now = state.pop("history")
            return {**_to_cpu(state, copy=True), "history": list(history_now)}  # (entries are never changed)

        def log(total: float, terms: Mapping[str, torch.Tensor], stage: str | None = None) -> None:
            entry = {
                "iteration": iteration,
                "phase": stage or phase,
                "loss": total,
                **self._logged_errors(),
                "seconds": seconds(),
                "cpu_seconds": cpu_seconds(),
            }
            values = [v.detach().reshape(()).double() for v in (*terms.values(), *self.coefficients.values())]
            values = torch.stack(values).tolist() if values else []  # one device-to-host copy
            names = [f"loss_{k}" for k in terms] + [f"coef_{k}" for k in self.coefficients.keys()]
            entry.update(zip(names, values))
            entry.update(self.residual_statistics())
            history.append(entry)
            shown = "rel_l2" if entry["rel_l2"] is not None else "residual_rms"  # (no reference)
            bar.set_postfix({"loss": f"{total:.3e}", shown: f"{entry[shown]:.3e}"}, refresh=False)

        def boundary(i: int, every: int) -> bool:
            return every > 0 and i % every == 0

        # what Ctrl-C writes (``except KeyboardInterrupt`` below): the state of the last completed iteration
        # is the current one but for these keys (``None``: not available, mid-step)
        rollback: dict[str, Any] | None = {}
        first, finite, checked, grad_mode = iteration, None, iteration, torch.is_grad_enabled()
        midway = ""  # what an interrupt stopped halfway (when ``rollback`` is None)
        bar = tqdm(
            total=total_iterations, initial=iteration, disable=not progress, desc=f"{self.problem.name}"
        )
        try:
            # ---------------------------------------------------------------- Adam
            if phase == "adam" and iteration < cfg.adam_iterations:
                opt = torch.optim.Adam(params, lr=cfg.lr)
                if opt_state is not None:
                    opt.load_state_dict(opt_state)
                opt_state = None
                deferred = self._defer_checks
                finite, checked = None, iteration
                while iteration < cfg.adam_iterations:
                    rollback = {}
                    if points is None or boundary(iteration, cfg.resample_every):
                        rollback = {"generator": self.generator.get_state(), "points": points}
                        if average is not None:  # the iterate that ends this period
                            rollback["average"] = _to_cpu(average.state_dict(), copy=True)
                            average.add(iteration)
                        points = self._adapt(self.sample())
                    for group in opt.param_groups:
                        group["lr"] = cfg.lr * cfg.lr_decay ** (iteration / cfg.decay_every)
                    opt.zero_grad(set_to_none=True)
                    total, terms = self.loss(points)
                    if self._balance is not None and self._balance.due(iteration):
                        # the residual is balanced as a whole (with its per-equation weights inside)
                        optimized = self._optimized
                        rollback["balance"] = dict(self._balance.factors)
                        self._balance.update(optimized, params)
                        total = sum(w * optimized[k] for k, w in self._balance.weights().items())
                    if deferred:
                        ok = torch.isfinite(total.detach())
                        finite = ok if finite is None else finite & ok
                    else:
                        self._check_finite(total, terms, iteration, phase, points=points)
                    total.backward()
                    midway = f"the step of iteration {iteration + 1}"
                    rollback = None  # Adam updates its moments and the parameters in place
                    opt.step()
                    iteration += 1
                    do_log = boundary(iteration, cfg.eval_every) or iteration == total_iterations
                    do_save = boundary(iteration, cfg.checkpoint_every)
                    midway = f"the log entry of iteration {iteration}"
                    rollback = None if do_log else {}  # (a logged iteration is complete with its entry)
                    bar.update(1)
                    if deferred and (
                        do_log
                        or do_save
                        or boundary(iteration, _CHECK_EVERY)
                        or iteration == cfg.adam_iterations
                    ):
                        if not bool(finite):
                            self._check_finite(
                                total, terms, iteration - 1, phase, since=checked, points=points
                            )
                        finite, checked = None, iteration
                    if do_log:
                        log(float(total.detach()), terms)
                        rollback = {}
                    if do_save:
                        self._save(snapshot(opt))
            # ---------------------------------------------------------------- L-BFGS
            if iteration < total_iterations and not message:  # (a message: L-BFGS stopped early before)
                # L-BFGS changes its state in place, in chunks of many iterations: an interrupt writes a copy
                # of the state at the end of the last completed chunk
                rollback = frozen(opt)
                if phase != "lbfgs":  # a saved Adam state does not carry over
                    opt_state, phase = None, "lbfgs"
                opt = torch.optim.LBFGS(
                    params,
                    lr=cfg.lbfgs_lr,
                    max_iter=1,
                    history_size=cfg.lbfgs_history,
                    tolerance_grad=0.0,
                    tolerance_change=0.0,
                    line_search_fn="strong_wolfe",
                )
                if opt_state is not None:
                    opt.load_state_dict(opt_state)
                if points is None:
                    points = self._adapt(self.sample())
                if lbfgs_scale is None:
                    with torch.no_grad():
                        lbfgs_scale = 1.0 / max(float(self.loss(points)[0]), 1e-30)
                non_finite = 0
                lbfgs_start = iteration if lbfgs_start is None else lbfgs_start
                rescale_below = _LBFGS_RESCALE_BELOW if self.dtype == torch.float64 else 0.0

                def closure() -> torch.Tensor:
                    opt.zero_grad(set_to_none=True)
                    total, terms = self.loss(points)
                    scaled = total * lbfgs_scale
                    scaled.backward()
                    # one host-device sync per evaluation, after the backward pass (L-BFGS reads the loss
                    # as a Python number right after anyway)
                    value = float(total.detach())
                    if not math.isfinite(value):  # kept to explain a failure that makes no progress
                        last["trial"] = (
                            [p.detach().clone() for p in params],
                            {k: v.detach() for k, v in terms.items()},
                        )
                        raise _NonFiniteTrial
                    last.setdefault("start", value)  # the step's first evaluation: at its start point
                    last["total"] = value
                    last["terms"] = {k: v.detach() for k, v in terms.items()}
                    return scaled

                while iteration < total_iterations:
                    if boundary(iteration, cfg.resample_every):
                        if average is not None:
                            average.add(iteration)
                        points = self._adapt(self.sample())
                    stops = [total_iterations]
                    for every in (cfg.resample_every, cfg.eval_every, cfg.checkpoint_every):
                        if every > 0:
                            stops.append((iteration // every + 1) * every)
                    chunk = min(min(stops) - iteration, _LBFGS_CHUNK)
                    group = opt.param_groups[0]
                    group["max_iter"], group["max_eval"] = chunk, chunk * 25
                    state = opt.state[opt._params[0]]
                    scaled_loss = state.get("prev_loss")
                    if scaled_loss is not None and 0 < scaled_loss < rescale_below:
                        _rescale_lbfgs(opt, 1.0 / scaled_loss)
                        lbfgs_scale /= scaled_loss
                    before = state.get("n_iter", 0)
                    loss_before = last.get("total", math.inf)
                    kept = [p.detach().clone() for p in params]
                    # causal weighting: the weights of the step's first evaluation hold through the step, so
                    # that the line search sees one objective (recomputed at the next step)
                    self._causal_weights, self._hold_causal = None, bool(cfg.causal_chunks)
                    last.pop("start", None)
                    try:
                        try:
                            opt.step(closure)
                        finally:
                            self._hold_causal = False
                    except _NonFiniteTrial:
                        # a line-search trial left the finite region: roll back to the parameters before
                        # this chunk, forget the curvature pairs and try again; give up after 3 in a row
                        with torch.no_grad():
                            for p, k in zip(params, kept):
                                p.copy_(k)
                            if not math.isfinite(loss_before):  # first chunk: is the start itself finite?
                                total, terms = self.loss(points)
                                self._check_finite(total, terms, iteration, phase, points=points)
                                loss_before = float(total)
                        opt.state = defaultdict(dict)
                        last["total"] = loss_before
                        non_finite += 1
                        if non_finite >= 3:
                            message = (
                                f"L-BFGS stopped at iteration {iteration}: its line search reached a "
                                f"non-finite loss 3 times in a row (kept the last finite parameters, "
                                f"loss {loss_before:.3e})"
                            )
                            if iteration == lbfgs_start:  # no L-BFGS step at all: say why, loudly
                                self._no_lbfgs_progress(iteration, loss_before, points, *last["trial"])
                            break
                        continue
                    non_finite = 0
                    ran = opt.state[opt._params[0]].get("n_iter", 0) - before
                    iteration += ran
                    bar.update(ran)
                    # progress: the parameters moved (the line search accepts only a decrease) and the loss
                    # fell; with causal weights, against this step's start under the same weights. An
                    # iteration whose line search found no step still counts in n_iter, so a chunk of a few
                    # iterations can run to its end without moving: that is a stall too
                    moved = any(not torch.equal(p, k) for p, k in zip(params, kept))
                    if cfg.causal_chunks:
                        loss_before = last.get("start", loss_before)
                    progress = moved and last.get("total", math.inf) < loss_before
                    if ran < chunk or not moved:  # stopped early (no descent direction or no progress)
                        stalls = 1 if progress else stalls + 1
                        opt.state = defaultdict(dict)  # forget the curvature pairs, restart
                        if ran == 0 or stalls >= 3:
                            message = (
                                f"L-BFGS stopped at iteration {iteration}: no decrease after {stalls} memory "
                                f"resets (loss {last.get('total', float('nan')):.3e})"
                            )
                            break
                    else:
                        stalls = 0
                    if boundary(iteration, cfg.eval_every) or iteration >= total_iterations:
                        log(last["total"], last["terms"])
                    rollback = frozen(opt)
                    if boundary(iteration, cfg.checkpoint_every):
                        self._save(snapshot(opt) if rollback is None else rollback)
            if not history or history[-1]["iteration"] != iteration:
                total, terms = self.loss(points if points is not None else self.sample())
                log(float(total.detach()), terms)
            message = message or f"finished {iteration} iterations"
            if average is not None and average.count:
                average.add(iteration)  # the last iterate
                average.apply()
                if history[-1]["phase"] != "average":  # (a finished run resumed: logged already)
                    total, terms = self.loss(points if points is not None else self.sample())
                    log(float(total.detach()), terms, "average")
                    message += (
                        f"; parameters averaged over the ends of {average.count} resampling periods "
                        f"(iterations {average.start}–{iteration})"
                    )
            final = self.evaluate()
            self._save(snapshot(opt))
        except KeyboardInterrupt as interrupt:  # Ctrl-C: keep the completed iterations where that is exact
            torch.set_grad_enabled(grad_mode)  # (Ctrl-C at the exit of a no_grad block skips its restore)
            if self.checkpoint is not None:
                saved = None if rollback is None else {**snapshot(opt), **rollback}
                if saved is None:
                    why = f"{midway} was half done"
                elif finite is not None and not bool(finite):
                    why = f"the loss became non-finite after iteration {checked}"
                elif saved["iteration"] == first:
                    why = "no iteration completed in this run"
                else:
                    self._save(saved)
                    why = None
                kept = "holds the last checkpoint" if self.checkpoint.exists() else "was not written yet"
                note = (
                    f"nothing was written ({why}); {self.checkpoint} {kept}"
                    if why
                    else f"wrote the state after iteration {saved['iteration']} to {self.checkpoint}, which "
                    "fit(resume=True) continues exactly"
                )
                interrupt.args = (f"{self.problem.name}: interrupted at iteration {iteration}; {note}",)
            raise
        finally:
            bar.close()
        return TrainResult(
            rel_l2=final,
            rel_l2_fields=self.evaluate_fields(),
            iterations=iteration,
            seconds=seconds(),
            cpu_seconds=cpu_seconds(),
            params=count_parameters(self.model) + len(self.coefficients),
            history=history,
            unknowns={k: float(v.detach()) for k, v in self.coefficients.items()},
            message=message,
            model=self.model,
        )

    # ----------------------------------------------------------------- time-marching
    def _window_config(self, k: int) -> TrainConfig:
        """Window ``k``'s share of the budget (see ``TrainConfig.time_windows``)."""
        cfg, n = self.config, self.config.time_windows

        def share(total: int) -> int:
            return total // n + (1 if k < total % n else 0)

        # a condition whose part this window does not reach is left out of its problem, and so of its
        # weights and condition points (strategies.window_problems)
        terms = {"residual", *(c.name for c in self.window_problems[k].conditions)}
        return cfg.replace(
            time_windows=1,
            weights={t: w for t, w in cfg.weights.items() if t in terms},
            condition_points={t: m for t, m in cfg.condition_points.items() if t in terms},
            adam_iterations=share(cfg.adam_iterations),
            lbfgs_iterations=share(cfg.lbfgs_iterations),
            decay_every=max(1, round(cfg.decay_every / n)),
            seed=cfg.seed + k,
        )

    def _fit_windows(self, *, progress: bool, resume: bool) -> TrainResult:
        """Time-marching: train the windows in turn (each by a :class:`_WindowTrainer`), one checkpoint."""
        wrapper: strategies.TimeWindows = self.model
        n = len(wrapper.windows)
        flags = [p.requires_grad for p in wrapper.parameters()]
        march = {
            "window": 0,
            "history": [],
            "seconds": 0.0,
            "cpu_seconds": 0.0,
            "iterations": 0,
            "messages": [],
        }
        inner = None
        if resume:
            state = self._load()
            if state is not None:
                wrapper.load_state_dict(state["model"])
                march = {key: state[key] for key in march}
                march["history"], march["messages"] = list(march["history"]), list(march["messages"])
                inner = state["inner"]
        self._march = march
        try:
            for k in range(int(march["window"]), n):
                for window in wrapper.windows[:k]:  # earlier windows only supply initial data now
                    window.requires_grad_(False)
                if inner is None and k > 0:  # start from the previous window's weights
                    start = wrapper.windows[k - 1]
                    own = wrapper.windows[k]
                    source = start.net if isinstance(start, Constrained) else start
                    target = own.net if isinstance(own, Constrained) else own
                    target.load_state_dict(source.state_dict())
                trainer = _WindowTrainer(self, k, inner)
                result = trainer.fit(progress=progress, resume=inner is not None)
                inner = None
                for entry in result.history:
                    march["history"].append(
                        {
                            **entry,
                            "iteration": entry["iteration"] + march["iterations"],
                            "seconds": entry["seconds"] + march["seconds"],
                            "cpu_seconds": entry["cpu_seconds"] + march["cpu_seconds"],
                            "window": k,
                        }
                    )
                march["iterations"] += result.iterations
                march["seconds"] += result.seconds
                march["cpu_seconds"] += result.cpu_seconds
                if not result.message.startswith("finished"):
                    march["messages"].append(f"window {k + 1}: {result.message}")
                march["window"] = k + 1
                self._save_windows(None)
        finally:
            for p, flag in zip(wrapper.parameters(), flags):
                p.requires_grad_(flag)
        done = march["iterations"]
        message = "; ".join([f"finished {done} iterations in {n} time windows", *march["messages"]])
        self._save_windows(None)
        return TrainResult(
            rel_l2=self.evaluate(),
            rel_l2_fields=self.evaluate_fields(),
            iterations=done,
            seconds=march["seconds"],
            cpu_seconds=march["cpu_seconds"],
            params=self._n_params,
            history=march["history"],
            unknowns={},
            message=message,
            model=self.model,
        )

    def _save_windows(self, inner: dict[str, Any] | None) -> None:
        """Checkpoint of time-marching: every window's weights, the finished windows' history and times,
        and the current window's own trainer state (``inner``; ``None`` between windows)."""
        march = self._march
        self._save({**march, "model": self.model.state_dict(), "inner": inner})


class _WindowTrainer(Trainer):
    """Trains window ``k`` of a time-marching run: the window's model on the window's problem, with errors
    and residual statistics of the whole piecewise model and checkpoints inside the parent's."""

    def __init__(self, parent: Trainer, k: int, inner: dict[str, Any] | None) -> None:
        self._parent, self._inner = parent, inner
        self._starts_trained = k > 0
        super().__init__(
            parent.window_problems[k],
            parent.model.windows[k],
            parent._window_config(k),
            checkpoint=parent.checkpoint,
        )

    def evaluate(self, reference: ReferenceLike | None = None) -> float | None:
        return self._parent.evaluate(reference)

    def evaluate_fields(self, reference: ReferenceLike | None = None) -> dict[str, float] | None:
        return self._parent.evaluate_fields(reference)

    def _logged_errors(self) -> dict[str, float | None]:
        return self._parent._logged_errors()

    def residual_statistics(self) -> dict[str, float]:
        return self._parent.residual_statistics()

    def _save(self, state: dict[str, Any]) -> None:
        if self.checkpoint is not None:
            self._parent._save_windows({**state, "generator_device": self.device.type})

    def _load(self) -> dict[str, Any] | None:
        return self._inner

    def _check_checkpoint_use(self, resume: bool) -> None:
        pass  # the parent's checkpoint, checked by the parent's fit()

    def _warn_setup(self, model: nn.Module) -> None:
        pass  # the parent warned about the whole problem

    def _warn_initial(self) -> None:
        pass  # (the windows after the first take the last one's prediction as their initial condition)

    def _warn_scales(self) -> None:
        pass

    def _warn_options(self, unknowns: Mapping[str, float]) -> None:
        pass  # and about the whole run's options


def train(
    problem: PDEProblem,
    model: nn.Module,
    config: TrainConfig | None = None,
    *,
    reference: ReferenceLike | None = None,
    unknowns: Mapping[str, float] | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train ``model`` on ``problem``; see :class:`Trainer` for the arguments and :class:`TrainResult`.

    Example:
        >>> import sciml.problems.pde as pde
        >>> from sciml.pinn import PIG, TrainConfig, train
        >>> problem = pde.get("helmholtz")
        >>> model = PIG(2, 1, 400, lower=problem.domain.lower, upper=problem.domain.upper)
        >>> config = TrainConfig(adam_iterations=0, lbfgs_iterations=500)
        >>> result = train(problem, model, config)  # doctest: +SKIP
    """
    trainer = Trainer(problem, model, config, reference=reference, unknowns=unknowns, checkpoint=checkpoint)
    return trainer.fit(progress=progress, resume=resume)

"""``odeint``, ``odeint_adjoint``, ``odeint_event``: torchdiffeq's interface on top of our solve loop.

A script using ``from torchdiffeq import odeint`` (or ``odeint_adjoint``, ``odeint_event``) switches by
changing that import to ``from sciml import odeint`` (or ``from sciml.solvers.ode import ...``). Every
torchdiffeq method name maps to a method of our core: the Runge–Kutta tableaus ``dopri8``, ``dopri5``,
``bosh3``, ``fehlberg2``, ``adaptive_heun``, ``tsit5`` (adaptive) and ``euler``, ``midpoint``, ``heun2``,
``heun3``, ``rk4``, ``explicit_adams``, ``implicit_adams`` (fixed grid), and ``scipy_solver``; our names
(``dp5``, ``bs3``) work too. Options,
callbacks, events, tuple and complex states, gradients with respect to ``t`` and the ``adjoint_*``
arguments follow torchdiffeq. Documented differences (each is an error or stated here, never silent):

* ``max_num_steps`` limits the steps of each interval between output times, as in torchdiffeq (the solve may
  take ``max_num_steps`` × ``(len(t) - 1)`` in all, spread as it needs them). Not given, it is 100 000 for the
  whole solve (torchdiffeq: 2³¹ − 1 per interval), so a stiff problem fails in bounded time with a
  :class:`~sciml.solvers.solution.SolveError` that says when the stiffness index indicates stiffness.
* ``options["dtype"]`` is accepted and changes nothing: our step times are host floats (float64), and
  ``func`` gets ``t`` in the state's real dtype, as torchdiffeq passes it.
* Fixed-grid methods step on the grid (``t`` by default, or ``step_size``/``grid_constructor``) *and* on
  every time in ``t`` (``step_size`` steps start afresh at each); torchdiffeq interpolates between grid
  points instead (``interp`` is accepted). Either way the gradient with respect to ``t`` is that of the
  returned values, the grid moving with ``t``.
* The adjoint's step-size control defaults to the seminorm (torchdiffeq: ``adjoint_options={"norm":
  "seminorm"}``); ``adjoint_options={"norm": callable}`` gets torchdiffeq's tuple ``(t, y…, a…, params…)``
  whose ``t`` entry is 0 (our adjoint state carries no time component).
* The Adams methods (``explicit_adams``, ``implicit_adams``/``fixed_adams``) use order 4 by default
  (``options["max_order"]``, at most 8; torchdiffeq goes up to 12) with weights recomputed for the actual
  step sizes. torchdiffeq's implicit methods (``implicit_euler``, ``gl4``, …) other than ``radauIIA5`` are not
  offered yet: naming one raises a ValueError that says so.
"""

from __future__ import annotations

import bisect
import math
import numbers
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.controllers import ConstantSteps, IController
from sciml.solvers.ode.adams import Adams, adams_weights
from sciml.solvers.ode.hooks import StepHooks, time_tensor
from sciml.solvers.ode.solve import get_method, solve

__all__ = ["odeint", "odeint_adjoint", "odeint_event", "method_offered", "MAX_NUM_STEPS"]

_EPS = float(np.finfo(np.float64).eps)
#: default ``options["max_num_steps"]``: a solve that needs more ends with a SolveError naming the cause
MAX_NUM_STEPS = 100_000
_ADAPTIVE = {"dopri8": "dopri8", "dopri5": "dp5", "bosh3": "bs3", "fehlberg2": "fehlberg2",
             "adaptive_heun": "adaptive_heun", "tsit5": "tsit5", "dp5": "dp5", "bs3": "bs3"}  # fmt: skip
_FIXED = {"euler", "midpoint", "heun2", "heun3", "rk4"}
_ADAMS = {"explicit_adams": False, "implicit_adams": True, "fixed_adams": True}
#: torchdiffeq's fixed-step implicit methods we run with our own implicit stepper of the same method
_IMPLICIT = {"radauIIA5"}
_NOT_YET = {"implicit_euler", "implicit_midpoint", "trapezoid", "radauIIA3", "gl4", "gl6", "sdirk2", "trbdf2"}
_OPTIONS = {
    "step_size", "grid_constructor", "perturb", "interp", "first_step", "max_num_steps", "safety", "ifactor",
    "dfactor", "dt_min", "min_step", "max_step", "step_t", "jump_t", "norm", "dtype", "solver", "max_order",
    "max_iters",
}  # fmt: skip
_CALLBACKS = ("callback_step", "callback_accept_step", "callback_reject_step")
#: option -> the methods that use it (what they are called in a warning); the others ignore it with a warning
#: naming it, as torchdiffeq does ("Unexpected arguments"): an adaptive method keeps its error control
_USED_BY: dict[str, tuple[Callable[[str, str], bool], str]] = {
    **dict.fromkeys(("step_size", "grid_constructor", "perturb", "interp"),
                    (lambda kind, method: kind == "fixed", "the fixed-grid methods (e.g. method='rk4')")),
    **dict.fromkeys(("safety", "ifactor", "dfactor", "dt_min"),
                    (lambda kind, method: kind == "adaptive", "the adaptive methods (e.g. method='dopri5')")),
    **dict.fromkeys(("first_step", "max_step"), (lambda kind, method: kind != "fixed",
                                                 "the adaptive methods and method='scipy_solver'")),
    "solver": (lambda kind, method: kind == "scipy", "method='scipy_solver'"),
    **dict.fromkeys(("max_order", "max_iters"),
                    (lambda kind, method: method in _ADAMS, "the Adams methods, e.g. 'explicit_adams'")),
}  # fmt: skip


def method_offered(method: str) -> bool:
    """True if :func:`odeint` accepts ``method`` (a torchdiffeq or sciml method name)."""
    return (
        method in _ADAPTIVE
        or method in _FIXED
        or method in _ADAMS
        or method in _IMPLICIT
        or method == "scipy_solver"
    )


def _method(method: str | None, options: dict):
    """(kind, core method) for a torchdiffeq method name; kind is "adaptive", "fixed" or "scipy"."""
    method = method or "dopri5"
    if method == "scipy_solver":
        from sciml.solvers.ode.scipy_method import ScipyMethod

        solver = options.get("solver", "LSODA")  # torchdiffeq's default
        min_step = options.get("min_step", 0.0)
        return "scipy", ScipyMethod(solver, float(min_step) if solver == "LSODA" else 0.0)
    if method in _ADAPTIVE:
        return "adaptive", get_method(_ADAPTIVE[method])
    if method in _FIXED:
        return "fixed", get_method(method)
    if method in _ADAMS:
        return "fixed", Adams(_ADAMS[method], options.get("max_order", 4), options.get("max_iters", 4))
    if method in _IMPLICIT:  # the same Runge-Kutta method, solved by simplified Newton on the given grid
        from sciml.solvers.ode.radau import Radau

        return "fixed", Radau()  # solve() sets fixed_grid
    if method in _NOT_YET:
        raise ValueError(
            f"method {method!r} (torchdiffeq's fixed-step implicit Runge-Kutta family) is not offered by "
            "sciml's odeint; for stiff problems use 'radauIIA5' (Radau IIA, order 5) or "
            "method='scipy_solver' with options={'solver': 'Radau'}, or the adaptive implicit methods of "
            "sciml.solvers.ode.solve (method='radau5', 'rodas5p', 'kvaerno5' or 'auto'); explicit methods "
            f"here: {sorted(_ADAPTIVE) + sorted(_FIXED) + sorted(_ADAMS)}"
        )
    from sciml.solvers.ode.implicit import IMPLICIT_METHODS

    hint = ""
    if method in (*IMPLICIT_METHODS, "auto"):
        hint = (
            f"; {method!r} is an adaptive implicit method of sciml.solvers.ode.solve: "
            f"solve(ODEProblem(f, y0, (t0, t1)), method={method!r}, saveat=t)"
        )
    raise ValueError(
        f"unknown method {method!r}; choose one of "
        f"{sorted(_ADAPTIVE) + sorted(_FIXED) + sorted(_ADAMS) + sorted(_IMPLICIT) + ['scipy_solver']}{hint}"
    )


class _FlatField(torch.nn.Module):
    """A field on tuples of (possibly complex) tensors run as one flat real state; an nn.Module so the
    wrapped field's parameters stay visible."""

    def __init__(self, func: Callable, shapes: Sequence[torch.Size], is_tuple: bool, complex_: bool):
        super().__init__()
        self.func, self.is_tuple, self.complex = func, is_tuple, complex_
        self.shapes = [torch.Size(s) for s in shapes]
        self.sizes = [s.numel() * (2 if complex_ else 1) for s in self.shapes]

    def split(self, y: torch.Tensor) -> Any:
        """Flat real ``(..., n)`` -> the user's structure (leading dimensions kept)."""
        lead = y.shape[:-1]
        parts = []
        for p, s in zip(torch.split(y, self.sizes, dim=-1), self.shapes):
            if self.complex:
                p = torch.view_as_complex(p.reshape((*lead, -1, 2)).contiguous())
            parts.append(p.reshape((*lead, *s)))
        return tuple(parts) if self.is_tuple else parts[0]

    def join(self, value: Any) -> torch.Tensor:
        parts = value if self.is_tuple else (value,)
        flat = [torch.view_as_real(p).reshape(-1) if self.complex else p.reshape(-1) for p in parts]
        return torch.cat(flat) if len(flat) > 1 else flat[0]

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.join(self.func(t, self.split(y)))


def _ignore_unused_options(options: dict, kind: str, method: str | None) -> None:
    """Drop the options ``method`` does not use, warning about each (torchdiffeq warns and ignores them)."""
    unused = {k: _USED_BY[k][1] for k in options if k in _USED_BY and not _USED_BY[k][0](kind, method)}
    if unused:
        used_by = "; ".join(f"{k} is for {who}" for k, who in unused.items())
        warnings.warn(
            f"odeint: method={method or 'dopri5'!r} ignores options {sorted(unused)} ({used_by}), as "
            "torchdiffeq does: drop them, or choose a method that uses them",
            UserWarning,
            stacklevel=3,
        )
        for k in unused:
            del options[k]


def _step_size(options: dict) -> float:
    """``options['step_size']`` as a positive finite float."""
    step = options["step_size"]
    try:
        value = float(step)
    except (TypeError, ValueError):
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"options['step_size'] must be a positive finite number, got {step!r}")
    return value


def _grid(options, func, y0_user, t: torch.Tensor) -> torch.Tensor:
    """The fixed grid from ``grid_constructor`` (1-D, from ``t[0]`` to ``t[-1]``; it keeps its dependence on
    ``t``), or ``t`` itself."""
    if "step_size" in options and "grid_constructor" in options:
        raise ValueError("options 'step_size' and 'grid_constructor' are mutually exclusive")
    constructor = options.get("grid_constructor")
    if constructor is None:
        return t
    grid = torch.as_tensor(constructor(func, y0_user, t)).reshape(-1)
    values = grid.detach().tolist()
    t0, t1 = float(t.detach()[0]), float(t.detach()[-1])
    if len(values) < 2 or values[0] != t0 or values[-1] != t1:
        raise ValueError(
            f"grid_constructor must return a 1-D grid from t[0]={t0} to t[-1]={t1}, got {values[:3]}..."
        )
    return grid


def _hooks(func, options, kind: str, adjoint_pass: bool, split, shape=None) -> StepHooks:
    suffix = "_adjoint" if adjoint_pass else ""
    found = {name: getattr(func, name + suffix, None) for name in _CALLBACKS}
    if kind == "scipy" and any(found.values()):
        warnings.warn(
            "scipy_solver does not call callback_step/callback_accept_step/callback_reject_step", stacklevel=4
        )
    if kind == "fixed" and (found["callback_accept_step"] or found["callback_reject_step"]):
        warnings.warn("fixed-step methods accept every step: callback_accept_step/callback_reject_step are "
                      "not called (callback_step is)", stacklevel=4)  # fmt: skip
    norm = options.get("norm") if not adjoint_pass else None
    if norm is not None:
        user_norm = norm

        def norm(v: torch.Tensor) -> torch.Tensor:
            return user_norm(split(v) if split is not None else v.view(shape))

    def times(name):
        v = options.get(name)
        return [] if v is None else [float(x) for x in torch.as_tensor(v).detach().reshape(-1)]

    def cb(name):
        fn = found[name]
        if fn is None or split is None:
            return fn
        return lambda t, y, h: fn(t, split(y.reshape(-1)), h)

    return StepHooks(
        callback_step=cb("callback_step"), callback_accept=cb("callback_accept_step"),
        callback_reject=cb("callback_reject_step"), norm=norm, tstops=times("step_t"), jumps=times("jump_t"),
        perturb=bool(options.get("perturb", False)) and kind == "fixed",
        min_step=float(options.get("min_step", 0.0)),
    )  # fmt: skip


def odeint(
    func: Callable[[torch.Tensor, Any], Any],
    y0: torch.Tensor | tuple[torch.Tensor, ...],
    t: torch.Tensor,
    *,
    rtol: float | torch.Tensor = 1e-7,
    atol: float | torch.Tensor = 1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    event_fn: Callable | None = None,
    adjoint: bool = False,
    adjoint_rtol: float | None = None,
    adjoint_atol: float | None = None,
    adjoint_method: str | None = None,
    adjoint_options: dict[str, Any] | None = None,
    adjoint_params: Sequence[torch.Tensor] | None = None,
) -> Any:
    """Solve ``dy/dt = func(t, y)`` and return ``y`` at the times ``t`` (torchdiffeq's ``odeint``).

    Args:
        func: the vector field ``func(t, y)`` (a function or ``nn.Module``); ``y`` has ``y0``'s structure.
            Optional attributes ``callback_step``, ``callback_accept_step``, ``callback_reject_step``
            (and ``*_adjoint`` for the backward solve) are called as ``cb(t, y, dt)``.
        y0: initial state at ``t[0]``: a tensor (real or complex) or a tuple of tensors (an empty one is
            returned unchanged at every time).
        t: 1-D floating tensor of strictly monotone times (one time returns ``y0``); may require grad: a
            fixed-grid method's grid moves with it and its solution is differentiated as computed (step
            times included); otherwise ``d y(t_i) / d t_i = func(t_i, y(t_i))``, the flow's derivative.

    Other args:
        rtol, atol: tolerances (torchdiffeq's defaults 1e-7, 1e-9); either may be 0 (pure absolute or pure
            relative control, as torchdiffeq accepts), not both.
        method: default ``"dopri5"``; see the module docstring for all names.
        options: ``first_step``, ``max_num_steps`` (per output interval; not given, :data:`MAX_NUM_STEPS`
            for the whole solve), ``safety``, ``ifactor``, ``dfactor``, ``min_step``, ``max_step``,
            ``step_t``, ``jump_t``, ``norm``, ``dtype`` (no effect: ``func`` gets ``t`` in the state's real
            dtype) for adaptive methods; ``step_size``, ``grid_constructor``, ``perturb``,
            ``interp`` for fixed-grid ones; ``solver`` for ``scipy_solver``. An option the method does not
            use (``step_size`` for ``dopri5``) is ignored with a warning that names it, as in torchdiffeq.
        event_fn: ``event_fn(t, y)``: integrate from ``t[0]`` (towards ``t[1]`` if given; no more times)
            until it changes sign; then ``(event_t, y)`` is returned with ``y = stack([y0, y(event_t)])``.
        adjoint: use the continuous adjoint (what :func:`odeint_adjoint` sets).
        adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options: for the backward solve (default: the
            forward ones; ``adjoint_options={"norm": "seminorm"}`` or a callable norm).
        adjoint_params: tensors to differentiate with the adjoint (default: ``func``'s parameters). The
            ``adjoint_*`` arguments need ``adjoint=True`` (a TypeError otherwise, as torchdiffeq's
            ``odeint`` refuses them).

    Returns:
        The solution at ``t`` (leading dimension ``len(t)``; a tuple if ``y0`` is one), or
        ``(event_t, solution)`` with ``event_fn``.

    Raises:
        ValueError: unknown method or option, bad ``t``; ``SolveError`` if the solve fails.
        TypeError: an ``adjoint_*`` argument without ``adjoint=True``.
    """
    given = {"adjoint_rtol": adjoint_rtol, "adjoint_atol": adjoint_atol, "adjoint_method": adjoint_method,
             "adjoint_options": adjoint_options, "adjoint_params": adjoint_params}  # fmt: skip
    given = [name for name, value in given.items() if value is not None]
    if given and not adjoint:
        raise TypeError(
            f"odeint got {', '.join(given)} without adjoint=True: these set up the adjoint's backward solve "
            "(torchdiffeq's odeint refuses them); pass adjoint=True or call odeint_adjoint, or drop them"
        )
    options = dict(options or {})
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"unsupported option(s) {sorted(unknown)}; supported: {sorted(_OPTIONS)}")
    steps = options.get("max_num_steps")
    bad = isinstance(steps, bool) or not isinstance(steps, numbers.Real) or not 1 <= steps < math.inf
    if steps is not None and bad:
        raise ValueError(
            f"options['max_num_steps'] must be a number ≥ 1 (finite: steps per output interval), got "
            f"{steps!r}"
        )
    kind, core = _method(method, options)
    _ignore_unused_options(options, kind, method)
    if not torch.is_tensor(t) or t.ndim != 1 or t.numel() < 1 or not t.is_floating_point():
        raise ValueError("`t` must be a 1-D floating tensor of at least one time")
    is_tuple = isinstance(y0, (tuple, list))
    parts = tuple(y0) if is_tuple else (y0,)
    if not all(torch.is_tensor(p) for p in parts):
        raise ValueError("`y0` must be a tensor or a tuple of tensors")
    complex_ = any(p.is_complex() for p in parts)
    if event_fn is not None and sum(p.numel() for p in parts) == 0:
        raise ValueError("`y0` has no entries: event_fn needs a state to integrate until it changes sign")
    if event_fn is not None and t.numel() > 2:
        raise ValueError(
            f"with event_fn, `t` must hold the start time and at most one more time (its direction), as "
            f"torchdiffeq's len(t) == 2; got len(t)={t.numel()}: the solve ends at the event, so the other "
            "times would not be returned. Pass t[:2], then solve from (event_t, solution[-1]) for later times"
        )
    if t.numel() == 1 and event_fn is None:
        return tuple(p.unsqueeze(0) for p in parts) if is_tuple else y0.unsqueeze(0)
    diffs = t[1:] - t[:-1]
    if t.numel() > 1 and not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
        raise ValueError("`t` must be strictly increasing or strictly decreasing")
    if adjoint and adjoint_params is None:
        if not isinstance(func, torch.nn.Module):
            raise ValueError("odeint_adjoint needs func to be an nn.Module, or the tensors it depends on "
                             "as adjoint_params=(...) (an empty tuple if none)")  # fmt: skip
        adjoint_params = tuple(func.parameters())
    wrap = is_tuple or complex_
    if wrap:
        field = _FlatField(func, [p.shape for p in parts], is_tuple, complex_)
        state = field.join(y0)
        split = field.split
        if complex_:
            rtol, atol = (torch.as_tensor(v).real if torch.is_tensor(v) else v for v in (rtol, atol))
    else:
        field, state, split = func, y0, None
    sol_t, ys = _solve(field, state, t, kind, core, func, y0, split, rtol, atol, options, event_fn,
                       adjoint, adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options,
                       adjoint_params)  # fmt: skip
    out = field.split(ys) if wrap else ys
    return (sol_t, out) if event_fn is not None else out


def _solve(field, state, t, kind, core, func, y0_user, split, rtol, atol, options, event_fn, adjoint,
           adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, adjoint_params):  # fmt: skip
    """The solve on a flat-or-tensor state; returns (event time or None, states at the output times)."""
    hooks = _hooks(func, options, kind, False, split, state.shape)
    if kind == "fixed" and event_fn is not None and "step_size" not in options:
        raise ValueError("event handling with a fixed-step method needs options={'step_size': ...}")
    per_interval = int(options.get("max_num_steps", MAX_NUM_STEPS))
    t_host = [float(v) for v in t.detach().reshape(-1)]
    # a fixed grid moves with t: its solution is differentiated as it is computed, step times included
    discrete = t.requires_grad and kind == "fixed" and not adjoint and event_fn is None
    flow = t.requires_grad and not discrete  # else d y(t_i)/d t_i = f(t_i, y(t_i)), exact for the flow
    y_in = state
    if flow:  # d y(t_i)/d t_0 = -J_i f(t_0, y_0): route it through y0 (the value is unchanged)
        with torch.no_grad():
            f0 = field(time_tensor(t_host[0], state.dtype, state.device), state)
        y_in = state - f0 * (t[0] - t[0].detach()).to(state.dtype)
    t_event = None
    if event_fn is not None:
        direction = 1.0 if len(t_host) < 2 or t_host[1] > t_host[0] else -1.0
        t_star = _locate_event(field, y_in, t_host[0], direction, kind, core, hooks, options, event_fn,
                               split, t.dtype, rtol, atol, per_interval)  # fmt: skip
        save = [t_host[0], t_star]
    else:
        save = t_host
    if "max_num_steps" in options:  # torchdiffeq counts steps per output interval
        max_steps = per_interval * (len(save) - 1)
        limit = f"max_num_steps={per_interval} per output interval ({max_steps} steps in all)"
    else:
        max_steps = per_interval
        limit = f"max_num_steps={per_interval} (the default, a cap on the whole solve)"
    controller, hooks, grid = _stepping(kind, options, hooks, field, y0_user, t)
    moved = {}
    if discrete:
        shift = _NodeShift(t if grid is None else torch.cat([grid.to(t.dtype), t]), state.dtype)
        if isinstance(core, Adams):  # its own loop: the field carries the weights' derivative
            field = _AdamsMovedSteps(field, core.order, core.implicit, shift, hooks)
        else:
            moved["node_shift"] = shift
    problem = ODEProblem(field, y_in, (save[0], save[-1]))
    backward = None
    if adjoint:
        backward = _adjoint_settings(kind, core, func, field, y0_user, t, split, rtol, atol, options, hooks,
                                     adjoint_rtol, adjoint_atol, adjoint_method, adjoint_options, state,
                                     adjoint_params)  # fmt: skip
    sol = _solve_in_odeint_terms(
        limit, problem, core, rtol=rtol, atol=atol, saveat=save,
        controller=controller, dt0=options.get("first_step"), max_steps=max_steps,
        adjoint="continuous" if adjoint else "backprop", adjoint_params=adjoint_params,
        stiffness=kind != "scipy",
        hooks=hooks, backward=backward, **moved,
    )  # fmt: skip
    ys = sol.ys
    if event_fn is not None:
        from sciml.solvers.ode.events import reroute_event_gradients

        signs = _event_signs(event_fn, split, t_host[0], state, t.dtype)
        ev = _event_in_user_structure(event_fn, split)
        t_event = torch.scalar_tensor(t_star, dtype=t.dtype, device=t.device)
        t_event, y_end = reroute_event_gradients(field, ev, t_event, ys[-1], signs)
        ys = torch.stack([ys[0], y_end])
    if flow:  # d y(t_i)/d t_i = f(t_i, y(t_i))
        times = save if event_fn is None else [t_host[0]]
        with torch.no_grad():
            fs = torch.stack([field(time_tensor(s, state.dtype, state.device), y) for s, y in zip(times, ys)])
        shift = (t - t.detach())[: len(times)].to(state.dtype).view(-1, *([1] * state.ndim))
        ys = (
            torch.cat([ys[: len(times)] + fs * shift, ys[len(times) :]])
            if len(times) < len(ys)
            else ys + fs * shift
        )
    if backward is not None and ys.requires_grad:
        ys = _AdjointOptions.apply(backward["options"], ys)
    return t_event, ys


class _NodeShift:
    """``s -> δ(s)``: how a node of a fixed grid moves with ``t`` (a tensor of value 0 that carries ``t``'s
    gradient), so that the solve is differentiated with respect to its step times.

    A node that is a time of ``t`` or a point of the grid moves with it; a node between them (steps of
    ``step_size``) moves with the last one before it, where its steps started; other stops do not move.
    """

    def __init__(self, anchors: torch.Tensor, dtype: torch.dtype):
        values = anchors.detach().tolist()
        moves = anchors.to(dtype) - anchors.detach().to(dtype)
        self.direction = 1.0 if values[-1] >= values[0] else -1.0
        self.moves = dict(zip(values, moves))  # later entries (t) win over the grid's
        self.keys = sorted(self.moves, key=lambda v: v * self.direction)
        self.ordered = [k * self.direction for k in self.keys]
        self.zero = moves.new_zeros(())

    def __call__(self, s: float) -> torch.Tensor:
        move = self.moves.get(s)
        if move is not None:
            return move
        i = bisect.bisect_right(self.ordered, s * self.direction)
        close = [k for k in self.keys[max(i - 1, 0) : i + 1] if abs(k - s) <= 4 * _EPS * max(abs(k), abs(s))]
        if close:  # an end computed as t + h, an ulp off the stop it lands on
            return self.moves[close[0]]
        return self.moves[self.keys[i - 1]] if i > 0 else self.zero


class _AdamsMovedSteps:
    """The field of an Adams solve whose values carry the derivative with respect to the step times.

    The Adams update ``y1 = y + Σ_j w_j F_j`` takes its weights ``w = h·β`` from host step times. The field
    value at each step start gets a correction ``C_n`` (zero in value) such that ``Σ_j w_j (F + C)_{n-j}``
    has the derivative of ``Σ_j w_j(τ) F_{n-j}`` with the weights of the moved times ``τ``; the RK4 starting
    steps get the field rescaled to their moved ends, and the corrector's evaluations of implicit_adams a
    correction ``E`` of their own. The evaluations are told apart by their order in ``Adams.integrate``:
    after ``callback_step``, the step start, then RK4's three stages or the corrector's iterations.
    """

    def __init__(self, field, order: int, implicit: bool, shift: _NodeShift, hooks: StepHooks):
        self.field, self.order, self.implicit, self.shift = field, order, implicit, shift
        self.history: list[tuple[float, torch.Tensor, torch.Tensor | None]] = []  # (node, F, C), newest first
        self.step: tuple[float, float, float] | None = None  # (start, end, size) of the current step
        self.calls, self.rate = 0, None  # evaluations in this step; an RK4 step's (δ(b) − δ(a)) / h
        user = hooks.callback_step

        def callback(t, y, h):
            self.step, self.calls = (float(t), float(t) + float(h), float(h)), 0
            if user is not None:
                user(t, y, h)

        hooks.callback_step = callback

    def weights(self, nodes: list[float], a: float, b: float, implicit: bool):
        """``(w(τ) − w(τ).detach(), w̄)``: the weights of the step from ``a`` to ``b`` as functions of the
        moved times (zero in value) and as the method computes them (host floats, newest node first)."""
        h, da = b - a, self.shift(a)
        span = h + (self.shift(b) - da).double()
        x = torch.stack([(s - a) + (self.shift(s) - da).double() for s in nodes]) / span
        x = torch.cat([x.new_ones(1), x]) if implicit else x
        moments = 1 / torch.arange(1.0, len(x) + 1).to(x)  # ∫_0^1 x^m dx
        w = span * torch.linalg.solve(torch.stack([x**m for m in range(len(x))]), moments)
        host = h * adams_weights(np.array([1.0] * implicit + [(s - a) / h for s in nodes]))
        return (w - w.detach()).to(self.shift.zero.dtype), host

    def __call__(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.step is None:  # solve()'s check of the first evaluation
            return self.field(t, y)
        (a, b, h), call = self.step, self.calls
        self.calls += 1
        if call == 0:  # the derivative at the step start
            F = self.field(t + self.shift(a), y)
            self.history = [(a, F.detach(), None), *self.history][: self.order]
            if len(self.history) < self.order:  # an RK4 starting step: rescaled to its moved ends
                self.rate = (self.shift(b) - self.shift(a)) / h
                C = self.rate * F.detach()
            else:
                dw, w = self.weights([s for s, _, _ in self.history], a, b, False)
                C = sum(d * Fj for d, (_, Fj, _) in zip(dw, self.history))
                C = (C - sum(wj * Cj for wj, (_, _, Cj) in zip(w[1:], self.history[1:]))) / w[0]
            self.history[0] = (a, F.detach(), C)
            return F + C
        if len(self.history) < self.order:  # a stage of the RK4 step
            s = float(t)
            return (1 + self.rate) * self.field(t + self.shift(a) + (s - a) * self.rate, y)
        f1 = self.field(t + self.shift(b), y)  # implicit_adams' corrector
        dw, w = self.weights([s for s, _, _ in self.history], a, b, True)
        E = dw[0] * f1.detach() + sum(d * Fj for d, (_, Fj, _) in zip(dw[1:], self.history))
        E = E - sum(wj * Cj for wj, (_, _, Cj) in zip(w[1:], self.history))
        return f1 + E / w[0]


def _solve_in_odeint_terms(limit: str, *args, **kwargs):
    """:func:`solve`, its failure message phrased with odeint's option names (``limit``: the step limit)."""
    from sciml.solvers.solution import SolveError

    try:
        return solve(*args, **kwargs)
    except SolveError as err:
        message = (
            str(err)
            .replace(f"max_steps={kwargs['max_steps']} ", f"{limit} ")
            .replace("`max_steps`", "options['max_num_steps']")
            .replace("max_steps=", "max_num_steps=")
            .replace(
                "e.g. scipy.integrate.solve_ivp(method='Radau')",
                "e.g. method='scipy_solver', options={'solver': 'Radau'}",
            )
        )
        raise SolveError(message, err.solution) from None


def _stepping(kind, options, hooks, field, y0_user, t):
    """The controller of the forward solve, its hooks (with a fixed grid's stops) and that grid (a tensor
    that may depend on ``t``; None without one)."""
    if kind == "fixed":  # steps land on every time of t (radauIIA5 would interpolate across them)
        hooks.tstops = list(hooks.tstops) + t.detach().tolist()
        if "step_size" in options:
            return ConstantSteps(dt=_step_size(options)), hooks, None
        grid = _grid(options, field, y0_user, t)
        values = grid.detach().tolist()
        hooks.tstops += values
        spacing = max(abs(b - a) for a, b in zip(values[:-1], values[1:]))
        return ConstantSteps(dt=spacing), hooks, grid
    if kind == "scipy":
        return IController(dt_max=float(options.get("max_step", math.inf))), hooks, None
    return IController(
        safety=options.get("safety", 0.9), factor_min=options.get("dfactor", 0.2),
        factor_max=options.get("ifactor", 10.0), dt_min=options.get("dt_min", 0.0),
        dt_max=float(options.get("max_step", math.inf)),
    ), hooks, None  # fmt: skip


def _adjoint_settings(kind, core, func, field, y0_user, t, split, rtol, atol, options, hooks, adjoint_rtol,
                      adjoint_atol, adjoint_method, adjoint_options, state, adjoint_params):  # fmt: skip
    """Overrides for the backward solve (the adjoint_* arguments)."""
    back: dict[str, Any] = {}
    a_options = dict(options if adjoint_options is None and adjoint_method is None else adjoint_options or {})
    norm = a_options.pop("norm", None)
    a_options.pop("grid_constructor", None) if adjoint_options is None else None
    b_kind, b_core = (kind, core) if adjoint_method is None else _method(adjoint_method, a_options)
    if b_core is not core:
        back["rk"] = b_core if b_kind == "scipy" else b_core
    if adjoint_rtol is not None:
        back["rtol"] = float(adjoint_rtol)
    if adjoint_atol is not None:
        back["atol"] = float(adjoint_atol)
    back["seminorm"] = False  # the norm below decides what it measures
    n = state.numel()
    params = [p for p in adjoint_params if p.requires_grad]
    sizes, shapes = [p.numel() for p in params], [p.shape for p in params]
    pieces = [p.numel() for p in (y0_user if isinstance(y0_user, (tuple, list)) else (y0_user,))]
    if split is not None and getattr(split.__self__, "complex", False):
        pieces = [2 * k for k in pieces]
    norm_options = {"norm": _mixed_adjoint_norm(pieces, seminorm=norm == "seminorm")}
    if callable(norm):
        user_norm = norm

        def as_pieces(v):
            return v.view(state.shape) if split is None else tuple(torch.split(v, pieces))

        def tuple_norm(parts: tuple) -> torch.Tensor:
            t_, y, a, *gs = parts
            ys, adj = as_pieces(y), as_pieces(a)
            ys, adj = (ys if isinstance(ys, tuple) else (ys,)), (adj if isinstance(adj, tuple) else (adj,))
            if split is not None:
                full = split.__self__
                ys = tuple(p.view(s) for p, s in zip(ys, full.shapes))
                adj = tuple(p.view(s) for p, s in zip(adj, full.shapes))
            return user_norm((t_, *ys, *adj, *gs))

        norm_options["norm"] = tuple_norm
    back["options"] = norm_options

    def aug_norm(v: torch.Tensor) -> torch.Tensor:
        y, a, g = v[:n], v[n : 2 * n], v[2 * n :]
        gs = [p.view(s) for p, s in zip(torch.split(g, sizes), shapes)]
        y = y if split is not None else y.view(state.shape)
        a = a if split is not None else a.view(state.shape)
        return norm_options["norm"]((v.new_zeros(()), y, a, *gs))

    constructor = options.get("grid_constructor")
    grid_back: list = []

    def make_hooks(t_from: float, t_to: float) -> StepHooks:
        h = _hooks(func, a_options, b_kind, True, None)
        h.norm = aug_norm
        if b_kind == "fixed" and "step_size" not in a_options:
            if constructor is not None:
                if not grid_back:
                    grid_back.extend(
                        _grid({"grid_constructor": constructor}, field, y0_user, t.flip(0)).detach().tolist()
                    )
                h.tstops = [
                    v for v in grid_back if (v - t_to) * (t_from - t_to) > 0 >= (v - t_from) * (t_from - t_to)
                ]
            else:
                h.tstops = [float(v) for v in t.detach()]
        return h

    back["hooks"] = make_hooks
    if b_kind == "fixed" and "step_size" in a_options:
        back["controller"] = ConstantSteps(dt=_step_size(a_options))
    return back


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.abs().pow(2).mean().sqrt() if x.numel() else x.new_zeros(())


def _mixed_adjoint_norm(pieces: list[int], seminorm: bool) -> Callable:
    """torchdiffeq's default adjoint norm on ``(t, y, a, *params)``: the largest RMS over the time entry,
    each piece of ``y`` and of ``a`` (the tuple state's tensors) and, unless ``seminorm``, each parameter."""

    def norm(parts: tuple) -> torch.Tensor:
        t_, y, a, *gs = parts
        values = [t_.abs().reshape(())]
        values += [_rms(p) for p in torch.split(y.reshape(-1), pieces)]
        values += [_rms(p) for p in torch.split(a.reshape(-1), pieces)]
        if not seminorm:
            values += [_rms(g) for g in gs]
        return torch.stack(values).max()

    return norm


class _AdjointOptions(torch.autograd.Function):
    """Identity whose graph node carries ``adjoint_options`` (torchdiffeq exposes the backward norm as
    ``ys.grad_fn.adjoint_options["norm"]``; replacing it there changes the norm the backward solve uses)."""

    @staticmethod
    def forward(ctx, options: dict, ys: torch.Tensor) -> torch.Tensor:
        ctx.adjoint_options = options
        return ys.view_as(ys)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return None, grad


def _event_in_user_structure(event_fn, split):
    if split is None:
        return event_fn
    return lambda t, y: event_fn(t, split(y.reshape(-1)))


def _event_signs(event_fn, split, t0, state, t_dtype):
    ev = _event_in_user_structure(event_fn, split)
    with torch.no_grad():
        s = torch.sign(torch.as_tensor(ev(torch.scalar_tensor(t0, dtype=t_dtype), state)))
    return torch.where(s == 0, torch.ones_like(s), s)


def _locate_event(field, y0, t0, direction, kind, core, hooks, options, event_fn, split, t_dtype, rtol, atol,
                  max_steps):  # fmt: skip
    """Integrate (without autograd) until ``event_fn`` changes sign; the event time as a host float."""
    from sciml.solvers.ode.events import EventLocator
    from sciml.solvers.ode.solve import _timed_field, check_tolerances, run_method
    from sciml.solvers.solution import SolveError

    if kind == "scipy":
        raise ValueError("event_fn is not supported with method='scipy_solver' (as in torchdiffeq)")
    ev = _event_in_user_structure(event_fn, split)
    flat = y0.detach().reshape(-1)
    locator = EventLocator(ev, t0, flat, y0.shape, lambda s: torch.scalar_tensor(s, dtype=t_dtype),
                           float(atol) if not torch.is_tensor(atol) else float(atol.min()))  # fmt: skip
    event_hooks = StepHooks(**{**hooks.__dict__, "event": locator})
    if kind == "fixed":
        controller = ConstantSteps(dt=_step_size(options))
    else:
        controller, _, _ = _stepping(kind, options, StepHooks(), field, None, None)
    rt, at = check_tolerances(rtol, atol, y0)
    rt, at = (v.reshape(-1) if torch.is_tensor(v) else v for v in (rt, at))
    with torch.no_grad():
        raw = run_method(
            core, _timed_field(field, y0), flat, t0, direction * math.inf, [t0], save_steps=False, rtol=rt,
            atol=at, controller=controller, dt0=options.get("first_step"), max_steps=max_steps,
            stiffness=False, shape=y0.shape, hooks=event_hooks,
        )  # fmt: skip
    if locator.t_event is None:
        raise SolveError(
            f"event_fn did not change sign before the solve stopped at t={raw.t_reached:.6g} "
            f"({raw.status.value.replace('max_steps', 'max_num_steps')}); check event_fn or raise "
            "options['max_num_steps']",
            None,
        )
    return locator.t_event


def odeint_adjoint(func, y0, t, **kwargs) -> Any:
    """:func:`odeint` with the continuous adjoint (torchdiffeq's ``odeint_adjoint``): gradients from the
    backward adjoint ODE, memory independent of the number of steps."""
    return odeint(func, y0, t, adjoint=True, **kwargs)


def odeint_event(func, y0, t0, *, event_fn, reverse_time: bool = False, odeint_interface=odeint, **kwargs):
    """Solve from ``t0`` until ``event_fn(t, y)`` changes sign (torchdiffeq's ``odeint_event``).

    Args:
        func, y0: as for :func:`odeint`.
        t0: the start time (0-d or 1-element tensor; may require grad).
        event_fn: the event function.
        reverse_time: integrate towards decreasing time.
        odeint_interface: :func:`odeint` or :func:`odeint_adjoint`.

    Returns:
        ``(event_t, solution)`` with ``solution = stack([y0, y(event_t)])``; both differentiable (the event
        time through the implicit function theorem).
    """
    t0 = torch.as_tensor(t0).reshape(-1)[:1]
    t = torch.cat([t0, t0.detach() + (-1.0 if reverse_time else 1.0)])
    return odeint_interface(func, y0, t, event_fn=event_fn, **kwargs)

"""``solve(problem, method, ...)``: adaptive (or fixed-step) explicit Runge–Kutta integration that records,
for every accepted step, its size, its scaled error estimate and its stiffness index as tensors.

With ``adjoint="backprop"`` the solve is an ordinary autograd graph (discretise-then-optimise): the
solution, ``error_estimates`` and ``stiffness_estimates`` are differentiable with respect to ``y0`` and every
parameter ``f`` uses. Step-size decisions are made on host floats and are constants for autograd; this is
the convention of Pal et al. (ICML 2021), whose regularizers ``Σ E_j h_j`` and ``Σ S_j`` this enables.
With ``adjoint="continuous"`` gradients come from the backward adjoint ODE instead (memory independent of
the number of steps; the recorded estimates are then plain numbers).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.controllers import ConstantSteps, Controller, IController
from sciml.solvers.ode.hooks import SideTime, StepHooks, time_tensor
from sciml.solvers.ode.implicit import IMPLICIT_METHODS, ImplicitMethod, implicit_method
from sciml.solvers.ode.jacobian import NonFiniteJacobian
from sciml.solvers.ode.newton import FIXED_GRID_MAXITER
from sciml.solvers.ode.rk import GradientAppeared, RungeKutta, _error_norm, initial_step_size
from sciml.solvers.ode.tableau import TABLEAUS, Tableau
from sciml.solvers.solution import Solution, SolveError, SolverStats, Status

__all__ = ["solve", "get_method", "METHOD_ALIASES", "snap_to_span"]

#: torchdiffeq's names for the same methods
METHOD_ALIASES = {"dopri5": "dp5", "bosh3": "bs3"}
_METHODS: dict[str, RungeKutta] = {}


def get_method(method: str | Tableau | RungeKutta) -> RungeKutta:
    """The :class:`RungeKutta` stepper for a method name (``"tsit5"``, ``"dp5"``/``"dopri5"``,
    ``"bs3"``/``"bosh3"``, ``"rk4"``, ``"midpoint"``, ``"euler"``) or tableau.

    Raises:
        ValueError: unknown method name.
    """
    if isinstance(method, RungeKutta) or hasattr(method, "integrate"):
        return method
    if isinstance(method, Tableau):
        return RungeKutta(method)
    if isinstance(method, ImplicitMethod):
        return method
    name = METHOD_ALIASES.get(method, method)
    implicit = implicit_method(name) if isinstance(name, str) else None
    if implicit is not None:
        return implicit
    if name not in TABLEAUS:
        valid = sorted(TABLEAUS) + sorted(METHOD_ALIASES) + sorted(IMPLICIT_METHODS)
        raise ValueError(f"unknown method {method!r}; choose one of {valid}")
    if name not in _METHODS:
        _METHODS[name] = RungeKutta(TABLEAUS[name])
    return _METHODS[name]


def run_method(rk, f, y0, t0, t1, save_ts, **kwargs) -> _Raw:
    """Integrate with a Runge–Kutta method (:func:`_integrate`) or any method object with an ``integrate``
    method of the same signature (e.g. ``ScipyMethod``)."""
    if hasattr(rk, "integrate"):
        return rk.integrate(f, y0, t0, t1, save_ts, **kwargs)
    return _integrate(rk, f, y0, t0, t1, save_ts, **kwargs)


# ---------------------------------------------------------------------------------------------- core loop
@dataclass
class _Raw:
    """Lists filled by :func:`_integrate` (flat states; per-step norms turned into E_j, S_j at assembly)."""

    save_ts: list[float] = field(default_factory=list)
    save_ys: list[torch.Tensor] = field(default_factory=list)
    step_ts: list[float] = field(default_factory=list)
    step_sizes: list[float] = field(default_factory=list)
    error_norms: list[torch.Tensor] = field(default_factory=list)
    stiffness_norms: list[torch.Tensor] = field(default_factory=list)
    error_size: int = 1
    stats: SolverStats = field(default_factory=SolverStats)
    status: Status = Status.SUCCESS
    t_reached: float = 0.0
    nonfinite: bool = False
    fixed_steps: bool = False
    newton_failed: bool = False  # a fixed-step solve ended at a step whose Newton iteration failed
    failure: str = ""  # the cause when a step cannot be taken at all (a non-finite Jacobian)


def _integrate(
    rk: RungeKutta,
    f: Callable[[float, torch.Tensor], torch.Tensor],
    y0: torch.Tensor,
    t0: float,
    t1: float,
    save_ts: Sequence[float],
    *,
    save_steps: bool,
    rtol: float | torch.Tensor,
    atol: float | torch.Tensor,
    controller: Controller,
    dt0: float | None,
    max_steps: int,
    stiffness: bool,
    k1: torch.Tensor | None = None,
    error_size: int | None = None,
    stats: SolverStats | None = None,
    shape: torch.Size | None = None,
    hooks: StepHooks | None = None,
    dense_error: bool | str = "auto",
    node_shift: Callable[[float], torch.Tensor] | None = None,
) -> _Raw:
    """Integrate the flat system ``y' = f(t, y)`` (``t`` a host float) from ``t0`` to ``t1``.

    ``f`` returns tensors of ``shape`` (default flat) holding the derivative's entries in flat order.
    ``error_size`` restricts the error norm to the first entries of the state (a seminorm, used by the
    continuous adjoint to leave the parameter-gradient integrals out of step-size control); tensor
    tolerances then refer to those entries. ``hooks`` adds torchdiffeq's per-step options (callbacks, norm,
    ``step_t``/``jump_t``, ``perturb``, ``min_step``, an event function). ``dense_error``: test the
    implicit methods' dense output too (see :func:`solve`; ``"auto"``: where the solution is interpolated,
    i.e. save times strictly inside ``(t0, t1)`` or an event function, and ``rk.dense_error_auto``).
    ``node_shift`` (fixed steps): ``s -> δ(s)``, how the step node at ``s`` moves (a tensor of value 0 that
    carries a gradient); each step is taken between its moved ends, the field rescaled to it (a Runge–Kutta
    step is invariant under an affine change of time), so the values are unchanged and the solution is
    differentiable with respect to its step times (odeint's gradient with respect to ``t``).
    """
    tab = rk.tableau
    out = _Raw(stats=stats if stats is not None else SolverStats())
    st = out.stats
    direction = 1.0 if t1 > t0 else -1.0
    hk = hooks or _NO_HOOKS
    stops = sorted({*hk.tstops, *hk.jumps}, key=lambda v: v * direction)
    stops = [v for v in stops if (v - t0) * direction > 0]
    jumps = set(hk.jumps)
    ends = [t0, t0]  # the current step's start and end (to place perturbed evaluations)

    def field_(t: float, y: torch.Tensor, shift: Callable | None = None) -> torch.Tensor:
        st.nfe += 1
        if hk.perturb or jumps:
            t = _perturbed(t, ends, direction, hk.perturb, jumps)
        if node_shift is not None and not torch.is_tensor(t):  # the moved time (see the docstring)
            t = time_tensor(t, y.dtype, y.device) + (shift or node_shift)(t)
        return f(t, y)

    # a field that takes a time tensor (∂f/∂t by forward-mode AD in the Rosenbrock methods)
    field_.tensor_time = getattr(f, "tensor_time", False) and not (hk.perturb or jumps)
    field_.autonomous = getattr(f, "autonomous", False)  # known not to read t (the adjoint's backward field)

    shape = shape if shape is not None else y0.shape
    if k1 is None:
        k1 = field_(t0, y0.view(shape)).reshape(-1)
    adaptive = controller.adaptive and tab.adaptive
    sl = slice(None) if error_size is None else slice(0, error_size)
    part = (lambda v: v) if error_size is None else (lambda v: v[:error_size])
    out.error_size = part(y0).numel()
    sqrt_n = math.sqrt(out.error_size)
    if isinstance(controller, ConstantSteps):
        h = direction * controller.dt
    elif dt0 is not None:
        h = direction * abs(dt0)
    else:
        order = tab.error_order or tab.order
        h = initial_step_size(
            field_, t0, y0, k1, direction, order, rtol, atol, shape=shape, part=sl, span=abs(t1 - t0)
        )
    h = math.copysign(min(abs(h), controller.dt_max), direction)
    k_exp = (tab.error_order or tab.order) + 1
    ctrl_state = controller.new_state()
    if isinstance(rk, ImplicitMethod):
        rk.begin(rtol, atol)
    dense = tab.dense is not None
    # Without autograd two stage buffers alternate (the accepted one holds the FSAL stage); with autograd
    # the stages are stacked afresh every step.
    reuse = not (torch.is_grad_enabled() and (y0.requires_grad or k1.requires_grad)) and node_shift is None
    spare = [rk.workspace(y0, shape), rk.workspace(y0, shape)] if reuse else None
    abs_y = part(y0).abs()

    save_ts = list(save_ts)
    check_dense = adaptive and _dense_check(dense_error, rk, save_ts, t0, t1, hk)
    i_save = 0
    while i_save < len(save_ts) and save_ts[i_save] == t0:
        i_save += 1
    if i_save or save_steps:
        out.save_ts.append(t0)
        out.save_ys.append(y0)

    t, y = t0, y0
    # The smallest step is relative to |t| (the resolution of the time, as scipy's 10·ulp(t)), not to the
    # span: Robertson over [0, 1e11] takes steps ~1e-5 near t = 0. `tiny` (the smallest normal float64)
    # keeps a floor at t = 0; 16·eps·|t| keeps t + h ≠ t everywhere else.
    eps = float(np.finfo(np.float64).eps)
    tiny = float(np.finfo(np.float64).tiny)
    i_stop = 0
    while (t1 - t) * direction > 0:
        if st.n_steps >= max_steps:
            out.status = Status.MAX_STEPS
            break
        stop = t1 if dense or i_save >= len(save_ts) else save_ts[i_save]
        if i_stop < len(stops) and (stops[i_stop] - stop) * direction < 0:
            stop = stops[i_stop]
        if hk.min_step and abs(h) < hk.min_step:
            h = math.copysign(hk.min_step, direction)
        h_try, hits_stop = h, False
        if (t + h - stop) * direction >= -1e-12 * abs(h):
            h_try, hits_stop = stop - t, True
        ends[0], ends[1] = t, t + h_try
        if hooks is not None:
            hooks.call("callback_step", t, y.view(shape), h_try)
        step_field, step_k1 = field_, k1
        if node_shift is not None:
            end = stop if hits_stop else t + h_try
            step_field, step_k1 = _moved_step(field_, node_shift, t, end, h_try, k1)
        try:
            try:
                res = rk.step(
                    step_field,
                    t,
                    y,
                    h_try,
                    step_k1,
                    shape=shape,
                    stiffness=stiffness,
                    workspace=spare[0] if reuse else None,
                )
            except GradientAppeared:  # the field gained autograd history after t0: stack stages from now on
                reuse, spare = False, None
                y, k1 = y.clone(), k1.clone()  # they may live in the reused buffers
                res = rk.step(field_, t, y, h_try, k1, shape=shape, stiffness=stiffness)
        except NonFiniteJacobian as err:  # taken at the step's start: no smaller step repairs it
            out.status, out.failure = Status.NON_FINITE, str(err)
            break
        st.n_steps += 1
        if not adaptive and getattr(rk, "newton_failed", False):  # fixed steps cannot shrink: stop here
            out.status, out.newton_failed = Status.NON_FINITE, True
            break
        norm = abs_y1 = None
        if res.y_error is not None:
            norm, abs_y1 = _step_norm(part(res.y_error), abs_y, part(res.y1), rtol, atol, hk.norm, sqrt_n)
        e = norm.item() / sqrt_n if adaptive else 0.0
        if check_dense and e <= 1.0:  # a step that passes its own test: is its interpolant within tolerance?
            e = _dense_error_ratio(
                rk, field_, t, y, h_try, res, shape, part, abs_y, rtol, atol, hk.norm, sqrt_n, e
            )
        accept, h_next = controller.decide(e, h_try, k_exp, ctrl_state)
        if hk.min_step and abs(h_try) <= hk.min_step * (1 + 1e-12):
            accept = True
        out.nonfinite = not math.isfinite(e)
        if hooks is not None:
            hooks.call("callback_accept" if accept else "callback_reject", t, y.view(shape), h_try)
        if accept:
            st.n_accepted += 1
            t_new = stop if hits_stop else t + h_try
            out.step_ts.append(t)
            out.step_sizes.append(h_try)
            if norm is not None:
                out.error_norms.append(norm)
            if res.stiffness_norms is not None:
                out.stiffness_norms.append(res.stiffness_norms)
            inside = []  # save times strictly inside the step, interpolated with the dense output
            while i_save < len(save_ts) and (save_ts[i_save] - t_new) * direction < 0:
                inside.append(save_ts[i_save])
                i_save += 1
            if inside:
                thetas = np.array([(s - t) / h_try for s in inside])
                out.save_ts.extend(inside)
                out.save_ys.extend(rk.interpolate(y, res.stages, h_try, thetas))
            at_end = i_save < len(save_ts) and save_ts[i_save] == t_new
            i_save += at_end
            if at_end or save_steps:
                out.save_ts.append(t_new)
                out.save_ys.append(res.y1.clone() if reuse else res.y1)  # reused buffers hold y1
            if hk.event is not None and hk.event.crossed(rk, field_, t, y, t_new, res, shape):
                out.t_reached = t
                return out
            t, y = t_new, res.y1
            abs_y = abs_y1 if abs_y1 is not None else part(y).abs()
            landed = hits_stop and i_stop < len(stops) and t == stops[i_stop]
            i_stop += landed
            ends[0] = ends[1] = t
            if tab.fsal and node_shift is None and not (hk.perturb or (landed and t in jumps)):
                k1 = res.stages[-1]
            else:
                k1 = field_(t, y.view(shape)).reshape(-1)
            if reuse:
                spare.reverse()
            if not hits_stop or abs(h_next) > abs(h):
                h = h_next
        else:
            st.n_rejected += 1
            h = h_next
        if adaptive and abs(h) < max(controller.dt_min, 16 * eps * abs(t), tiny):
            out.status = Status.NON_FINITE if out.nonfinite else Status.STEP_SIZE_UNDERFLOW
            break
    out.t_reached = t
    if out.status is Status.SUCCESS and not bool(torch.isfinite(y).all()):
        out.status = Status.NON_FINITE  # fixed steps never reject: check where they arrived
    out.fixed_steps = not adaptive
    return out


_NO_HOOKS = StepHooks()


def _moved_step(field_: Callable, node_shift: Callable, a: float, b: float, h: float, k1: torch.Tensor):
    """The field and first stage of the step from ``a`` to ``b`` taken between its moved ends
    ``a + δ(a)``, ``b + δ(b)``: time ``s`` maps to ``s + δ(a) + (s − a)·r`` and the field is scaled by
    ``1 + r``, ``r = (δ(b) − δ(a)) / h`` (``k1`` was evaluated at ``a + δ(a)``)."""
    da = node_shift(a)
    rate = (node_shift(b) - da) / h
    scale = 1 + rate

    def moved(s: float, y: torch.Tensor) -> torch.Tensor:
        return scale * field_(s, y, shift=lambda u: da + (u - a) * rate)

    return moved, scale * k1


def _step_norm(err, abs_y, y1, rtol, atol, user_norm, sqrt_n) -> tuple[torch.Tensor, torch.Tensor]:
    """``(‖ẽ / (atol + rtol·max(|y0|, |y1|))‖₂, |y1|)``, or with the user's norm (``hooks.norm``, an RMS-like
    size) that norm times ``√n``: the step's error ratio is the first over ``√n``."""
    if user_norm is None:
        return _error_norm(err, abs_y, y1, rtol, atol)
    abs_y1 = y1.abs()
    return user_norm(err / (torch.maximum(abs_y, abs_y1) * rtol + atol)) * sqrt_n, abs_y1


def _dense_error_ratio(rk, f, t, y, h, res, shape, part, abs_y, rtol, atol, norm, sqrt_n, e: float) -> float:
    """``max(e, E_θ)`` over the method's ``dense_error_thetas``: ``E_θ`` the interpolation error estimate at
    ``t + θh`` (:meth:`ImplicitMethod.dense_error`) in the loop's error norm, scaled as the step's error is
    (one host sync for all of them)."""
    sizes = []
    with torch.no_grad():
        y1, abs_y = part(res.y1).detach(), abs_y.detach()
        for theta in rk.dense_error_thetas:
            err = rk.dense_error(f, t, y, h, res, shape, theta)
            if err is None:  # method="auto" in its Tsit5 phase
                return e
            sizes.append(_step_norm(part(err), abs_y, y1, rtol, atol, norm, sqrt_n)[0].reshape(()) / sqrt_n)
        return max(e, float(torch.stack(sizes).max())) if sizes else e


def _dense_check(
    dense_error: bool | str, rk: Any, save_ts: list, t0: float, t1: float, hk: StepHooks
) -> bool:
    """Whether the loop tests an implicit method's dense output (see ``dense_error`` of :func:`solve`)."""
    if dense_error is False or not isinstance(rk, ImplicitMethod):
        return False
    if dense_error is True:
        return True
    if not rk.dense_error_auto:
        return False
    direction = 1.0 if t1 > t0 else -1.0
    inside = any((s - t0) * direction > 0 and (t1 - s) * direction > 0 for s in save_ts)
    return inside or hk.event is not None


def _perturbed(t: float, ends: list, direction: float, perturb: bool, jumps: set) -> float:
    """``t`` marked to be evaluated just inside the current step when it is the step's start or end (every
    step with ``perturb``; only at a jump otherwise)."""
    start, end = ends
    if t == start and (perturb or start in jumps):
        return SideTime(t, direction)
    if abs(t - end) <= 1e-13 * max(1.0, abs(end)) and (perturb or end in jumps) and end != start:
        return SideTime(end, -direction)
    return t


# ---------------------------------------------------------------------------------------------- validation
def check_tolerance(name: str, value: Any, y0: torch.Tensor, positive: bool = False) -> float | torch.Tensor:
    """``rtol``/``atol`` as a non-negative float, or a tensor broadcast to ``y0``'s shape; a clear ValueError
    otherwise. Zero is allowed unless ``positive`` (the SDE solver); :func:`check_tolerances` refuses
    ``rtol`` and ``atol`` both zero."""
    zero_ok = "" if positive else " (or 0 where the other tolerance is positive)"
    if torch.is_tensor(value) or isinstance(value, (list, tuple, np.ndarray)):
        tol = torch.as_tensor(value, dtype=y0.dtype, device=y0.device)
        if positive and not bool((tol > 0).all()):
            raise ValueError(f"`{name}` must be positive and finite everywhere")
        try:
            tol = torch.broadcast_to(tol, y0.shape)
        except RuntimeError:
            raise ValueError(
                f"`{name}` of shape {tuple(tol.shape)} does not broadcast to y0's shape {tuple(y0.shape)}"
            ) from None
        if not bool((tol >= 0).all()) or not bool(torch.isfinite(tol).all()):
            raise ValueError(f"`{name}` must be positive{zero_ok} and finite everywhere")
        return tol
    try:
        tol = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"`{name}` must be a positive number or tensor, got {value!r}") from None
    if not ((tol > 0 if positive else tol >= 0) and math.isfinite(tol)):
        other = "atol" if name == "rtol" else "rtol"
        zero_ok = "" if positive else f" (or 0 with a positive {other})"
        raise ValueError(f"`{name}` must be positive{zero_ok} and finite, got {value}; e.g. {name}=1e-6")
    return tol


def check_tolerances(
    rtol: Any, atol: Any, y0: torch.Tensor
) -> tuple[float | torch.Tensor, float | torch.Tensor]:
    """``(rtol, atol)`` checked by :func:`check_tolerance` and together (used by ``solve`` and ``odeint``;
    the SDE solver needs both positive, ``check_tolerance(..., positive=True)``): either may be 0
    (``rtol = 0``: pure absolute control; ``atol = 0``: pure relative control, as torchdiffeq and scipy
    accept), not both in the same entry. A zero ``atol`` is replaced by the smallest
    normal number of ``y0``'s dtype, which changes no sum ``atol + rtol·|y|`` with ``|y| ≠ 0`` but keeps the
    scale of an entry that is exactly 0 from being 0 (``0/0`` in the error norm); such an entry then needs an
    exactly zero error, as pure relative control implies.

    Raises:
        ValueError: a tolerance negative, non-finite or of the wrong shape, or both 0 in some entry.
    """
    rtol = check_tolerance("rtol", rtol, y0)
    atol = check_tolerance("atol", atol, y0)
    both_zero = (torch.as_tensor(rtol) == 0) & (torch.as_tensor(atol) == 0)
    if bool(both_zero.any()):
        raise ValueError(
            "`rtol` and `atol` are both 0"
            + (" in some entries" if both_zero.ndim else "")
            + ": the error test atol + rtol·|y| would be 0; make at least one of them positive, e.g. "
            "rtol=1e-6 or atol=1e-9"
        )
    tiny = torch.finfo(y0.dtype).tiny
    if torch.is_tensor(atol):
        if bool((atol == 0).any()):
            atol = torch.where(atol == 0, torch.full_like(atol, tiny), atol)
    elif atol == 0:
        atol = tiny
    return rtol, atol


def snap_to_span(values: list[float], t0: float, t1: float, dtype: torch.dtype | None = None) -> list[float]:
    """``values`` with every time within a few ulps of ``t0`` or ``t1`` replaced by that end: within
    ``4·eps·max(|v|, |end|)``, ``eps`` of ``dtype`` (float64 for host numbers). A float32 ``saveat`` cannot
    hold ``t1 = 0.3`` exactly and lands on it; a genuine time of a short span (2.5e-7 in ``(0, 1e-6)``)
    stays."""
    eps = torch.finfo(dtype if dtype is not None and dtype.is_floating_point else torch.float64).eps
    return [next((e for e in (t0, t1) if abs(v - e) <= 4 * eps * max(abs(v), abs(e))), v) for v in values]


def check_saveat(saveat: Any, t0: float, t1: float, y0: torch.Tensor) -> list[float]:
    """``saveat`` as host floats, strictly monotone in the direction of ``(t0, t1)`` and within it, with
    times a few ulps from ``t0``/``t1`` snapped to them (:func:`snap_to_span`; shared with the SDE solver and
    ``NeuralODE``); a clear ValueError otherwise."""
    if torch.is_tensor(saveat):
        if saveat.device != y0.device:
            raise ValueError(f"`saveat` is on {saveat.device} but y0 is on {y0.device}; move it with .to()")
        if not saveat.is_floating_point():
            raise ValueError(f"`saveat` must be a floating-point tensor, got {saveat.dtype}")
        if saveat.ndim != 1:
            raise ValueError(f"`saveat` must be one-dimensional, got shape {tuple(saveat.shape)}")
        values = saveat.detach().cpu().double().tolist()
    else:
        values = [float(v) for v in np.atleast_1d(np.asarray(saveat, dtype=np.float64))]
    if not values:
        raise ValueError("`saveat` is empty")
    if not all(math.isfinite(v) for v in values):
        raise ValueError("`saveat` must be finite")
    values = snap_to_span(values, t0, t1, saveat.dtype if torch.is_tensor(saveat) else None)
    direction = 1.0 if t1 > t0 else -1.0
    if any((b - a) * direction <= 0 for a, b in zip(values[:-1], values[1:])):
        word = "increasing" if direction > 0 else "decreasing"
        raise ValueError(f"`saveat` must be strictly {word} (the direction of t_span {(t0, t1)})")
    if (values[0] - t0) * direction < 0 or (values[-1] - t1) * direction > 0:
        raise ValueError(f"`saveat` must lie within t_span {(t0, t1)}, got [{values[0]}, {values[-1]}]")
    return values


def _timed_field(rhs: Callable, y0: torch.Tensor) -> Callable[[float, torch.Tensor], torch.Tensor]:
    """``rhs`` called with host times turned into 0-d tensors of y0's dtype (as torchdiffeq passes them); a
    time tensor is passed through (marked by ``f.tensor_time``)."""
    dtype, device = y0.dtype, y0.device

    def f(t: float, y: torch.Tensor) -> torch.Tensor:
        if type(t) is SideTime:
            return rhs(time_tensor(t, dtype, device), y)
        if torch.is_tensor(t):  # already a time tensor (a dual one: ∂f/∂t by forward-mode AD)
            return rhs(t, y)
        return rhs(torch.scalar_tensor(t, dtype=dtype, device=device), y)

    f.tensor_time = True
    return f


def _check_hooks(hooks: Any) -> None:
    """``hooks`` is None or a :class:`StepHooks` whose ``event`` (internal) is an event locator."""
    if hooks is None:
        return
    if not isinstance(hooks, StepHooks):
        raise TypeError(f"`hooks` must be a StepHooks, got {type(hooks).__name__}")
    if hooks.event is not None and not hasattr(hooks.event, "crossed"):
        raise TypeError(
            "`hooks.event` is internal to odeint's event handling (an EventLocator), not an event(t, y) "
            "function: solve() does not locate events. Use sciml.solvers.ode.odeint_event(f, y0, t0, "
            "event_fn=..., method=...) or odeint(f, y0, t, event_fn=...) with an adaptive method (e.g. "
            "'dopri5') or a fixed-step one with options={'step_size': ...} (e.g. 'radauIIA5' for stiff "
            "problems)"
        )


def _check_first_evaluation(problem: ODEProblem, k1: Any) -> None:
    y0 = problem.y0
    if not torch.is_tensor(k1):
        raise TypeError(f"`f` must return a tensor, got {type(k1).__name__}")
    if k1.shape != y0.shape:
        raise ValueError(
            f"`f` returned shape {tuple(k1.shape)} for y0 of shape {tuple(y0.shape)}; they must match"
        )
    if k1.dtype != y0.dtype or k1.device != y0.device:
        raise ValueError(
            f"`f` returned {k1.dtype} on {k1.device} for y0 of {y0.dtype} on {y0.device}; they must match"
        )
    if not bool(torch.isfinite(k1).all()):
        raise ValueError(f"`f(t0, y0)` is not finite (t0 = {problem.t_span[0]}); check the vector field")


def _within_resolution(rtol: Any, atol: Any, y0: torch.Tensor, factor: float) -> tuple[float, float] | None:
    """``(eps, max|y0|)`` when some entry's tolerance at the state's scale, ``atol + rtol·max|y0|``, is below
    ``factor · eps · max|y0|`` (``eps`` of ``y0``'s dtype), else None (also for a non-float, empty or zero
    state, which has no scale to compare with)."""
    if not y0.is_floating_point() or y0.numel() == 0:
        return None
    eps = torch.finfo(y0.dtype).eps
    size = float(y0.detach().abs().max())
    if not size > 0:
        return None
    tol = torch.as_tensor(atol, dtype=torch.float64) + torch.as_tensor(rtol, dtype=torch.float64) * size
    return (eps, size) if bool((tol < factor * eps * size).any()) else None


def _resolution_note(rtol: Any, atol: Any, y0: torch.Tensor) -> str:
    """A sentence when the tolerances ask for less than the state's dtype resolves, else "".

    Per entry, the tolerance at the state's scale ``atol + rtol·max|y0|`` is compared with a quarter of the
    dtype's resolution there, ``eps·max|y0|``: float32 with rtol = 1e-12 (or 1e-8) is flagged, torchdiffeq's
    defaults rtol = 1e-7, atol = 1e-9 (which float32 solves take in their stride) and float64 at any usual
    tolerance are not. A state that is exactly zero has no scale to compare with: nothing is said."""
    scale = _within_resolution(rtol, atol, y0, 0.25)
    if scale is None:
        return ""
    eps, size = scale
    fix = "use float64 (y0.double()) or loosen them" if y0.dtype != torch.float64 else "loosen them"
    return (
        f"rtol/atol (rtol={_tol_repr(rtol)}, atol={_tol_repr(atol)}) ask for less than {y0.dtype} resolves "
        f"(eps = {eps:.3g} relative, {eps * size:.3g} at the state's size {size:.3g}): the error estimates "
        f"are round-off there, so steps shrink until max_steps or underflow; {fix}"
    )


def _implicit_precision_note(rtol: Any, atol: Any, y0: torch.Tensor) -> str:
    """A sentence when an implicit method is asked for tolerances within 100× of ``y0``'s resolution (float32
    below about 1.2e-5), else "".

    The linear solves with ``I − hγJ`` lose further digits in low precision, while the error estimate still
    passes: Rodas5P on the Oregonator over [0, 360] at rtol 1e-6 ends 120× farther from the solution in
    float32 than in float64 (1e-5: 20×), with status SUCCESS. float64 states are never flagged."""
    scale = _within_resolution(rtol, atol, y0, 100.0) if y0.dtype != torch.float64 else None
    if scale is None:
        return ""
    eps = scale[0]
    return (
        f"rtol/atol (rtol={_tol_repr(rtol)}, atol={_tol_repr(atol)}) are within 100× of {y0.dtype}'s "
        f"resolution (eps = {eps:.3g}): implicit methods lose further digits in their linear solves, so the "
        f"solve can succeed far outside these tolerances; use float64 (y0.double()), or loosen them to "
        f"atol + rtol·|y| ≥ {100 * eps:.2g}·|y|"
    )


def _tol_repr(v: Any) -> str:
    if not torch.is_tensor(v):
        return f"{v:.3g}"
    lo, hi = float(v.min()), float(v.max())
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}…{hi:.3g}"


def _failure_message(
    raw: _Raw, rk: RungeKutta, t1: float, max_steps: int, rtol: Any, resolution: str = ""
) -> str:
    t = raw.t_reached
    recent = raw.stiffness_norms[-50:]
    stiff_note = ""
    if len(recent) >= 10:
        median = float(rk.stiffness_index(torch.stack([s.detach() for s in recent])).median())
        if median >= 0.5 and not isinstance(rk, ImplicitMethod):
            stiff_note = (
                f" The problem appears stiff (median stiffness index {median:.2f} over the last "
                f"{len(recent)} steps: explicit methods are limited by stability there); use "
                "method='auto' (switches to the implicit rodas5p where stiff) or method='rodas5p'."
            )
    from sciml.solvers.ode.auto import AutoSwitch

    if len(recent) >= 10 and isinstance(rk, AutoSwitch) and rk.current is rk.explicit:
        median = float(rk.stiffness_index(torch.stack([s.detach() for s in recent])).median())
        if median >= 0.5:
            n = rk.settings["maxstiffstep"]
            stiff_note = (
                f" The problem may be stiff: method='auto' stayed with tsit5 (median stiffness index "
                f"{median:.2f} over the last {len(recent)} steps; it switches to rodas5p once {n} of the "
                f"last {2 * n - 1} steps are stiff, index above {rk._stiff_threshold:.3g} and a slowly "
                "moving solution); use an implicit method, e.g. method='rodas5p'."
            )
    if raw.status is Status.MAX_STEPS:
        if resolution:
            return f"reached max_steps={max_steps} at t={t:.6g} before t1={t1:.6g}: {resolution}."
        advice = "Otherwise raise" if stiff_note else "Raise"
        return (
            f"reached max_steps={max_steps} at t={t:.6g} before t1={t1:.6g}.{stiff_note} "
            f"{advice} `max_steps` or loosen rtol/atol."
        )
    if raw.failure:
        return raw.failure
    if raw.status is Status.NON_FINITE and raw.newton_failed:
        from sciml.solvers.ode.radau import Radau

        radau = "" if isinstance(rk, Radau) else ", method='radau5' (odeint's 'radauIIA5') on the same grid"
        return (
            f"the Newton iteration of the implicit stages did not converge at t={t:.6g} (it diverged, or "
            f"reached {FIXED_GRID_MAXITER} iterations): with fixed steps the step cannot be shrunk and "
            "retried, so the solve stops there; use a smaller `dt`, adaptive steps (leave `dt` out; "
            f"`saveat` still returns your time grid){radau}, or a Rosenbrock method (method='rodas5p': no "
            "Newton iteration)"
        )
    if raw.status is Status.NON_FINITE and raw.fixed_steps:
        return (
            f"the solution is non-finite (NaN/inf) at t={t:.6g}: with fixed steps nothing is rejected, so "
            "check the vector field, use a smaller `dt`, or an adaptive method"
        )
    if raw.status is Status.NON_FINITE:
        return (
            f"the solution became non-finite (NaN/inf) near t={t:.6g}: f returned non-finite values and "
            "shrinking the step did not help; check the vector field, or the problem may blow up in "
            "finite time"
        )
    cause = (
        "the solution may be singular there (a blow-up, or f discontinuous or noisy at this tolerance)"
        if isinstance(rk, ImplicitMethod) or stiff_note
        else "the problem may be stiff or singular there"
    )
    if resolution:
        return f"step size underflow at t={t:.6g}: {resolution}."
    return (
        f"step size underflow at t={t:.6g}: the step fell below max(dt_min, 16·eps·|t|), the resolution "
        f"of t; {cause}.{stiff_note} Alternatively loosen rtol (now {rtol}) / atol or lower `dt_min`."
    )


def _assemble(
    raw: _Raw, rk: RungeKutta, shape: torch.Size, y0: torch.Tensor, differentiable: bool, message: str
) -> Solution:
    empty = y0.new_zeros((0,))
    errors = torch.stack(raw.error_norms) / math.sqrt(raw.error_size) if raw.error_norms else empty
    stiff = rk.stiffness_index(torch.stack(raw.stiffness_norms)) if raw.stiffness_norms else empty
    ys = torch.stack(raw.save_ys).view(len(raw.save_ys), *shape) if raw.save_ys else y0.new_zeros((0, *shape))
    return Solution(
        ts=torch.tensor(raw.save_ts, dtype=torch.float64, device=y0.device),
        ys=ys,
        status=raw.status,
        message=message,
        stats=raw.stats,
        step_ts=torch.tensor(raw.step_ts, dtype=torch.float64, device=y0.device),
        step_sizes=torch.tensor(raw.step_sizes, dtype=torch.float64, device=y0.device),
        error_estimates=errors,
        stiffness_estimates=stiff,
        differentiable_estimates=differentiable,
    )


def _empty_state_raw(
    y0: torch.Tensor, k1: torch.Tensor, t0: float, t1: float, save_ts: list, save_steps: bool
):
    """The exact solution of a state with no entries: ``y0`` at every save time, one evaluation of ``f``
    (``+ 0·f(t0, y0)`` keeps the tensors ``f`` uses in the graph: their gradients are zeros, as after a
    real solve, not missing)."""
    direction = 1.0 if t1 > t0 else -1.0
    times = sorted({*save_ts, t0, t1} if save_steps else set(save_ts), key=lambda v: v * direction)
    y = (y0 + 0 * k1).reshape(-1)
    return _Raw(save_ts=times, save_ys=[y] * len(times), stats=SolverStats(nfe=1), t_reached=t1)


# ---------------------------------------------------------------------------------------------- entry point
def solve(
    problem: ODEProblem,
    method: str | Tableau = "tsit5",
    *,
    rtol: float | torch.Tensor = 1e-6,
    atol: float | torch.Tensor = 1e-9,
    saveat: torch.Tensor | Sequence[float] | None = None,
    save_steps: bool = False,
    adjoint: str = "backprop",
    adjoint_params: Sequence[torch.Tensor] | None = None,
    controller: Controller | None = None,
    dt: float | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    stiffness: bool = True,
    throw: bool = True,
    jac: Any = None,
    dense_error: bool | str = "auto",
    hooks: StepHooks | None = None,
    backward: dict[str, Any] | None = None,
    node_shift: Callable[[float], torch.Tensor] | None = None,
) -> Solution:
    """Solve an :class:`~sciml.problems.ode.ODEProblem` with an explicit Runge–Kutta method.

    Args:
        problem: what to solve (a ``y0`` with no entries is returned unchanged at every save time; real
            states only: :func:`~sciml.solvers.ode.odeint` integrates complex ones).
        method: ``"tsit5"`` (default), ``"dp5"`` (alias ``"dopri5"``), ``"bs3"`` (``"bosh3"``) — adaptive with
            dense output — or the fixed-step ``"rk4"``, ``"midpoint"``, ``"euler"`` (need ``dt``); for stiff
            problems the implicit ``"rodas5p"``, ``"rodas4"``, ``"rosenbrock23"``, ``"radau5"`` (Radau IIA),
            ``"kvaerno5"``, ``"kvaerno3"`` (ESDIRK), or ``"auto"`` (Tsit5 switching to Rodas5P
            where the stiffness index says so).

    Other args:
        rtol, atol: tolerances (non-negative numbers, or tensors broadcastable to ``y0``): the error test is
            ``|err| ≤ atol + rtol·max(|y0|, |y1|)`` per entry. Either may be 0 (pure absolute or pure relative
            control), not both in the same entry.
        saveat: times at which to return the solution (within ``t_span``, in its direction); default
            ``t_span`` itself (or nothing beyond the steps with ``save_steps``). Adaptive methods interpolate
            with their dense output; fixed-step methods shorten steps to land on them.
        save_steps: also save the solution at ``t0`` and after every accepted step (merged with ``saveat``
            in time order; ``ts`` tells which is which).
        adjoint: ``"backprop"`` (differentiate through the solver's operations; the per-step estimates are
            differentiable) or ``"continuous"`` (solve the adjoint ODE backwards; memory independent of the
            number of steps; the estimates are returned without autograd history).
        adjoint_params: for ``"continuous"``: the tensors ``f`` depends on that need gradients. Default: the
            parameters of ``problem.f`` if it is an ``nn.Module``, plus ``problem.params`` if it is a tensor.
        controller: an :class:`~sciml.solvers.ode.controllers.IController` (default) or ``PIDController``, or
            ``ConstantSteps(dt)``.
        dt: fixed step size (shorthand for ``controller=ConstantSteps(dt)``; required by fixed-step methods).
        dt0: initial step of an adaptive solve (default: Hairer's estimate, one extra evaluation).
        max_steps: limit on steps tried.
        stiffness: compute the stiffness estimate of every step (a few cheap vector operations).
        throw: raise :class:`SolveError` when the solve fails; with False return the partial solution with
            its ``status`` and ``message``.
        jac: Jacobian for implicit methods: None (dense reverse-mode AD of the whole state; a field that
            detaches its input — numpy inside, ``y.detach()``, ``torch.no_grad()`` — is detected and gets
            central differences, with a one-time warning), ``"batched"`` (the rows of a ``(batch, d)`` state
            are independent: block-diagonal, factorised per sample; the same fallback, per row),
            ``"fd"`` (finite differences), a callable ``jac(t, y)`` returning ``(n, n)`` or per-sample
            blocks ``(batch, d, d)`` (a sparse tensor is densified), or a
            :class:`~sciml.solvers.ode.jacobian.JacobianProvider`; for the
            ESDIRK methods also ``"krylov"`` / :class:`~sciml.solvers.ode.jacobian.NewtonKrylov` (matrix-free
            Newton–GMRES for large states).
        dense_error: for the adaptive implicit methods: accept a step only when its dense output is within
            tolerance too, not only its end point. ``"auto"`` (default): whenever the solution is
            interpolated (``saveat`` times strictly inside ``t_span``), for the
            stiffly accurate methods (all but ``rosenbrock23``, whose end point is not slaved to the slow
            manifold, so that its own estimate controls its interpolant too); ``True``: always; ``False``:
            never (the end point's embedded estimate alone, as before). Stiffly accurate methods need it on
            stiff problems with slow forcing: their end point is exact whatever ``h``, so the embedded
            estimate lets steps grow while the interpolant in between is wrong by O(1). The test (see
            :meth:`~sciml.solvers.ode.implicit.ImplicitMethod.dense_error`) costs one evaluation of ``f``
            (counted in ``nfe``) and one solve with the step's factorisation at each of its points (two a
            step; ``radau5`` one) for every step that passes its own test; it is not differentiated and does
            not enter ``error_estimates``. Explicit methods (and ``"auto"`` in its Tsit5 phase) are not
            affected.
        hooks: per-step options (callbacks, norm, step/jump times, perturbation, minimum step): see
            :class:`~sciml.solvers.ode.hooks.StepHooks` (its ``event`` is odeint's internal event locator;
            for event functions use :func:`~sciml.solvers.ode.odeint_event`).
        backward: for ``"continuous"``: settings of the backward solve (see ``integrate_with_adjoint``).
        node_shift: with fixed steps and ``"backprop"``: ``s -> δ(s)``, how the step node at ``s`` moves with
            the tensors the step times depend on (a tensor of value 0 carrying their gradient); the solution
            is then differentiable with respect to the step times (odeint's ``t``; see ``_integrate``).

    Returns:
        A :class:`Solution`.

    Raises:
        ValueError: bad tolerances, ``saveat``, method, adjoint, or ``f`` returning the wrong shape/dtype or a
            non-finite value at the start.
        SolveError: the solve failed (max_steps, step-size underflow — a step below
            ``max(dt_min, 16·eps·|t|)``, the resolution of ``t`` — non-finite values) and ``throw``.

    Warns:
        UserWarning: the tolerances ask for less than ``y0``'s dtype resolves (e.g. float32 with rtol 1e-12:
            use float64 or loosen them), or, for implicit methods, come within 100× of it (float32 with
            rtol 1e-5); the default Jacobian falls back to finite differences.
    """
    if not isinstance(problem, ODEProblem):
        raise TypeError(f"`problem` must be an ODEProblem, got {type(problem).__name__}")
    rk = get_method(method)
    if isinstance(rk, ImplicitMethod):
        rk = rk.for_solve(jac)  # fresh per-solve state (Jacobian reuse, counters)
    elif jac is not None:
        raise ValueError("`jac` is used by implicit methods only (e.g. method='rodas5p'); remove it")
    if not (dense_error is True or dense_error is False or dense_error == "auto"):
        raise ValueError(f"`dense_error` must be True, False or 'auto', got {dense_error!r}")
    if dense_error is True and not isinstance(rk, ImplicitMethod):
        raise ValueError(
            "`dense_error=True` is used by the adaptive implicit methods only (e.g. method='rodas5p'); "
            "remove it"
        )
    _check_hooks(hooks)
    tab = rk.tableau
    if tab is None and controller is None:
        controller = IController()
    y0 = problem.y0
    t0, t1 = problem.t_span
    rtol, atol = check_tolerances(rtol, atol, y0)
    resolution = _resolution_note(rtol, atol, y0)
    note = resolution or (_implicit_precision_note(rtol, atol, y0) if isinstance(rk, ImplicitMethod) else "")
    if note:
        import warnings

        warnings.warn(f"solve(): {note}.", UserWarning, stacklevel=2)
    rtol, atol = (t.reshape(-1) if torch.is_tensor(t) else t for t in (rtol, atol))  # on the flat state
    if adjoint not in ("backprop", "continuous"):
        raise ValueError(f"`adjoint` must be 'backprop' or 'continuous', got {adjoint!r}")
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive integer, got {max_steps!r}")
    if dt0 is not None and not (isinstance(dt0, numbers.Real) and math.isfinite(dt0) and dt0 > 0):
        raise ValueError(f"`dt0` must be a positive finite initial step size, got {dt0!r}; e.g. dt0=1e-3")
    if controller is not None and dt is not None:
        raise ValueError("give either `controller` or `dt` (shorthand for ConstantSteps(dt)), not both")
    if dt is not None:
        controller = ConstantSteps(dt=float(dt))
    if controller is None:
        if not tab.adaptive:
            raise ValueError(
                f"method {tab.name!r} has no error estimate: pass a fixed step size, e.g. dt=0.01"
            )
        controller = rk.default_controller() if isinstance(rk, ImplicitMethod) else IController()
    if not isinstance(controller, Controller):
        raise TypeError(f"`controller` must be a Controller, got {type(controller).__name__}")
    if hasattr(rk, "fixed_grid"):  # fixed steps cannot shrink: Newton runs on while it contracts
        rk.fixed_grid = not controller.adaptive
    if dense_error is True and isinstance(controller, ConstantSteps):
        raise ValueError(
            "`dense_error=True` tests adaptive steps, and fixed steps (`dt` or ConstantSteps) cannot be "
            "shortened by it: drop `dense_error`, or drop `dt` to let the steps adapt"
        )
    if saveat is None:
        save_ts = [] if save_steps else [t0, t1]
    else:
        if torch.is_tensor(saveat) and saveat.requires_grad and torch.is_grad_enabled():
            raise ValueError(
                "`saveat` requires grad, but solve() does not differentiate with respect to the save times: "
                "pass saveat.detach(), or use sciml.solvers.ode.odeint(f, y0, t), whose `t` gets its gradient"
            )
        save_ts = check_saveat(saveat, t0, t1, y0)

    if node_shift is not None and (adjoint != "backprop" or hasattr(rk, "integrate") or controller.adaptive):
        raise ValueError("`node_shift` needs a fixed-step Runge-Kutta method and adjoint='backprop'")
    start = SideTime(t0, 1.0 if t1 > t0 else -1.0) if hooks is not None and hooks.perturb else t0
    time0 = time_tensor(start, y0.dtype, y0.device)
    k1 = problem.rhs(time0 if node_shift is None else time0 + node_shift(t0), y0)
    _check_first_evaluation(problem, k1)
    shape = y0.shape
    if y0.numel() == 0:
        if adjoint == "continuous":
            from sciml.solvers.ode.adjoint import adjoint_parameters

            adjoint_parameters(problem, adjoint_params)  # the same argument check as a real solve
        raw = _empty_state_raw(y0, k1, t0, t1, save_ts, save_steps)
        solution = _assemble(raw, rk, shape, y0, torch.is_grad_enabled() and adjoint == "backprop", "")
        return rk.finish(solution) if isinstance(rk, ImplicitMethod) else solution
    kwargs = dict(
        save_steps=save_steps, rtol=rtol, atol=atol, controller=controller, dt0=dt0, max_steps=max_steps,
        stiffness=stiffness, hooks=hooks,
    )  # fmt: skip
    if isinstance(rk, ImplicitMethod):
        kwargs["dense_error"] = dense_error
    if node_shift is not None:
        kwargs["node_shift"] = node_shift

    if adjoint == "backprop":
        stats = SolverStats(nfe=1)
        f = _timed_field(problem.rhs, y0)
        raw = run_method(
            rk, f, y0.reshape(-1), t0, t1, save_ts, k1=k1.reshape(-1), stats=stats, shape=shape, **kwargs
        )
        differentiable = torch.is_grad_enabled()
    else:
        from sciml.solvers.ode.adjoint import integrate_with_adjoint

        raw = integrate_with_adjoint(problem, rk, save_ts, adjoint_params, kwargs, backward, k1=k1)
        differentiable = False
    message = (
        "" if raw.status is Status.SUCCESS else _failure_message(raw, rk, t1, max_steps, rtol, resolution)
    )
    solution = _assemble(raw, rk, shape, y0, differentiable, message)
    if isinstance(rk, ImplicitMethod):
        solution = rk.finish(solution)
    if throw and not solution.success:
        raise SolveError(message, solution)
    return solution

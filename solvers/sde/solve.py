"""``solve(problem, method, ...)``: adaptive (or fixed-step) SDE integration on a torchsde Brownian path that
records, for every accepted step, its size, its scaled embedded error estimate and its stiffness index as
tensors (``sdeint``, torchsde's drop-in, is in :mod:`sciml.solvers.sde.dropin`).

**Noise.** Increments come from a torchsde ``BrownianInterval`` (seeded by ``entropy``), queried on each
step's interval ``[t, t + h]``. A rejected step re-queries a sub-interval of the *same* path: the interval
samples Brownian bridges conditional on what it has already generated, which is what rejection sampling with
memory (Rackauckas & Nie, DCDS-B 2017) achieves with its stack, so adaptivity does not bias the solution.
Steps are shortened to land on every save time (no interpolation across the path).

**Step control.** The scaled error ``E = RMS(ẽ / (atol + rtol·max(|y0|, |y1|)))`` of each step (the ODE
core's :func:`~sciml.solvers.ode.rk.error_ratio`) is decided by a :mod:`sciml.solvers.controllers`
controller with the
method's ``k`` (1.5 for SRA/SRI, 1 for Milstein). As in the ODE core, the decision is made on host floats
and is not differentiated, while ``E`` and the stiffness index keep their autograd history
(discretise-then-optimise): with gradients enabled, ``Solution.error_estimates`` and
``stiffness_estimates`` are differentiable with respect to ``y0`` and every parameter ``f`` and ``g`` use.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import torch
from sciml.problems.sde import SDEProblem
from sciml.solvers.controllers import ConstantSteps, Controller, IController
from sciml.solvers.ode.rk import error_ratio
from sciml.solvers.ode.solve import check_saveat, check_tolerance
from sciml.solvers.sde.methods import SDEMethod, SDESolverStats, Terms, default_method, get_method
from sciml.solvers.solution import Solution, SolveError, Status

__all__ = [
    "solve", "single_step", "StepEstimate", "brownian_interval", "noise_size", "initial_step_size",
    "DEFAULT_CONTROLLER",
]  # fmt: skip

#: the controller of adaptive solves unless one is given: the ODE core's integral controller with its
#: defaults (safety 0.9, factor 0.2 to 10). Measured at equal strong error over 8 tolerances and 2 path
#: batches (sosri on GBM and the scalar-noise problem, sosra on OU, milstein on GBM): capping the growth at
#: 5x or 2x cost 3-5 % or 13-26 % more NFE; a PI controller (0.4, 0.3) ranged from 7 % fewer to 21 % more.
DEFAULT_CONTROLLER = IController()


# ---------------------------------------------------------------------------------------------- noise
def noise_size(problem: SDEProblem) -> int:
    """The number of Brownian channels ``m`` (``d`` for diagonal noise; evaluates ``g`` once otherwise)."""
    if problem.noise_type == "diagonal":
        return problem.y0.shape[1]
    if problem.noise_type == "scalar":
        return 1
    t0 = torch.tensor(problem.t_span[0], dtype=problem.y0.dtype, device=problem.y0.device)
    with torch.no_grad():
        G = problem.diffusion(t0, problem.y0)
    if not torch.is_tensor(G) or G.ndim != 3:
        raise ValueError(
            f"`g` must return (batch, d, m) for {problem.noise_type!r} noise, got "
            f"{tuple(G.shape) if torch.is_tensor(G) else type(G).__name__}"
        )
    return G.shape[2]


def brownian_interval(
    problem: SDEProblem, *, entropy: int | None = None, levy_area: bool = True, **kwargs: Any
):
    """A torchsde ``BrownianInterval`` over the problem's time span, of shape ``(batch, m)``.

    Args:
        problem: sets the span, shape, dtype and device.
        entropy: the seed (None: random).
        levy_area: also sample the space-time Lévy area (``I_(1,0)``; needed by SRA/SRI methods).
        **kwargs: passed on (e.g. ``tol``, ``halfway_tree``, ``cache_size``, or
            ``levy_area_approximation='foster'``, the Lévy area ``A`` that ``log_ode`` needs).

    The interval is given the step hint ``dt = (t1 − t0)/1024`` (override it in ``kwargs``), so its internal
    dependency tree is built once. Without a hint, torchsde rebuilds that tree from the size of the query
    that makes the running mean step fall below half its leaf size; after an adaptive solve has shrunk its
    step by orders of magnitude (near a blow-up), that one query can make it build millions of leaves and
    hang or exceed the recursion limit (measured: a hang at h ≈ 5e-9 on [0, 2]).
    """
    import torchsde

    y0 = problem.y0
    t0, t1 = problem.t_span
    kwargs.setdefault("dt", (t1 - t0) / 1024)
    kwargs.setdefault("levy_area_approximation", "space-time" if levy_area else "none")
    return torchsde.BrownianInterval(
        t0=t0, t1=t1, size=(y0.shape[0], noise_size(problem)), dtype=y0.dtype, device=y0.device,
        entropy=entropy, **kwargs,
    )  # fmt: skip


def _brownian_span(bm: Any) -> tuple[float, float] | None:
    for obj in (bm, getattr(bm, "_interval", None)):
        if obj is not None and hasattr(obj, "_start") and hasattr(obj, "_end"):
            return float(obj._start), float(obj._end)
    return None


def _check_brownian_span(bm: Any, t0: float, t1: float) -> None:
    """``bm`` must cover ``[t0, t1]`` (when it says what it spans)."""
    span = _brownian_span(bm)
    tol = 1e-12 * max(1.0, abs(t0), abs(t1))
    if span is not None and (span[0] > t0 + tol or span[1] < t1 - tol):
        raise ValueError(f"`bm` spans {span} but the solve needs {(t0, t1)}")


def _check_brownian(bm: Any, problem: SDEProblem, m: int, method: SDEMethod) -> None:
    y0 = problem.y0
    if not callable(bm) or not hasattr(bm, "shape"):
        raise TypeError(
            f"`bm` must be a torchsde Brownian motion (e.g. BrownianInterval), got {type(bm).__name__}"
        )
    if tuple(bm.shape) != (y0.shape[0], m):
        raise ValueError(
            f"`bm` has shape {tuple(bm.shape)} but this SDE needs (batch, m) = {(y0.shape[0], m)} "
            f"({problem.noise_type} noise); create it with sciml.solvers.sde.brownian_interval(problem)"
        )
    if (
        getattr(bm, "dtype", y0.dtype) != y0.dtype
        or torch.device(getattr(bm, "device", y0.device)) != y0.device
    ):
        raise ValueError(f"`bm` is {bm.dtype} on {bm.device} but y0 is {y0.dtype} on {y0.device}")
    area = getattr(bm, "levy_area_approximation", "none")
    if getattr(method, "brownian_query", "U") == "A" and area not in ("davie", "foster"):
        raise ValueError(
            f"method {method.name!r} needs the Lévy area A: create the Brownian motion with "
            f"levy_area_approximation 'davie' or 'foster' (got {area!r}), e.g. "
            "sciml.solvers.sde.brownian_interval(problem, levy_area_approximation='foster')"
        )
    if method.levy_area and area == "none":
        raise ValueError(
            f"method {method.name!r} needs the space-time Lévy area I_(1,0): create the Brownian motion with "
            "levy_area_approximation='space-time' (sciml.solvers.sde.brownian_interval does)"
        )
    _check_brownian_span(bm, *problem.t_span)


# ---------------------------------------------------------------------------------------------- validation
def _channels(noise_type: str, y0: torch.Tensor, G: Any) -> int:
    """The number of Brownian channels ``m`` given ``G = g(t0, y0)``: ``d`` for diagonal noise, 1 for scalar
    noise, else ``G``'s last dimension (0 for a malformed ``G``, which the checks below refuse)."""
    if noise_type == "diagonal":
        return y0.shape[1]
    if noise_type == "scalar":
        return 1
    return G.shape[-1] if torch.is_tensor(G) and G.ndim == 3 else 0


def _check_first_evaluations(problem: SDEProblem, F: Any, G: Any, m: int) -> None:
    """Shapes, dtypes and finiteness of ``f(t0, y0)`` and ``g(t0, y0)`` (torchsde's ``check_contract``;
    ``G`` None: an SDE that defines only ``g_prod``)."""
    y0 = problem.y0
    batch, d = y0.shape
    for name, out in (("f", F), ("g", G)) if G is not None else (("f", F),):
        if not torch.is_tensor(out):
            raise TypeError(f"`{name}` must return a tensor, got {type(out).__name__}")
        if out.dtype != y0.dtype or out.device != y0.device:
            raise ValueError(
                f"`{name}` returned {out.dtype} on {out.device} for y0 of {y0.dtype} on {y0.device}; "
                "they must match"
            )
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"`{name}(t0, y0)` is not finite (t0 = {problem.t_span[0]}); check the SDE")
    if F.shape != y0.shape:
        raise ValueError(
            f"drift `f` returned shape {tuple(F.shape)} for y0 of shape {(batch, d)}; they must match"
        )
    expected = (batch, d) if problem.noise_type == "diagonal" else (batch, d, m)
    if G is not None and tuple(G.shape) != expected:
        layouts = {"diagonal": "(batch, d)", "scalar": "(batch, d, 1)"}
        layout = layouts.get(problem.noise_type, "(batch, d, m)")
        note = " (scalar noise has exactly one Brownian channel)" if problem.noise_type == "scalar" else ""
        raise ValueError(
            f"diffusion `g` returned shape {tuple(G.shape)} but {problem.noise_type!r} noise needs "
            f"{layout} = {expected}{note}"
        )


# ---------------------------------------------------------------------------------------------- first step
def initial_step_size(
    terms: Terms, t0: float, y0: torch.Tensor, f0: torch.Tensor, g0: torch.Tensor, k: float, rtol, atol
) -> float:
    """A starting step after Hairer's rule (Hairer, Nørsett & Wanner I, II.4), extended to the noise.

    With ``s = atol + rtol |y0|`` and a probe step ``h0 = 0.01 ‖y0/s‖ / ‖f0/s‖`` (RMS norms), the drift part
    gives ``h_f = min(100 h0, (0.01 / max(‖f0/s‖, ‖(f(t0 + h0, y0 + h0 f0) − f0)/s‖ / h0))^(1/2))`` (the
    drift's share of every embedded estimate here is Heun minus Euler, ``O(h²)``, whatever the method's
    ``k``) and the noise part ``h_g = (0.02 / d_g)^(1/k)`` with
    ``d_g = ‖(g(t0, y0 + √h0 g0) − g0)/s‖ / √h0 ≈ ‖g ∂g / s‖``
    (for matrix noise along the sum of the columns; the size of the terms the embedded estimates measure;
    no limit for additive noise). Two extra evaluations (one ``f``, one ``g``); the result is a host float,
    not differentiated.
    """
    with torch.no_grad():
        scale = y0.abs() * rtol + atol
        n = math.sqrt(y0.numel())

        def rms(x):
            return float(torch.linalg.vector_norm(x / scale)) / n

        d0, d1 = rms(y0), rms(f0)
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        d2 = rms(terms.f(t0 + h0, y0 + h0 * f0) - f0) / h0
        d_max = max(d1, d2)
        h = min(100 * h0, max(1e-6, h0 * 1e-3) if d_max <= 1e-15 else math.sqrt(0.01 / d_max))
        shift = g0 if terms.elementwise else g0.sum(-1)
        dg = terms.g(t0, y0 + math.sqrt(h0) * shift) - g0
        d_noise = rms(dg if terms.elementwise else dg.norm(dim=-1)) / math.sqrt(h0)
        if d_noise > 1e-15:
            h = min(h, (0.02 / d_noise) ** (1.0 / k))
        return h


# ---------------------------------------------------------------------------------------------- core loop
@dataclass
class _Raw:
    save_ts: list[float] = field(default_factory=list)
    save_ys: list[torch.Tensor] = field(default_factory=list)
    step_ts: list[float] = field(default_factory=list)
    step_sizes: list[float] = field(default_factory=list)
    errors: list[torch.Tensor] = field(default_factory=list)
    stiffness: list[torch.Tensor] = field(default_factory=list)
    status: Status = Status.SUCCESS
    h_initial: float = 0.0
    t_reached: float = 0.0
    nonfinite: bool = False
    end: dict[str, torch.Tensor] = field(default_factory=dict)


def _underflow_limit(controller: Controller, t: float, t0: float, t1: float) -> float:
    """The smallest adaptive step at ``t``: ``max(dt_min, 1e-9·(t1 − t0))`` (and a few ulps of ``t``)."""
    eps = float(np.finfo(np.float64).eps)
    return max(controller.dt_min, 1e-9 * (t1 - t0), 16 * eps * max(abs(t), abs(t1 - t0)))


def _integrate(
    method: SDEMethod,
    terms: Terms,
    y0: torch.Tensor,
    t0: float,
    t1: float,
    save_ts: Sequence[float],
    bm: Any,
    *,
    save_steps: bool,
    rtol,
    atol,
    controller: Controller,
    dt0: float | None,
    max_steps: int,
    stiffness: bool,
    start: dict[str, torch.Tensor],
    recompute: bool = False,
) -> _Raw:
    out = _Raw()
    st = terms.stats
    adaptive = controller.adaptive and method.adaptive
    if isinstance(controller, ConstantSteps):
        h = controller.dt
    elif dt0 is not None:  # never below the underflow limit (sdeint's dt < dt_min starts at dt_min)
        h = max(abs(dt0), _underflow_limit(controller, t0, t0, t1))
    else:  # room for a rejection (a factor ≥ 0.2) above the underflow limit
        h = initial_step_size(terms, t0, y0, start["f"], start["g"], method.error_exponent, rtol, atol)
        h = max(h, 10 * _underflow_limit(controller, t0, t0, t1))
    h = out.h_initial = min(h, controller.dt_max)
    k = method.error_exponent
    ctrl_state = controller.new_state()

    save_ts = list(save_ts)
    i_save = 0
    while i_save < len(save_ts) and save_ts[i_save] == t0:
        i_save += 1
    if i_save or save_steps:
        out.save_ts.append(t0)
        out.save_ys.append(y0)

    t, y = t0, y0
    while t1 - t > 0:
        if st.n_steps >= max_steps:
            out.status = Status.MAX_STEPS
            break
        stop = save_ts[i_save] if i_save < len(save_ts) else t1
        h_try, hits_stop = h, False
        if t + h - stop >= -1e-12 * h:
            h_try, hits_stop = stop - t, True
        t_end = stop if hits_stop else t + h_try
        if method.levy_area:
            dW, U = bm(t, t_end, **{f"return_{getattr(method, 'brownian_query', 'U')}": True})
        else:
            dW, U = bm(t, t_end), None
        if recompute and torch.is_grad_enabled():
            res = _recomputed_step(method, terms, t, y, h_try, dW, U, start, stiffness)
        else:
            res = method.step(terms, t, y, h_try, dW, U, start, stiffness)
        st.n_steps += 1
        E = error_ratio(res.y_error, y, res.y1, rtol, atol) if res.y_error is not None else None
        e = E.item() if adaptive else 0.0
        accept, h_next = controller.decide(e, h_try, k, ctrl_state)
        out.nonfinite = not math.isfinite(e)
        if accept:
            st.n_accepted += 1
            out.step_ts.append(t)
            out.step_sizes.append(h_try)
            if E is not None:
                out.errors.append(E)
            if res.stiffness is not None:
                out.stiffness.append(res.stiffness)
            at_save = hits_stop and i_save < len(save_ts) and stop == save_ts[i_save]
            i_save += at_save
            if at_save or save_steps:
                out.save_ts.append(t_end)
                out.save_ys.append(res.y1)
            t, y = t_end, res.y1
            start = dict(res.end)
            if not hits_stop or h_next > h:
                h = h_next
        else:
            st.n_rejected += 1
            h = h_next
        if adaptive and h < _underflow_limit(controller, t, t0, t1):
            out.status = Status.NON_FINITE if out.nonfinite else Status.STEP_SIZE_UNDERFLOW
            break
    out.t_reached = t
    out.end = start
    if out.status is Status.SUCCESS and out.save_ys and not bool(torch.isfinite(out.save_ys[-1]).all()):
        out.status = Status.NON_FINITE
    return out


def _empty_state_raw(
    y0: torch.Tensor, start: dict[str, torch.Tensor], t0: float, t1: float, save_ts: list, save_steps: bool
) -> _Raw:
    """The exact solution of a state with no entries (a batch of no samples): ``y0`` at every save time, no
    steps (``+ 0·f(t0, y0) + 0·Σ g(t0, y0)`` keeps the tensors ``f`` and ``g`` use in the graph: their
    gradients are zeros, as after a real solve, not missing), as the ODE solver's."""
    times = sorted({*save_ts, t0, t1} if save_steps else set(save_ts))
    y = y0 + 0 * start["f"] + 0 * start["g"].sum()
    return _Raw(save_ts=times, save_ys=[y] * len(times), t_reached=t1)


def _recomputed_step(method, terms, t, y, h, dW, U, start, stiffness):
    """One step whose intermediate values are not kept for the backward pass but recomputed there
    (``torch.utils.checkpoint``, non-reentrant): memory per step is its inputs, gradients are exact."""
    from torch.utils.checkpoint import checkpoint

    known = dict(start)

    def run(y_in):
        inputs = dict(known)
        res = method.step(terms, t, y_in, h, dW, U, inputs, stiffness)
        start.update(inputs)
        return res

    return checkpoint(run, y, use_reentrant=False)


def _failure_message(raw: _Raw, method: SDEMethod, t1: float, max_steps: int, rtol: Any) -> str:
    t = raw.t_reached
    stiff_note = ""
    recent = raw.stiffness[-50:]
    if len(recent) >= 10:
        median = float(torch.stack([s.detach() for s in recent]).median())
        if median >= 0.5:
            stiff_note = (
                f" The drift appears stiff (median stiffness index {median:.2f} over the last {len(recent)} "
                "steps); a stability-optimised method ('sosri', 'sosri2', 'sosra', 'sosra2') tolerates more."
            )
    if raw.status is Status.MAX_STEPS:
        return (
            f"reached max_steps={max_steps} at t={t:.6g} before t1={t1:.6g}.{stiff_note} Raise `max_steps` "
            "or loosen rtol/atol."
        )
    if raw.status is Status.NON_FINITE:
        return (
            f"the solution became non-finite (NaN/inf) near t={t:.6g}: the drift or diffusion returned "
            "non-finite values (shrinking the step did not help); check the SDE, or the solution may blow up"
        )
    if not raw.step_sizes:  # no step accepted: the start, not a blow-up
        return (
            f"step size underflow on the first step (t={t:.6g}) with method {method.name!r}: every step from "
            f"the initial {raw.h_initial:.3g} down to max(dt_min, 1e-9·(t1 − t0)) was rejected, so the error "
            f"estimate at the start exceeds the tolerance. Loosen rtol (now {rtol}) / atol, or check that f "
            "and g are smooth at (t0, y0) (e.g. sqrt(y) at y = 0 is not)."
        )
    return (
        f"step size underflow at t={t:.6g} with method {method.name!r}: the step fell below "
        f"max(dt_min, 1e-9·(t1 − t0)); the solution may blow up there.{stiff_note} Otherwise loosen rtol "
        f"(now {rtol}) / atol."
    )


def _assemble(
    raw: _Raw, y0: torch.Tensor, stats: SDESolverStats, differentiable: bool, message: str
) -> Solution:
    empty = y0.new_zeros((0,))
    ys = torch.stack(raw.save_ys) if raw.save_ys else y0.new_zeros((0, *y0.shape))
    return Solution(
        ts=torch.tensor(raw.save_ts, dtype=torch.float64, device=y0.device),
        ys=ys,
        status=raw.status,
        message=message,
        stats=stats,
        step_ts=torch.tensor(raw.step_ts, dtype=torch.float64, device=y0.device),
        step_sizes=torch.tensor(raw.step_sizes, dtype=torch.float64, device=y0.device),
        error_estimates=torch.stack(raw.errors) if raw.errors else empty,
        stiffness_estimates=torch.stack(raw.stiffness) if raw.stiffness else empty,
        differentiable_estimates=differentiable,
    )


# ---------------------------------------------------------------------------------------------- entry points
def _prepare(problem: SDEProblem, method: str | SDEMethod | None, bm: Any, entropy: int | None):
    """Method, Brownian motion, counted terms and the first evaluations, all checked once."""
    if not isinstance(problem, SDEProblem):
        raise TypeError(f"`problem` must be an SDEProblem, got {type(problem).__name__}")
    stepper = get_method(method or default_method(problem.noise_type, problem.sde_type), problem.noise_type,
                         problem.sde_type)  # fmt: skip
    y0 = problem.y0
    t0 = problem.t_span[0]
    stats = SDESolverStats()
    terms = Terms(problem.drift, problem.diffusion, problem.noise_type, stats, y0)
    t0_tensor = torch.tensor(t0, dtype=y0.dtype, device=y0.device)
    F, G = problem.drift(t0_tensor, y0), problem.diffusion(t0_tensor, y0)
    stats.nfe, stats.nfe_drift, stats.nfe_diffusion = 2, 1, 1
    m = _channels(problem.noise_type, y0, G)
    _check_first_evaluations(problem, F, G, m)
    if bm is None:
        area = {} if getattr(stepper, "brownian_query", "U") == "U" else {"levy_area_approximation": "foster"}
        bm = brownian_interval(problem, entropy=entropy, levy_area=stepper.levy_area, **area)
    elif entropy is not None:
        raise ValueError("give either `bm` or `entropy` (the seed of a new Brownian motion), not both")
    _check_brownian(bm, problem, m, stepper)
    start = {"f": F, "g": G.squeeze(-1) if problem.noise_type == "scalar" else G}
    return stepper, bm, terms, start


def solve(
    problem: SDEProblem,
    method: str | SDEMethod | None = None,
    *,
    bm: Any = None,
    entropy: int | None = None,
    rtol: float | torch.Tensor = 1e-3,
    atol: float | torch.Tensor = 1e-3,
    saveat: torch.Tensor | Sequence[float] | None = None,
    save_steps: bool = False,
    controller: Controller | None = None,
    dt: float | None = None,
    dt0: float | None = None,
    max_steps: int = 100_000,
    stiffness: bool = True,
    throw: bool = True,
) -> Solution:
    """Solve an :class:`~sciml.problems.sde.SDEProblem` on one Brownian path per batch row.

    Args:
        problem: what to solve.
        method: ``"sosri"`` (default for Itô diagonal/scalar noise), ``"sosri2"``, ``"sriw1"``, ``"sriw2"``;
            ``"sosra"`` (default for additive noise), ``"sosra2"``, ``"sra1"``, ``"sra3"``; ``"milstein"``
            (default for Stratonovich diagonal/scalar noise) — all adaptive — or the fixed-step ``"euler"``
            (Itô) and ``"euler_heun"`` (Stratonovich), the defaults for general noise (need ``dt``).
            ``"srk"`` (torchsde's name) means SOSRI or SOSRA by noise type.

    Other args:
        bm: the Brownian motion (a torchsde ``BrownianInterval``/``BrownianPath``/``BrownianTree`` of shape
            ``(batch, m)``; SRA/SRI need ``levy_area_approximation='space-time'``). Default: a new
            ``BrownianInterval`` seeded by ``entropy`` (:func:`brownian_interval`).
        entropy: seed of the default Brownian motion.
        rtol, atol: tolerances (positive numbers, or tensors broadcastable to ``y0``).
        saveat: increasing times within ``t_span`` at which to return the solution (steps are shortened to
            land on them); default ``t_span`` itself.
        save_steps: also save the solution at ``t0`` and after every accepted step (merged with ``saveat`` in
            time order; ``ts`` tells which is which; without ``saveat`` only the steps).
        controller: an :class:`~sciml.solvers.controllers.IController` or ``PIDController`` (default
            :data:`DEFAULT_CONTROLLER`), or ``ConstantSteps(dt)``. An adaptive solve ends with a step-size
            underflow below ``max(controller.dt_min, 1e-9·(t1 − t0))``.
        dt: fixed step size (shorthand for ``controller=ConstantSteps(dt)``; required by fixed-step methods).
            Methods with an estimate still record ``error_estimates`` on fixed steps.
        dt0: initial step of an adaptive solve (default: :func:`initial_step_size`, two extra evaluations,
            at least 10 times the underflow limit below); never below that limit.
        max_steps: limit on steps tried.
        stiffness: compute the stiffness index of every step.
        throw: raise :class:`~sciml.solvers.solution.SolveError` when the solve fails; with False return
            the partial
            solution with its ``status`` and ``message``.

    Returns:
        A :class:`~sciml.solvers.solution.Solution` with ``ys`` of shape ``(len(ts), batch, d)`` and
        :class:`~sciml.solvers.sde.methods.SDESolverStats` (``nfe`` counts every ``f`` and ``g`` evaluation).
        A batch of no samples is returned unchanged at every save time, without steps.

    Raises:
        TypeError: ``problem`` is not an SDEProblem, ``f``/``g`` do not return tensors, ``bm`` is not a
            Brownian motion.
        ValueError: a method that does not support the noise/SDE type, bad tolerances, ``saveat``, ``bm``
            (shape, dtype, span, missing Lévy area), or ``f``/``g`` returning the wrong shape or non-finite
            values at the start.
        SolveError: the solve failed (max_steps, step-size underflow, non-finite values) and ``throw``.
    """
    stepper, bm, terms, start = _prepare(problem, method, bm, entropy)
    y0 = problem.y0
    t0, t1 = problem.t_span
    rtol = check_tolerance("rtol", rtol, y0, positive=True)
    atol = check_tolerance("atol", atol, y0, positive=True)
    if not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"`max_steps` must be a positive integer, got {max_steps!r}")
    if dt0 is not None and not (isinstance(dt0, numbers.Real) and math.isfinite(dt0) and dt0 > 0):
        raise ValueError(f"`dt0` must be a positive finite initial step size, got {dt0!r}; e.g. dt0=1e-3")
    if controller is not None and dt is not None:
        raise ValueError("give either `controller` or `dt` (shorthand for ConstantSteps(dt)), not both")
    if dt is not None:
        controller = ConstantSteps(dt=float(dt))
    if controller is None:
        controller = DEFAULT_CONTROLLER
    if not isinstance(controller, Controller):
        raise TypeError(f"`controller` must be a Controller, got {type(controller).__name__}")
    if controller.adaptive and not stepper.adaptive:
        raise ValueError(
            f"method {stepper.name!r} has no error estimate: use fixed steps (solve(..., dt=0.01), or "
            "sdeint(..., adaptive=False, dt=0.01)) or an adaptive method"
        )
    if saveat is None:
        save_ts = [] if save_steps else [t0, t1]
    else:
        save_ts = check_saveat(saveat, t0, t1, y0)
    if y0.numel() == 0:
        raw = _empty_state_raw(y0, start, t0, t1, save_ts, save_steps)
    else:
        raw = _integrate(
            stepper, terms, y0, t0, t1, save_ts, bm, save_steps=save_steps, rtol=rtol, atol=atol,
            controller=controller, dt0=dt0, max_steps=max_steps, stiffness=stiffness, start=start,
        )  # fmt: skip
    message = "" if raw.status is Status.SUCCESS else _failure_message(raw, stepper, t1, max_steps, rtol)
    solution = _assemble(raw, y0, terms.stats, torch.is_grad_enabled(), message)
    if throw and not solution.success:
        raise SolveError(message, solution)
    return solution


class StepEstimate(NamedTuple):
    """One step of :func:`single_step`.

    Attributes:
        y1: the state at ``t + h``.
        h: the step size taken.
        y_error: the embedded error vector ``ẽ``.
        error_estimate: ``E = RMS(ẽ / (atol + rtol·max(|y|, |y1|)))`` (0-d tensor).
        stiffness: the stiffness index (0-d tensor; None without stiffness stages).
        nfe: evaluations of ``f`` and ``g`` made (the initial-step selection included).
    """

    y1: torch.Tensor
    h: float
    y_error: torch.Tensor
    error_estimate: torch.Tensor
    stiffness: torch.Tensor | None
    nfe: int


def single_step(
    problem: SDEProblem,
    method: str | SDEMethod | None,
    t: float,
    y: torch.Tensor,
    bm: Any,
    h: float | None = None,
    *,
    rtol: float | torch.Tensor = 1e-3,
    atol: float | torch.Tensor = 1e-3,
    stiffness: bool = True,
    detach_first_stage: bool = False,
) -> StepEstimate:
    """One step from ``(t, y)`` on the Brownian path ``bm``, with its error estimate — differentiable
    with respect to ``y`` and the parameters of ``f`` and ``g``.

    This is the local regularizer's step (Pal, Edelman & Rackauckas, ICML 2023: regularize ``E·h`` of one
    step at a sampled time instead of every step of the solve). With ``h=None`` the step is the automatic
    starting step of :func:`initial_step_size` at ``(t, y)`` (computed without gradients, as theirs).

    Args:
        problem: supplies ``f``, ``g`` and the noise/SDE type (its ``y0``/``t_span`` are not used).
        method: an adaptive method (default by noise/SDE type).
        t: the step's start.
        y: the state at ``t``, ``(batch, d)``.
        bm: the Brownian motion (shape ``(batch, m)``, covering ``[t, t + h]``).
        h: the step size (> 0), or None for the automatic one (clipped to the end of ``t_span``).
        detach_first_stage: reuse ``f(t, y)``, ``g(t, y)`` from the step-size selection without gradient (as
            the local regularizer prescribes: only the later stages are differentiated); default: evaluate
            them again with autograd history.

    Returns:
        A :class:`StepEstimate`.

    Raises:
        ValueError: a method without an error estimate, a bad ``h``, an empty ``y``, or what :func:`solve`
            rejects.
    """
    if y.numel() == 0:
        raise ValueError(
            f"`y` has no entries (shape {tuple(y.shape)}): a step of an empty batch has no error to "
            "estimate; skip the step (a regularizer of an empty batch is 0)"
        )
    stepper, _, terms, start = _prepare(problem.replace(y0=y.detach(), t_span=(t, problem.t_span[1])), method,
                                        bm, None)  # fmt: skip
    if not stepper.adaptive:
        raise ValueError(f"method {stepper.name!r} has no error estimate; choose an adaptive method")
    rtol = check_tolerance("rtol", rtol, y, positive=True)
    atol = check_tolerance("atol", atol, y, positive=True)
    if h is None:
        h = initial_step_size(terms, t, y, start["f"], start["g"], stepper.error_exponent, rtol, atol)
        h = min(h, problem.t_span[1] - t)
    elif not (h > 0 and math.isfinite(h)):
        raise ValueError(f"`h` must be a positive finite step size, got {h}")
    if detach_first_stage:
        start = {key: value.detach() for key, value in start.items()}
    else:
        start = {}  # evaluate f(t, y), g(t, y) again, with autograd history through y and the parameters
    dW, U = bm(t, t + h, return_U=True) if stepper.levy_area else (bm(t, t + h), None)
    res = stepper.step(terms, t, y, h, dW, U, start, stiffness)
    E = error_ratio(res.y_error, y, res.y1, rtol, atol)
    return StepEstimate(res.y1, h, res.y_error, E, res.stiffness, terms.stats.nfe)

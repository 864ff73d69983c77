"""Continuous adjoint (optimise-then-discretise) for :func:`sciml.solvers.ode.solve`.

The forward solve runs without autograd; ``backward`` integrates the adjoint system backwards in time
(Pontryagin; Chen et al., *Neural Ordinary Differential Equations*, NeurIPS 2018)

    dy/dt = f(t, y),   da/dt = −aᵀ ∂f/∂y,   dg/dt = −aᵀ ∂f/∂θ,

from each save time to the previous one, adding the incoming gradient at every save time and restarting
``y`` from the stored forward value there. Memory does not grow with the number of steps. The step-size
control of the backward solve measures only ``(y, a)`` (a seminorm: Kidger, Chen & Lyons, *"Hey, that's not
an ODE"*, ICML 2021), which saves steps without changing accuracy of the gradients it controls.
Gradients agree with ``adjoint="backprop"`` up to the solver tolerance; they are not twice differentiable.
``stats.nfe`` counts the forward solve's calls of ``f`` (the first one, made by ``solve`` to check ``f``,
included and reused); ``stats.nfe_adjoint`` those of the backward solve (one per augmented evaluation).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode.rk import RungeKutta

__all__ = ["integrate_with_adjoint", "adjoint_parameters"]


def adjoint_parameters(problem: ODEProblem, adjoint_params: Sequence[torch.Tensor] | None) -> tuple:
    """The tensors whose gradients the continuous adjoint computes (those requiring grad).

    Default: the parameters of ``problem.f`` when it is an ``nn.Module``, plus ``problem.params`` when it is
    a tensor or a tuple of tensors.

    Raises:
        ValueError: ``adjoint_params`` is not a sequence of tensors, or ``f`` is not an ``nn.Module`` and no
            ``adjoint_params`` were given (the adjoint cannot see what a plain function closes over, and
            silently missing gradients are worse than an error).
    """
    if adjoint_params is not None:
        params = tuple(adjoint_params)
        if not all(torch.is_tensor(p) for p in params):
            raise ValueError("`adjoint_params` must be a sequence of tensors")
        return tuple(p for p in params if p.requires_grad)
    if not isinstance(problem.f, torch.nn.Module):
        raise ValueError(
            "adjoint='continuous' needs the tensors f depends on: make f an nn.Module or pass "
            "adjoint_params=(...) (an empty tuple if f has no trainable parameters)"
        )
    params = [p for p in problem.f.parameters() if p.requires_grad]
    extra = problem.params
    for p in extra if isinstance(extra, (tuple, list)) else (extra,):
        if torch.is_tensor(p) and p.requires_grad:
            params.append(p)
    return tuple(params)


class _Settings:
    """Non-tensor inputs of the autograd function, and where its forward leaves the raw result."""

    def __init__(self, problem, rk, save_ts, kwargs, n_params, backward=None, k1=None):
        self.problem, self.rk, self.save_ts = problem, rk, save_ts
        self.kwargs, self.n_params = kwargs, n_params
        self.k1 = None if k1 is None else k1.detach().reshape(-1)  # f(t0, y0), already evaluated by solve
        self.backward = dict(backward or {})  # overrides for the backward solve (odeint's adjoint_* options)
        self.raw = None
        self.autonomous = False  # set by the forward solve: the field does not depend on t


def _forward_solve(settings: _Settings, y0: torch.Tensor) -> None:
    """The forward solve, without a graph, into ``settings.raw``; run before (not inside) the autograd
    function, whose ``forward`` has forward-mode AD switched off: a Rosenbrock method there would get no
    tangent for ``∂f/∂t``, and take a field whose time dependence is below round-off at ``t0`` for
    autonomous."""
    from sciml.solvers.ode.solve import _timed_field, run_method
    from sciml.solvers.solution import SolverStats

    problem = settings.problem
    f = _timed_field(problem.rhs, y0)
    k1 = settings.k1
    with torch.no_grad():
        settings.raw = run_method(
            settings.rk, f, y0.reshape(-1), *problem.t_span, settings.save_ts, k1=k1,
            stats=SolverStats(nfe=int(k1 is not None)), shape=problem.y0.shape, **settings.kwargs,
        )  # fmt: skip
    # a field the forward Rosenbrock solve found autonomous makes an autonomous backward field, whose
    # plain-float times would otherwise cost a difference quotient of ∂f/∂t at every backward Jacobian
    settings.autonomous = bool(getattr(settings.rk, "found_autonomous", False))


class _ContinuousAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings: _Settings, y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        raw = settings.raw  # solved by _forward_solve
        ys = torch.stack(raw.save_ys) if raw.save_ys else y0.new_zeros((0, y0.numel()))
        ctx.settings = settings
        ctx.save_for_backward(y0, ys, *params)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ys: torch.Tensor):
        from sciml.solvers.controllers import ConstantSteps
        from sciml.solvers.ode.hooks import time_tensor
        from sciml.solvers.ode.solve import run_method
        from sciml.solvers.solution import SolveError, Status

        settings: _Settings = ctx.settings
        raw = settings.raw
        if raw.status is not Status.SUCCESS:
            raise SolveError("cannot backpropagate through a solve that did not succeed", None)
        y0, ys, *params = ctx.saved_tensors
        problem, kw = settings.problem, dict(settings.kwargs)
        back = settings.backward
        rk = back.get("rk", settings.rk)
        kw.update({k: v for k, v in back.items() if k in ("rtol", "atol", "controller", "max_steps")})
        shape, n = problem.y0.shape, y0.numel()
        sizes = [p.numel() for p in params]

        dtype, device = y0.dtype, y0.device

        def augmented(t: float, z: torch.Tensor) -> torch.Tensor:
            t = time_tensor(t, dtype, device)
            y = z[:n].detach().view(shape).requires_grad_(True)
            a = z[n : 2 * n].view(shape)
            with torch.enable_grad():
                fy = problem.rhs(t, y)
                if fy.requires_grad:  # f may depend on neither y nor the parameters
                    grads = torch.autograd.grad(fy, (y, *params), grad_outputs=a, allow_unused=True)
                else:
                    grads = (None,) * (1 + len(params))
            da = grads[0] if grads[0] is not None else torch.zeros_like(y)
            parts = [fy.reshape(-1), -da.reshape(-1)]
            for grad, p in zip(grads[1:], params):
                parts.append((-grad if grad is not None else torch.zeros_like(p)).reshape(-1))
            return torch.cat(parts)

        augmented.autonomous = settings.autonomous
        t0 = problem.t_span[0]
        times = list(raw.save_ts)
        states = list(ys.unbind(0))
        grads = list(grad_ys.unbind(0))
        if not times or times[0] != t0:
            times.insert(0, t0)
            states.insert(0, y0.reshape(-1))
            grads.insert(0, torch.zeros_like(y0.reshape(-1)))
        a = torch.zeros_like(y0.reshape(-1))
        g = y0.new_zeros(sum(sizes))
        tol = {}
        for name in ("rtol", "atol"):
            v = kw[name]
            tol[name] = torch.cat([v, v]) if torch.is_tensor(v) else v
        controller = kw["controller"]
        for i in range(len(times) - 1, 0, -1):
            a = a + grads[i]
            if times[i] == times[i - 1]:
                continue
            z0 = torch.cat([states[i], a, g])
            hooks = back["hooks"](times[i], times[i - 1]) if "hooks" in back else None
            seminorm = back.get("seminorm", True)
            back_run = run_method(
                rk, augmented, z0, times[i], times[i - 1], [times[i - 1]], save_steps=False,
                rtol=tol["rtol"] if seminorm else _extend(tol["rtol"], g), atol=tol["atol"] if seminorm
                else _extend(tol["atol"], g), controller=controller,
                dt0=None if not isinstance(controller, ConstantSteps) else controller.dt,
                max_steps=kw["max_steps"], stiffness=False, error_size=2 * n if seminorm else None,
                hooks=hooks,
            )  # fmt: skip
            raw.stats.nfe_adjoint += back_run.stats.nfe
            if back_run.status is not Status.SUCCESS:
                raise SolveError(
                    f"the adjoint solve failed ({back_run.status.value}) between t={times[i]} and "
                    f"t={times[i - 1]}; try adjoint='backprop' or tighter tolerances",
                    None,
                )
            z = back_run.save_ys[-1]
            fwd, bwd = (settings.kwargs["rtol"], settings.kwargs["atol"]), (kw["rtol"], kw["atol"])
            tolerances = [fwd] if bwd[0] is fwd[0] and bwd[1] is fwd[1] else [fwd, bwd]
            fixed = raw.fixed_steps or back_run.fixed_steps
            lo, hi = sorted((times[i - 1], times[i]))
            n_steps = back_run.stats.n_accepted + sum(lo <= s < hi for s in raw.step_ts)
            _check_backward_state(
                z[:n], states[i - 1], states[i], tolerances, fixed, n_steps, times[i], times[i - 1]
            )
            a, g = z[n : 2 * n], z[2 * n :]
        a = a + grads[0]
        grad_params = list(torch.split(g, sizes)) if sizes else []
        grad_params = [gp.view_as(p) for gp, p in zip(grad_params, params)]
        return (None, a.view_as(y0), *grad_params)


#: how far (in units of atol + rtol·|y|) the backward re-solve of y may end from the forward state before the
#: gradients are refused; well-conditioned problems end within ~10², the stiff test problem at ~4·10⁵
_MAX_BACKWARD_DRIFT = 1e4
#: round-off allowed per step of the two solves, in units of eps(dtype)·max|y| (non-stiff float32 problems
#: drift by ≤ 5 per step, a stiff one by 350-600)
_ROUNDOFF_PER_STEP = 40.0


def _check_backward_state(y_back: torch.Tensor, y_fwd: torch.Tensor, y_start: torch.Tensor, tolerances,
                          fixed_steps: bool, n_steps: int, t_from: float, t_to: float):  # fmt: skip
    """Refuse gradients whose backward re-solve of ``y`` lost the forward trajectory.

    The continuous adjoint integrates ``y`` backwards beside ``a``; on stiff (strongly dissipative) dynamics
    the decaying modes grow backwards in time and ``y`` — hence ``∂f/∂y`` and the gradients — become
    meaningless without any step failing. The forward state at each save time is known, so the drift is
    measured there. Adaptive solves may drift by ``_MAX_BACKWARD_DRIFT·(atol + rtol·|y|)`` for the looser of
    the ``(rtol, atol)`` pairs in ``tolerances`` (forward and backward: both solves' errors end up in the
    drift), with ``|y|`` per entry the larger of the forward states at the interval's two ends (``y_fwd``
    and ``y_start``, where the backward solve began: an entry that ends at 0 was of order one on the way,
    as error controllers scale each step by ``max(|y_n|, |y_n+1|)``), and at least by the round-off of their
    ``n_steps`` steps, ``_ROUNDOFF_PER_STEP·n_steps·eps·max|y|`` (a float32 state cannot be retraced to
    atol = 1e-9). Fixed steps control no error, so their drift (of the order of the discretisation error)
    is refused only beyond the state's own size ``max|y| + atol``: the backward solve diverged.

    Raises:
        SolveError: the drift exceeds what is allowed (or is NaN).
    """
    from sciml.solvers.solution import SolveError

    diff = (y_back - y_fwd).abs()
    size = float(y_fwd.abs().max())
    atol_max = max(float(a.max()) if torch.is_tensor(a) else float(a) for _, a in tolerances)
    if fixed_steps:
        ratio = float(diff.max()) / (size + atol_max)
        allowed = f"max|y| + atol = {size + atol_max:.3g}, as fixed steps control no error"
        fixes = "a smaller step_size / dt or an adaptive method"
    else:
        dtype = y_fwd.dtype
        roundoff = _ROUNDOFF_PER_STEP * max(n_steps, 1) * torch.finfo(dtype).eps * size
        limit = torch.full_like(y_fwd, roundoff)
        scale = torch.maximum(y_fwd.abs(), y_start.abs())
        for rtol, atol in tolerances:
            limit = torch.maximum(limit, _MAX_BACKWARD_DRIFT * (atol + rtol * scale))
        ratio = float((diff / limit).max())
        allowed = (
            f"per entry {_MAX_BACKWARD_DRIFT:g}·(atol + rtol·|y|), |y| the larger at the interval's ends, "
            f"for the looser of the forward and backward tolerances ({_describe(tolerances)}), at least the "
            f"round-off of {n_steps} steps {_ROUNDOFF_PER_STEP:g}·{n_steps}·eps·max|y| = {roundoff:.3g}"
        )
        fixes = "tighter adjoint_rtol/adjoint_atol (solve: backward={'rtol': ..., 'atol': ...})"
        fixes += ", float64" if dtype != torch.float64 else ""
    if not ratio <= 1.0:  # NaN fails too
        raise SolveError(
            f"the continuous adjoint lost the forward solution: re-solving y backwards from t={t_from} to "
            f"t={t_to} ended {ratio:.3g}× farther from the forward state than allowed ({allowed}), so the "
            "gradients would be wrong. Causes: dynamics that decay fast forwards grow backwards in time "
            f"(stiffness), or errors too large to retrace. Fixes: {fixes}, or differentiate through the "
            "solver: adjoint='backprop' (solve) / odeint instead of odeint_adjoint (implicit methods "
            "differentiate their Newton solves exactly)",
            None,
        )


def _describe(tolerances) -> str:
    """``(rtol, atol)`` pairs for a message (tensor tolerances by their range)."""

    def one(v):
        return f"{float(v):.3g}" if not torch.is_tensor(v) else f"{float(v.min()):.3g}..{float(v.max()):.3g}"

    return ", ".join(f"rtol={one(r)} atol={one(a)}" for r, a in tolerances)


def _extend(tol, g: torch.Tensor):
    """A tolerance on ``(y, a)`` extended to ``(y, a, g)`` (tensors: g's entries get their mean)."""
    if not torch.is_tensor(tol):
        return tol
    return torch.cat([tol, tol.mean().expand(g.numel())])


def integrate_with_adjoint(
    problem: ODEProblem,
    rk: RungeKutta,
    save_ts: list[float],
    adjoint_params: Sequence[torch.Tensor] | None,
    kwargs: dict[str, Any],
    backward: dict[str, Any] | None = None,
    k1: torch.Tensor | None = None,
):
    """Run the forward solve and wrap its saved states in the adjoint autograd function; returns the raw
    result whose saved states are the differentiable outputs. ``k1``: ``f(t0, y0)`` if already evaluated
    (reused and counted in nfe).

    ``backward`` overrides settings of the backward solve: ``rk`` (method), ``rtol``, ``atol``,
    ``controller``, ``max_steps``, ``seminorm`` (default True: step control ignores the parameter-gradient
    integrals) and ``hooks`` (``hooks(t_from, t_to) -> StepHooks`` for each backward segment).
    """
    params = adjoint_parameters(problem, adjoint_params)
    settings = _Settings(problem, rk, save_ts, kwargs, len(params), backward, k1)
    _forward_solve(settings, problem.y0)
    ys = _ContinuousAdjoint.apply(settings, problem.y0, *params)
    raw = settings.raw
    raw.save_ys = list(ys.unbind(0))
    raw.error_norms = [e.detach() for e in raw.error_norms]
    raw.stiffness_norms = [s.detach() for s in raw.stiffness_norms]
    return raw

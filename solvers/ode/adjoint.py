"""Continuous adjoint (optimise-then-discretise) for :func:`sciml.solvers.ode.solve`.

The forward solve runs without autograd; ``backward`` integrates the adjoint system backwards in time
(Pontryagin; Chen et al., *Neural Ordinary Differential Equations*, NeurIPS 2018)

    dy/dt = f(t, y),   da/dt = −aᵀ ∂f/∂y,   dg/dt = −aᵀ ∂f/∂θ,

from each save time to the previous one, adding the incoming gradient at every save time and restarting
``y`` from the stored forward value there. Memory does not grow with the number of steps. The step-size
control of the backward solve measures only ``(y, a)`` (a seminorm: Kidger, Chen & Lyons, *"Hey, that's not
an ODE"*, ICML 2021), which saves steps without changing accuracy of the gradients it controls.
Gradients agree with ``adjoint="backprop"`` up to the solver tolerance; they are not twice differentiable.
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

    def __init__(self, problem, rk, save_ts, kwargs, n_params):
        self.problem, self.rk, self.save_ts = problem, rk, save_ts
        self.kwargs, self.n_params = kwargs, n_params
        self.raw = None


class _ContinuousAdjoint(torch.autograd.Function):
    @staticmethod
    def forward(ctx, settings: _Settings, y0: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        from sciml.solvers.ode.solve import _integrate, _timed_field
        from sciml.solvers.solution import SolverStats

        problem = settings.problem
        shape = problem.y0.shape
        f = _timed_field(problem.rhs, y0)
        with torch.no_grad():
            raw = _integrate(
                settings.rk, f, y0.reshape(-1), *problem.t_span, settings.save_ts,
                stats=SolverStats(), shape=shape, **settings.kwargs,
            )  # fmt: skip
        settings.raw = raw
        ys = torch.stack(raw.save_ys) if raw.save_ys else y0.new_zeros((0, y0.numel()))
        ctx.settings = settings
        ctx.save_for_backward(y0, ys, *params)
        return ys

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_ys: torch.Tensor):
        from sciml.solvers.controllers import ConstantSteps
        from sciml.solvers.ode.solve import _integrate
        from sciml.solvers.solution import SolveError, Status

        settings: _Settings = ctx.settings
        raw = settings.raw
        if raw.status is not Status.SUCCESS:
            raise SolveError("cannot backpropagate through a solve that did not succeed", None)
        y0, ys, *params = ctx.saved_tensors
        problem, rk, kw = settings.problem, settings.rk, settings.kwargs
        shape, n = problem.y0.shape, y0.numel()
        sizes = [p.numel() for p in params]

        dtype, device = y0.dtype, y0.device

        def augmented(t: float, z: torch.Tensor) -> torch.Tensor:
            t = torch.full((), t, dtype=dtype, device=device)
            y = z[:n].detach().view(shape).requires_grad_(True)
            a = z[n : 2 * n].view(shape)
            with torch.enable_grad():
                fy = problem.rhs(t, y)
                grads = torch.autograd.grad(fy, (y, *params), grad_outputs=a, allow_unused=True)
            parts = [fy.reshape(-1), -grads[0].reshape(-1)]
            for grad, p in zip(grads[1:], params):
                parts.append((-grad if grad is not None else torch.zeros_like(p)).reshape(-1))
            return torch.cat(parts)

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
            back = _integrate(
                rk, augmented, z0, times[i], times[i - 1], [times[i - 1]], save_steps=False,
                rtol=tol["rtol"], atol=tol["atol"], controller=controller,
                dt0=None if not isinstance(controller, ConstantSteps) else controller.dt,
                max_steps=kw["max_steps"], stiffness=False, error_size=2 * n,
            )  # fmt: skip
            raw.stats.nfe_adjoint += back.stats.nfe
            if back.status is not Status.SUCCESS:
                raise SolveError(
                    f"the adjoint solve failed ({back.status.value}) between t={times[i]} and "
                    f"t={times[i - 1]}; try adjoint='backprop' or tighter tolerances",
                    None,
                )
            z = back.save_ys[-1]
            a, g = z[n : 2 * n], z[2 * n :]
        a = a + grads[0]
        grad_params = list(torch.split(g, sizes)) if sizes else []
        grad_params = [gp.view_as(p) for gp, p in zip(grad_params, params)]
        return (None, a.view_as(y0), *grad_params)


def integrate_with_adjoint(
    problem: ODEProblem,
    rk: RungeKutta,
    save_ts: list[float],
    adjoint_params: Sequence[torch.Tensor] | None,
    kwargs: dict[str, Any],
):
    """Run the forward solve inside the adjoint autograd function; returns the raw result whose saved states
    are the differentiable outputs."""
    params = adjoint_parameters(problem, adjoint_params)
    settings = _Settings(problem, rk, save_ts, kwargs, len(params))
    ys = _ContinuousAdjoint.apply(settings, problem.y0, *params)
    raw = settings.raw
    raw.save_ys = list(ys.unbind(0))
    raw.error_norms = [e.detach() for e in raw.error_norms]
    raw.stiffness_norms = [s.detach() for s in raw.stiffness_norms]
    return raw

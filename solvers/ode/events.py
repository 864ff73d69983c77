"""Terminal events: stop a solve where ``event_fn(t, y)`` changes sign, with the event time differentiable.

After every accepted step the event function is evaluated at the step's end; on a sign change the crossing
is bracketed inside the step and located by bisection on the step's interpolant (the method's dense output;
for methods without one, the step re-taken from its start to the trial time) to ``atol`` or float64
resolution. Vector-valued event functions stop at the first component to
change sign (torchdiffeq's convention: each component is made positive at ``t0``, then their minimum is
watched).

Gradients (implicit function theorem): at the event ``g(t*, y(t*; θ); θ) = 0``, so
``dt*/dθ = −(∂g/∂θ + ∂g/∂y ∂y/∂θ) / (∂g/∂t + ∂g/∂y f)`` and the state returned there moves with
``dy(t*)/dθ = ∂y/∂θ + f dt*/dθ``. :func:`reroute_event_gradients` attaches exactly these derivatives to
values computed without them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

__all__ = ["EventLocator", "reroute_event_gradients"]


class EventLocator:
    """Watches ``event_fn`` along a solve (plug into :class:`~sciml.solvers.ode.hooks.StepHooks.event`).

    Args:
        event_fn: ``event_fn(t, y) -> tensor`` (any shape; time as a 0-d tensor, ``y`` in the state's shape).
        t0, y0: the start (flat ``y0``), where the signs are taken.
        time: turns a host time into the tensor ``event_fn`` receives.
        atol: bisection stops when the bracket is this short (and at float64 resolution in any case).

    After a solve that crossed, ``t_event`` holds the event time (host float).
    """

    def __init__(self, event_fn: Callable, t0: float, y0: torch.Tensor, shape, time: Callable, atol: float):
        self.event_fn, self.time, self.atol, self.shape = event_fn, time, float(atol), shape
        with torch.no_grad():
            signs = torch.sign(torch.as_tensor(event_fn(time(t0), y0.view(shape))))
        self.signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        self.t_event: float | None = None

    def value(self, t: float, y: torch.Tensor) -> float:
        """The watched scalar: ``min_i sign_i(t0) g_i(t, y)`` (positive until the event)."""
        with torch.no_grad():
            return float(
                torch.min(torch.as_tensor(self.event_fn(self.time(t), y.view(self.shape))) * self.signs)
            )

    def crossed(self, rk, field, t: float, y: torch.Tensor, t1: float, res, shape) -> bool:
        """Called after each accepted step ``(t, y) -> (t1, res.y1)``; locates a crossing inside it."""
        if self.value(t1, res.y1) > 0:
            return False
        with torch.no_grad():
            h = t1 - t
            if rk.tableau.dense is not None:

                def interp(s: float) -> torch.Tensor:
                    return rk.interpolate(y, res.stages, h, np.array([(s - t) / h]))[0]

            else:  # no dense output: re-take the step to the trial time (the method's own solution there)
                k0 = res.stages[0].clone()
                y_start = y.clone()

                def interp(s: float) -> torch.Tensor:
                    if s == t:
                        return y_start
                    return rk.step(field, t, y_start, s - t, k0, shape=shape, stiffness=False).y1

            lo, hi = t, t1
            for _ in range(200):
                if abs(hi - lo) <= max(self.atol, 4e-16 * max(abs(lo), abs(hi), 1.0)):
                    break
                mid = 0.5 * (lo + hi)
                if self.value(mid, interp(mid)) > 0:
                    lo = mid
                else:
                    hi = mid
        self.t_event = 0.5 * (lo + hi) if self.atol > 0 else hi
        return True


def reroute_event_gradients(
    func: Callable, event_fn: Callable, t_event: torch.Tensor, y_event: torch.Tensor, signs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The event time and state with the implicit-function derivatives (values unchanged).

    Args:
        func: the vector field ``func(t, y)``.
        event_fn: the event function (its watched component is the one closest to zero).
        t_event: 0-d tensor, the located time (its own graph, e.g. from ``t0``, is kept).
        y_event: the state there, differentiable with respect to ``y0`` and the parameters at fixed time.
        signs: the initial signs of the event function's components.

    Returns:
        ``(t_event, y_event)`` whose gradients include the motion of the event time.
    """
    t_d, y_d = t_event.detach().requires_grad_(True), y_event.detach().requires_grad_(True)
    with torch.enable_grad():
        fy = func(t_d, y_d)
        g_d = torch.as_tensor(event_fn(t_d, y_d)) * signs
        i = int(torch.argmin(g_d.detach().abs().reshape(-1)))
        gt, gy = torch.autograd.grad(g_d.reshape(-1)[i], (t_d, y_d), allow_unused=True)
    gt = torch.zeros_like(t_d) if gt is None else gt
    gy = torch.zeros_like(y_d) if gy is None else gy
    dg_dt = (gt + (gy * fy.detach()).sum()).detach()
    if float(dg_dt.abs()) == 0.0:
        return t_event, y_event
    g = (torch.as_tensor(event_fn(t_event, y_event)) * signs).reshape(-1)[i]
    t_out = t_event - (g - g.detach()) / dg_dt.to(g.dtype)
    t_out = t_out.to(t_event.dtype)
    y_out = y_event + fy.detach() * (t_out - t_out.detach()).to(y_event.dtype)
    return t_out, y_out

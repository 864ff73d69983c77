"""``scipy.integrate.solve_ivp`` as a method of our solve loop (torchdiffeq's ``method="scipy_solver"``).

The state crosses to numpy (float64 or complex128) at every evaluation, so the result carries no autograd
history: gradients come from the continuous adjoint (``odeint_adjoint``), whose backward solve runs through
the same scipy method.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["ScipyMethod"]

_SOLVERS = ("RK45", "RK23", "DOP853", "Radau", "BDF", "LSODA")


class ScipyMethod:
    """One of ``solve_ivp``'s methods with the integration signature of the core loop.

    Args:
        solver: ``"LSODA"`` (torchdiffeq's default), ``"RK45"``, ``"RK23"``, ``"DOP853"``, ``"Radau"`` or
            ``"BDF"``.
        min_step: smallest step (LSODA only, as in scipy).

    Raises:
        ValueError: unknown solver.
    """

    tableau = None

    def __init__(self, solver: str = "LSODA", min_step: float = 0.0):
        if solver not in _SOLVERS:
            raise ValueError(f"options['solver'] must be one of {_SOLVERS}, got {solver!r}")
        self.solver, self.min_step = solver, float(min_step)

    def __repr__(self) -> str:
        return f"ScipyMethod({self.solver})"

    def integrate(
        self,
        f,
        y0,
        t0,
        t1,
        save_ts,
        *,
        rtol,
        atol,
        controller,
        max_steps,
        stats=None,
        shape=None,
        hooks=None,
        dt0=None,
        **_ignored,
    ):
        """Solve from ``t0`` to ``t1`` saving at ``save_ts``; returns the core loop's raw result."""
        from sciml.solvers.ode.solve import _Raw
        from sciml.solvers.solution import SolverStats, Status
        from scipy.integrate import solve_ivp

        out = _Raw(stats=stats if stats is not None else SolverStats())
        shape = shape if shape is not None else y0.shape
        dtype, device = y0.dtype, y0.device

        def fun(t, y):
            out.stats.nfe += 1
            with torch.no_grad():
                dy = f(float(t), torch.as_tensor(y, device=device).to(dtype).view(shape))
            return dy.reshape(-1).detach().cpu().numpy().astype(y.dtype)

        def tol(v):
            return v.detach().cpu().numpy() if torch.is_tensor(v) else float(v)

        kwargs = {}
        if math.isfinite(controller.dt_max):
            kwargs["max_step"] = controller.dt_max
        if self.solver == "LSODA" and self.min_step > 0:
            kwargs["min_step"] = self.min_step
        if dt0 is not None:
            kwargs["first_step"] = float(dt0)
        y_np = y0.detach().cpu().numpy()
        y_np = y_np.astype(np.complex128 if np.iscomplexobj(y_np) else np.float64)
        sol = solve_ivp(fun, (t0, t1), y_np, method=self.solver, t_eval=list(save_ts), rtol=tol(rtol),
                        atol=tol(atol), **kwargs)  # fmt: skip
        out.t_reached = float(sol.t[-1]) if len(sol.t) else t0
        if not sol.success:
            out.status = Status.STEP_SIZE_UNDERFLOW
        out.save_ts = [float(v) for v in sol.t]
        out.save_ys = [torch.as_tensor(sol.y[:, i], device=device).to(dtype) for i in range(sol.y.shape[1])]
        return out

"""Adams multistep methods on a step grid: Adams–Bashforth (explicit) and Adams–Bashforth–Moulton
(predictor–corrector with functional iteration), torchdiffeq's ``explicit_adams`` / ``implicit_adams``
(alias ``fixed_adams``).

Each step from ``t_n`` to ``t_n + h`` integrates the polynomial through the last ``k`` derivatives
(Hairer, Nørsett & Wanner I, III.1). The weights are recomputed from the actual past times, so a
non-uniform grid keeps the method's order: with nodes ``x_j = (t_{n-j} − t_n)/h`` the weights solve
``Σ_j β_j x_j^m = 1/(m+1)``, ``m < k`` (exact for polynomials of degree < k). Until ``k`` derivatives are
known, steps are classical RK4 (as torchdiffeq starts its Adams methods). The corrector adds the node
``x = 1`` and iterates ``y1 = y0 + h Σ β_j f_j`` at most ``max_iters`` times, until successive iterates
differ by less than ``atol + rtol |y1|``. Everything is a tensor operation on the stored derivatives, so
backpropagation and the continuous adjoint (which reruns the method backwards) both work.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import torch

__all__ = ["Adams", "adams_weights"]


def adams_weights(nodes: np.ndarray) -> np.ndarray:
    """Weights ``β`` with ``∫_0^1 p(x) dx = Σ β_j p(x_j)`` for every polynomial of degree < len(nodes)."""
    nodes = np.asarray(nodes, dtype=np.float64)
    k = len(nodes)
    vandermonde = np.vander(nodes, k, increasing=True).T  # row m: x_j^m
    return np.linalg.solve(vandermonde, 1.0 / np.arange(1, k + 1))


class Adams:
    """An Adams method with the integration signature of the core loop (fixed steps on a grid).

    Args:
        implicit: Adams–Moulton corrector after the Adams–Bashforth predictor.
        order: number of past derivatives used by the predictor (1–8; default 4).
        max_iters: corrector iterations per step.

    Raises:
        ValueError: order out of range.
    """

    def __init__(self, implicit: bool, order: int = 4, max_iters: int = 4):
        if not 1 <= int(order) <= 8:
            raise ValueError(f"the Adams order must be in 1..8, got {order}")
        from sciml.solvers.ode.solve import get_method

        self.implicit, self.order, self.max_iters = implicit, int(order), int(max_iters)
        self.starter = get_method("rk4")
        self.tableau = SimpleNamespace(name="implicit_adams" if implicit else "explicit_adams", dense=None,
                                       adaptive=False, fsal=False, order=self.order + implicit)  # fmt: skip

    def __repr__(self) -> str:
        return f"Adams(implicit={self.implicit}, order={self.order})"

    def integrate(self, f, y0, t0, t1, save_ts, *, controller, max_steps, rtol=1e-3, atol=1e-4, stats=None,
                  shape=None, hooks=None, save_steps=False, **_ignored):  # fmt: skip
        """Step from ``t0`` to ``t1`` on the grid (``hooks.tstops``, the save times, steps of at most
        ``controller.dt``); returns the core loop's raw result."""
        from sciml.solvers.ode.hooks import SideTime, StepHooks
        from sciml.solvers.ode.solve import _Raw
        from sciml.solvers.solution import SolverStats, Status

        out = _Raw(stats=stats if stats is not None else SolverStats())
        st = out.stats
        hk = hooks or StepHooks()
        shape = shape if shape is not None else y0.shape
        direction = 1.0 if t1 > t0 else -1.0
        ends = [t0, t0]

        def field(t: float, y: torch.Tensor) -> torch.Tensor:
            st.nfe += 1
            if hk.perturb and t == ends[0]:
                t = SideTime(t, direction)
            elif hk.perturb and abs(t - ends[1]) <= 1e-13 * max(1.0, abs(ends[1])):
                t = SideTime(ends[1], -direction)
            return f(t, y.view(shape)).reshape(-1)

        stops = sorted({*hk.tstops, *(s for s in save_ts)}, key=lambda v: v * direction)
        stops = [v for v in stops if (v - t0) * direction > 0 and (t1 - v) * direction >= 0]
        if math.isfinite(t1) and (not stops or stops[-1] != t1):
            stops.append(t1)
        save = list(save_ts)
        i_save = 0
        if save and save[0] == t0:
            out.save_ts.append(t0)
            out.save_ys.append(y0)
            i_save = 1
        dt = getattr(controller, "dt", math.inf) or math.inf
        history_t: list[float] = []
        history_f: list[torch.Tensor] = []
        t, y, i_stop = t0, y0, 0
        while (t1 - t) * direction > 0:
            if st.n_steps >= max_steps:
                out.status = Status.MAX_STEPS
                break
            t_next = t + direction * dt
            if i_stop < len(stops) and (stops[i_stop] - t_next) * direction <= 1e-12 * abs(
                dt if math.isfinite(dt) else 1
            ):
                t_next = stops[i_stop]
                i_stop += 1
            h = t_next - t
            ends[0], ends[1] = t, t_next
            hk.call("callback_step", t, y.view(shape), h)
            f0 = field(t, y)
            history_t.insert(0, t)
            history_f.insert(0, f0)
            del history_t[self.order :], history_f[self.order :]
            if len(history_f) < self.order:
                y1 = self.starter.step(lambda s, v: field(s, v), t, y, h, f0, shape=None, stiffness=False).y1
            else:
                nodes = np.array([(s - t) / h for s in history_t])
                beta = torch.as_tensor(adams_weights(nodes), dtype=y.dtype, device=y.device)
                F = torch.stack(history_f, 1)
                y1 = torch.addmv(y, F, beta, alpha=h)
                if self.implicit:
                    m_nodes = np.concatenate([[1.0], nodes])
                    gamma = torch.as_tensor(adams_weights(m_nodes), dtype=y.dtype, device=y.device)
                    known = torch.addmv(y, F, gamma[1:], alpha=h)
                    for _ in range(self.max_iters):
                        f1 = field(t_next, y1)
                        y_new = known + (h * gamma[0]) * f1
                        done = bool(((y_new - y1).abs() <= atol + rtol * y_new.abs()).all())
                        y1 = y_new
                        if done:
                            break
            st.n_steps += 1
            st.n_accepted += 1
            out.step_ts.append(t)
            out.step_sizes.append(h)
            if hk.event is not None:
                res = SimpleNamespace(y1=y1, stages=[f0])
                if hk.event.crossed(self.starter, lambda s, v: field(s, v.reshape(-1)).view(shape), t, y,
                                    t_next, res, shape):  # fmt: skip
                    out.t_reached = t
                    return out
            t, y = t_next, y1
            while i_save < len(save) and save[i_save] == t:
                out.save_ts.append(t)
                out.save_ys.append(y)
                i_save += 1
            if save_steps and (not out.save_ts or out.save_ts[-1] != t):
                out.save_ts.append(t)
                out.save_ys.append(y)
            if not bool(torch.isfinite(y).all()):
                out.status = Status.NON_FINITE
                break
        out.t_reached = t
        out.fixed_steps = True
        return out

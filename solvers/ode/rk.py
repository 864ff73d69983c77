"""One explicit Runge–Kutta step, its error ratio and stiffness index, the initial step size, dense output.

The step works on flat state vectors (the solver reshapes once). Stage derivatives are written into one
``(stages, n)`` buffer, so every stage input, the error vector and the stiffness estimate are each a single
fused BLAS call; these estimates are ordinary tensors that keep their autograd history, which is what
makes them usable as regularizers (Pal et al., ICML 2021).

Stiffness (Shampine 1977; Hairer & Wanner II, IV.2): with stage inputs ``g_i, g_j`` and derivatives
``k_i, k_j``, ``ρ ≈ ‖k_j − k_i‖ / ‖g_j − g_i‖`` estimates the dominant eigenvalue's modulus, and the index
``S = |ρ h| / stability_size`` is near or above 1 when stability, not accuracy, limits the step. Since
``g_j − g_i = h Σ_m (a_jm − a_im) k_m``, ``S = ‖Kᵀ(e_j − e_i)‖ / (‖Kᵀ(a_j − a_i)‖ · stability_size)``:
one matrix product of the stage buffer with a fixed (stages × 2) matrix, then two norms.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from numpy.polynomial import polynomial as P
from sciml.solvers.ode.tableau import Tableau

__all__ = ["StepResult", "RungeKutta", "error_ratio", "initial_step_size"]

#: the vector field as the stepper calls it: (host time, state of the solve's shape) -> same shape
StageField = Callable[[float, torch.Tensor], torch.Tensor]


class GradientAppeared(Exception):
    """A step into reused buffers met a stage with autograd history (parameters that enter the field only
    after ``t0``): the caller must redo the step without a workspace."""


class StepResult(NamedTuple):
    """What one step produced.

    Attributes:
        y1: the proposed solution at ``t + h`` (flat).
        y_error: the embedded error vector ``ẽ = h Σ (b_i − b̂_i) k_i`` (None for fixed-step methods).
        stiffness_norms: ``(‖Kᵀ(e_j − e_i)‖, ‖Kᵀ(a_j − a_i)‖)`` (None without stiffness stages); turn into the
            stiffness index with :meth:`RungeKutta.stiffness_index`.
        stages: the ``(stages, n)`` buffer of stage derivatives ``k_i`` (for dense output and FSAL).
        nfe: function evaluations this step made (``k1`` excluded).
    """

    y1: torch.Tensor
    y_error: torch.Tensor | None
    stiffness_norms: torch.Tensor | None
    stages: torch.Tensor
    nfe: int


class _Coefficients(NamedTuple):
    a: list[torch.Tensor | None]
    b: torch.Tensor
    b_error: torch.Tensor | None
    stiffness: torch.Tensor | None  # (stages, 2)


class _Workspace:
    """Buffers for steps without autograd, with every view precomputed once: the stage derivatives ``K``
    ``(stages, n)`` (rows also viewed in the state's shape, so ``f``'s output is stored without a reshape;
    transposed column prefixes for the fused stage sums) and the stage inputs ``G`` (written in place by
    ``addmv(out=...)`` and handed to ``f`` through views in the state's shape)."""

    def __init__(self, s: int, y: torch.Tensor, shape: torch.Size | None = None):
        shape = shape if shape is not None else y.shape
        self.K = y.new_empty((s, y.shape[0]))
        self.G = y.new_empty((s, y.shape[0]))
        self.rows = list(self.K.view(s, *shape))  # one view per stage, made once
        self.inputs = [self.G[i].view(shape) for i in range(s)]
        Kt = self.K.t()
        self.prefix = [Kt[:, :i] for i in range(s + 1)]
        self.first = self.K[0]  # the flat row that receives k1
        self.coefficients: _Coefficients | None = None  # set by RungeKutta.workspace


class RungeKutta:
    """An explicit Runge–Kutta method built from a :class:`~sciml.solvers.ode.tableau.Tableau`.

    Coefficients are cast to each dtype/device once and cached.
    """

    def __init__(self, tableau: Tableau):
        self.tableau = tableau
        self._cache: dict[tuple[torch.dtype, torch.device], _Coefficients] = {}
        self._dense = np.array(tableau.dense) if tableau.dense is not None else None

    def __repr__(self) -> str:
        return f"RungeKutta({self.tableau.name})"

    def coefficients(self, dtype: torch.dtype, device: torch.device) -> _Coefficients:
        key = (dtype, device)
        if key not in self._cache:
            t = self.tableau
            s = t.n_stages

            def as_tensor(v):
                return torch.tensor(v, dtype=dtype, device=device)

            stiff = None
            if t.stiffness_stages is not None:
                i, j = t.stiffness_stages
                A = np.zeros((s, s))
                for r, row in enumerate(t.a):
                    A[r, :r] = row
                D = np.stack([np.eye(s)[j] - np.eye(s)[i], A[j] - A[i]], axis=1)
                stiff = as_tensor(D)
            self._cache[key] = _Coefficients(
                a=[as_tensor(row) if row else None for row in t.a],
                b=as_tensor(t.b),
                b_error=as_tensor(t.b_error) if t.b_error is not None else None,
                stiffness=stiff,
            )
        return self._cache[key]

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None) -> _Workspace:
        """Buffers for flat states like ``y`` whose field works on tensors of ``shape`` (default flat). Pass
        them to :meth:`step` in solves without autograd; the returned ``y1`` lives in them, so copy it before
        the buffers are used again."""
        workspace = _Workspace(self.tableau.n_stages, y, shape)
        workspace.coefficients = self.coefficients(y.dtype, y.device)
        return workspace

    def step(
        self,
        f: StageField,
        t: float,
        y: torch.Tensor,
        h: float,
        k1: torch.Tensor,
        *,
        shape: torch.Size | None = None,
        stiffness: bool = True,
        workspace: _Workspace | None = None,
    ) -> StepResult:
        """Take one step of size ``h`` from ``(t, y)``.

        Args:
            f: the vector field, called with a host time and a state of ``shape``; returns that shape.
            t, h: step start and size (host floats: step-size decisions are not differentiated).
            y: flat state ``(n,)``.
            shape: the state's shape as ``f`` sees it (default flat); a workspace brings its own.
            k1: ``f(t, y)`` (reused from the previous step's last stage for FSAL methods).
            stiffness: compute the stiffness norms.
            workspace: a buffer from :meth:`workspace` to write the stages into, for solves without
                autograd (in-place writes are slow to backpropagate); default: stack the stages.

        Returns:
            A :class:`StepResult`.
        """
        tab = self.tableau
        coef = workspace.coefficients if workspace is not None else self.coefficients(y.dtype, y.device)
        s, c, a = tab.n_stages, tab.c, coef.a
        g = y
        if workspace is not None:  # everything written in place into reused buffers (no autograd)
            rows, prefix, G, inputs = workspace.rows, workspace.prefix, workspace.G, workspace.inputs
            workspace.first.copy_(k1)
            for i in range(1, s):
                g = torch.addmv(y, prefix[i], a[i], alpha=h, out=G[i])
                k = f(t + c[i] * h, inputs[i])
                if k.requires_grad:
                    raise GradientAppeared
                rows[i].copy_(k)
            Kt = prefix[s]
        else:  # separate stage tensors, stacked: far cheaper to backpropagate than in-place writes
            shape = shape if shape is not None else y.shape
            ks = [k1]
            for i in range(1, s):
                g = torch.addmv(y, torch.stack(ks).t(), a[i], alpha=h)
                ks.append(f(t + c[i] * h, g.view(shape)).reshape(-1))
            Kt = torch.stack(ks).t()
        y1 = g if tab.fsal else torch.addmv(y, Kt, coef.b, alpha=h)
        y_error = torch.addmv(y, Kt, coef.b_error, beta=0, alpha=h) if coef.b_error is not None else None
        norms = None
        if stiffness and coef.stiffness is not None:
            norms = torch.linalg.vector_norm(torch.mm(Kt, coef.stiffness), dim=0)
        return StepResult(y1, y_error, norms, Kt.t(), s - 1)

    def stiffness_index(self, norms: torch.Tensor) -> torch.Tensor:
        """``S = |ρ h| / stability_size`` from :attr:`StepResult.stiffness_norms` (``(..., 2) -> (...)``)."""
        tiny = torch.finfo(norms.dtype).tiny
        return norms[..., 0] / norms[..., 1].clamp_min(tiny) / self.tableau.stability_size

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        """Dense output ``y(t0 + θh)`` for each θ in ``thetas`` (``(m,)`` -> ``(m, n)``).

        Raises:
            ValueError: the method has no dense output.
        """
        if self._dense is None:
            raise ValueError(f"method {self.tableau.name!r} has no dense output")
        weights = P.polyval(np.asarray(thetas, dtype=np.float64), self._dense.T).T  # (m, stages)
        w = torch.as_tensor(weights, dtype=y0.dtype, device=y0.device)
        return torch.addmm(y0.unsqueeze(0), w, stages, alpha=h)


def _error_norm(
    y_error: torch.Tensor,
    abs_y0: torch.Tensor,
    y1: torch.Tensor,
    rtol: float | torch.Tensor,
    atol: float | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``‖ẽ / (atol + rtol·max(|y0|, |y1|))‖₂`` and ``|y1|`` (reused as the next step's ``|y0|``)."""
    abs_y1 = y1.abs()
    peak = torch.maximum(abs_y0, abs_y1)
    scale = peak * rtol + atol if torch.is_tensor(rtol) else torch.add(atol, peak, alpha=rtol)
    return torch.linalg.vector_norm(y_error / scale), abs_y1


def error_ratio(
    y_error: torch.Tensor,
    y0: torch.Tensor,
    y1: torch.Tensor,
    rtol: float | torch.Tensor,
    atol: float | torch.Tensor,
) -> torch.Tensor:
    """The scaled error ``E = RMS(ẽ / (atol + rtol · max(|y0|, |y1|)))`` that decides accept (E ≤ 1).

    Differentiable with respect to everything it is given (the ERNODE regularizer of Pal et al. 2021).
    """
    norm, _ = _error_norm(y_error, y0.abs(), y1, rtol, atol)
    return norm / math.sqrt(y_error.numel())


def initial_step_size(
    f: StageField,
    t0: float,
    y0: torch.Tensor,
    f0: torch.Tensor,
    direction: float,
    order: int,
    rtol: float | torch.Tensor,
    atol: float | torch.Tensor,
    *,
    shape: torch.Size | None = None,
    part: slice = slice(None),
    span: float = math.inf,
) -> float:
    """Hairer's starting step (Hairer, Nørsett & Wanner I, II.4): one extra evaluation of ``f``.

    ``f`` takes states of ``shape`` (default flat); ``part`` restricts the norms to part of the flat state
    (tolerances then refer to that part); ``span`` = |t1 − t0| keeps the probe evaluation inside the
    interval (as scipy's), for fields defined only there.
    Returns the signed step size as a host float (a decision, not differentiated).
    """
    with torch.no_grad():
        y, f_0 = y0[part], f0[part]
        scale = y.abs() * rtol + atol
        n = math.sqrt(y.numel())
        d0 = float(torch.linalg.vector_norm(y / scale)) / n
        d1 = float(torch.linalg.vector_norm(f_0 / scale)) / n
        h0 = 1e-6 if d0 < 1e-5 or d1 < 1e-5 else 0.01 * d0 / d1
        if not (math.isfinite(h0) and h0 > 0):  # atol = 0 on an entry that starts at 0 but moves: d1 = inf
            h0 = 1e-6
        h0 = min(h0, span) if span > 0 else h0
        z = y0 + direction * h0 * f0
        f1 = f(t0 + direction * h0, z.view(shape) if shape is not None else z).reshape(-1)[part]
        d2 = float(torch.linalg.vector_norm((f1 - f_0) / scale)) / n / h0
        if max(d1, d2) <= 1e-15:
            h1 = max(1e-6, h0 * 1e-3)
        elif not math.isfinite(max(d1, d2)):  # pure relative control of an entry at 0: no scale to use
            h1 = h0
        else:
            h1 = (0.01 / max(d1, d2)) ** (1.0 / (order + 1))
        return direction * min(100 * h0, h1)

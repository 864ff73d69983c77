"""ESDIRK methods (singly diagonally implicit Runge–Kutta, explicit first stage) as data, and their step.

Stage ``i > 1`` of an ESDIRK step solves ``Y_i = y + h Σ_{j<i} a_ij k_j + hγ f(t + c_i h, Y_i)`` with the
same diagonal ``γ`` for every stage, so one factorisation of ``I − hγJ`` serves the whole step (and, kept,
several steps). The methods here are stiffly accurate (``y1`` is the last stage, whose derivative starts
the next step: FSAL) and L-stable, with an embedded solution that is an earlier stage.

Methods: ``kvaerno3`` (order 3, embedded 2, 4 stages) and ``kvaerno5`` (order 5, embedded 4, 7 stages) of
A. Kværnø, *Singly diagonally implicit Runge–Kutta methods with an explicit first stage*, BIT 44 (2004)
489–502 (coefficients as published there and in diffrax; checked against the order conditions by the
tests). Dense output is the cubic Hermite interpolant through ``(y0, f0)`` and ``(y1, f1)``.

Stages are solved by simplified Newton (:mod:`sciml.solvers.ode.newton`) without autograd history; their
derivatives with respect to ``y0`` and the parameters of ``f`` come from the implicit function theorem, so
the solution and the error estimates are differentiable without unrolling Newton iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sciml.solvers.ode.implicit import ImplicitCounters, ImplicitMethod
from sciml.solvers.ode.jacobian import (
    AutodiffJacobian,
    DenseLU,
    Jacobian,
    JacobianProvider,
    KrylovSolve,
    NewtonKrylov,
    jacobian_provider,
)
from sciml.solvers.ode.newton import FIXED_GRID_MAXITER, newton_stage, newton_tolerance
from sciml.solvers.ode.rk import StepResult

__all__ = ["ESDIRKTableau", "ESDIRK", "KVAERNO3", "KVAERNO5", "ESDIRK_TABLEAUS"]


@dataclass(frozen=True)
class ESDIRKTableau:
    """A stiffly accurate ESDIRK method.

    Args:
        name: short name.
        gamma: the diagonal ``γ`` (of stages 2 … s; stage 1 is explicit).
        a: strictly lower coefficients, row ``i`` has ``i`` entries (row 0 empty).
        b_embedded: weights of the embedded solution (``s`` entries).
        order, error_order: orders of the solution and of the embedded one.
        citation: the source of the coefficients.

    Derived:
        c: abscissae ``c_i = Σ_j a_ij + γ`` (``c_1 = 0``).
        b: the solution weights, the last row of the full matrix (stiffly accurate).
        predictor: per stage, weights on the earlier stage derivatives extrapolating ``k_i`` (see
            :func:`_predictor_rows`).

    Raises:
        ValueError: inconsistent shapes, or a last stage not at ``c = 1``.
    """

    name: str
    gamma: float
    a: tuple[tuple[float, ...], ...]
    b_embedded: tuple[float, ...]
    order: int
    error_order: int
    citation: str = ""
    c: tuple[float, ...] = field(init=False)
    b: tuple[float, ...] = field(init=False)
    predictor: tuple[tuple[float, ...], ...] = field(init=False)

    adaptive = True
    fsal = True
    dense = "hermite"
    stability_size = math.inf  # L-stable

    def __post_init__(self) -> None:
        s = len(self.a)
        if any(len(r) != i for i, r in enumerate(self.a)) or len(self.b_embedded) != s:
            raise ValueError(f"{self.name}: `a` needs i entries in row i and `b_embedded` one per stage")
        c = (0.0,) + tuple(math.fsum(r) + self.gamma for r in self.a[1:])
        if abs(c[-1] - 1.0) > 1e-12:
            raise ValueError(f"{self.name}: the last stage must be at c = 1 (stiffly accurate), got {c[-1]}")
        object.__setattr__(self, "c", c)
        object.__setattr__(self, "b", (*self.a[-1], self.gamma))
        object.__setattr__(self, "predictor", _predictor_rows(c))

    @property
    def n_stages(self) -> int:
        return len(self.a)

    def full_matrix(self) -> np.ndarray:
        """The ``(s, s)`` Butcher matrix ``A`` (γ on the diagonal from the second stage)."""
        s = self.n_stages
        A = np.zeros((s, s))
        for i, row in enumerate(self.a):
            A[i, :i] = row
            A[i, i] = self.gamma if i > 0 else 0.0
        return A


def _predictor_rows(c: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """Start values for the Newton iteration of each stage, as weights on the earlier stage derivatives.

    A stage at the same abscissa as an earlier one starts from that stage's value (row marked by a single
    ``nan`` followed by the index: handled by the stepper). Otherwise ``k_i`` is extrapolated by the
    polynomial through the first (at most three) earlier stages with distinct abscissae, evaluated at
    ``c_i`` (Lagrange weights; degree ≤ 2 keeps the extrapolation tame, as OrdinaryDiffEq's predictors)."""
    rows: list[tuple[float, ...]] = [()]
    for i in range(1, len(c)):
        same = [j for j in range(1, i) if abs(c[j] - c[i]) < 1e-14]
        if same:
            rows.append((math.nan, float(same[-1])))
            continue
        nodes: list[int] = []
        for j in range(i):
            if all(abs(c[j] - c[m]) > 1e-14 for m in nodes) and len(nodes) < 3:
                nodes.append(j)
        w = [0.0] * i
        for j in nodes:
            w[j] = math.prod((c[i] - c[m]) / (c[j] - c[m]) for m in nodes if m != j)
        rows.append(tuple(w))
    return tuple(rows)


# ------------------------------------------------------------------------------------------------ kvaerno3
# γ is the root of 6γ³ − 18γ² + 9γ − 1 = 0 in (1/3, 1/2) that makes the method L-stable (0.4358665215 in
# the paper); the other coefficients are Kværnø's closed forms in γ.
_G3 = 0.43586652150845899942
KVAERNO3 = ESDIRKTableau(
    "kvaerno3",
    gamma=_G3,
    a=(
        (),
        (_G3,),
        ((-4 * _G3**2 + 6 * _G3 - 1) / (4 * _G3), (-2 * _G3 + 1) / (4 * _G3)),
        (
            (6 * _G3 - 1) / (12 * _G3),
            -1 / ((24 * _G3 - 12) * _G3),
            (-6 * _G3**2 + 6 * _G3 - 1) / (6 * _G3 - 3),
        ),
    ),
    b_embedded=(
        (-4 * _G3**2 + 6 * _G3 - 1) / (4 * _G3), (-2 * _G3 + 1) / (4 * _G3), _G3, 0.0,
    ),
    order=3,
    error_order=2,
    citation="A. Kværnø, Singly diagonally implicit Runge-Kutta methods with an explicit first stage, "
    "BIT 44 (2004) 489-502; ESDIRK 3(2), 4 stages",
)  # fmt: skip

# ------------------------------------------------------------------------------------------------ kvaerno5
_G5 = 0.26
_A5 = (
    (),
    (_G5,),
    (0.13, 0.84033320996790809),
    (0.22371961478320505, 0.47675532319799699, -0.06470895363112615),
    (0.16648564323248321, 0.10450018841591720, 0.03631482272098715, -0.13090704451073998),
    (0.13855640231268224, 0.0, -0.04245337201752043, 0.02446657898003141, 0.61943039072480676),
    (0.13659751177640291, 0.0, -0.05496908796538376, -0.04118626728321046, 0.62993304899016403,
     0.06962479448202728),
)  # fmt: skip
KVAERNO5 = ESDIRKTableau(
    "kvaerno5",
    gamma=_G5,
    a=_A5,
    b_embedded=(*_A5[5], _G5, 0.0),
    order=5,
    error_order=4,
    citation="A. Kværnø, Singly diagonally implicit Runge-Kutta methods with an explicit first stage, "
    "BIT 44 (2004) 489-502; ESDIRK 5(4), 7 stages",
)

#: every ESDIRK method by name
ESDIRK_TABLEAUS: dict[str, ESDIRKTableau] = {t.name: t for t in (KVAERNO3, KVAERNO5)}


class ESDIRK(ImplicitMethod):
    """The stepper of an :class:`ESDIRKTableau`: simplified Newton per stage with one factorisation of
    ``I − hγJ`` shared by all stages, kept across steps.

    Jacobian and factorisation reuse (Hairer & Wanner II, IV.8): the Jacobian is kept across accepted steps
    and recomputed only when (a) a Newton iteration fails with a kept Jacobian (the step is retried at once
    with a fresh one), (b) a step taken with a kept Jacobian is rejected by the error test, or (c) the
    previous step's Newton iterations contracted slower than ``jacobian_rate``. With a kept Jacobian a stage
    is not accepted on its first correction alone: one more correction measures the contraction rate (the
    first iterate is kept), and a rate above :data:`~sciml.solvers.ode.newton.STALE_RATE` fails it as (a),
    as does a later stalling rate (a stale ``J`` can make Newton's corrections tiny while the stage is far
    from solved: Van der Pol in ε-form was reported converged with ``x(2) = −1.20`` instead of ``1.71``;
    this costs kvaerno5 ~3 % and kvaerno3 ~28 % more evaluations on the benchmark problems). The iteration
    matrix is
    refactorised only when the Jacobian changed or ``hγ`` moved by more than ``refactor_ratio`` relative
    to the factorised one (a nearby ``h`` still gives a convergent simplified Newton iteration). A Newton
    failure with a fresh Jacobian rejects the step (its error is reported as infinite, so the controller
    shrinks ``h``; with fixed steps the step's result is NaN and the solve ends ``NON_FINITE``).

    The error estimate is the embedded difference ``h Σ (b_i − b̂_i) k_i``, differentiable through the stages.
    With ``smooth_error`` it is filtered by ``(I − hγJ)⁻¹`` (Shampine's smoothing, as RADAU5 does) using the
    kept Jacobian — a matrix autograd treats as a constant, so the estimate's gradient would then not be
    the derivative of its value; off by default (it changed work by < 10 % on Robertson, Van der Pol and
    HIRES here). The stiffness index ``|h|‖J‖_∞ / 3.5068`` uses the kept Jacobian and is not differentiable.

    Matrix-free Newton–Krylov (``jac="krylov"`` or a :class:`~sciml.solvers.ode.jacobian.NewtonKrylov`):
    the same iteration and reuse rules with the kept Jacobian replaced by a linearisation point (products
    ``J v``) and the LU solve by preconditioned GMRES; no stiffness index (no ``‖J‖_∞``).

    Args:
        tableau: the coefficients.
        jacobian: a :class:`~sciml.solvers.ode.jacobian.JacobianProvider` (default: dense reverse-mode AD),
            or a :class:`~sciml.solvers.ode.jacobian.NewtonKrylov`, which is also the linear solver.
        linear_solver: a linear-solve strategy (default :class:`~sciml.solvers.ode.jacobian.DenseLU`; not
            with ``NewtonKrylov``).
        max_newton: Newton iterations allowed per stage.
        jacobian_rate: contraction rate above which the next step recomputes the Jacobian.
        refactor_ratio: relative change of ``hγ`` that triggers a refactorisation.
        smooth_error: filter the error estimate by ``(I − hγJ)⁻¹``.
        newton_kappa: the Newton convergence threshold ``κ`` in the tolerance-scaled norm (default
            :func:`~sciml.solvers.ode.newton.newton_tolerance` of ``rtol``).

    Raises:
        ValueError: a setting out of range.
    """

    def __init__(
        self,
        tableau: ESDIRKTableau,
        jacobian: JacobianProvider | None = None,
        linear_solver: DenseLU | NewtonKrylov | None = None,
        max_newton: int = 10,
        jacobian_rate: float = 0.2,
        refactor_ratio: float = 0.2,
        smooth_error: bool = False,
        newton_kappa: float | None = None,
    ):
        if int(max_newton) != max_newton or max_newton < 2:
            raise ValueError(f"`max_newton` must be an integer >= 2, got {max_newton!r}")
        if not 0 < jacobian_rate < 1:
            raise ValueError(f"`jacobian_rate` must lie in (0, 1), got {jacobian_rate!r}")
        if not refactor_ratio >= 0:
            raise ValueError(f"`refactor_ratio` must be >= 0, got {refactor_ratio!r}")
        self.tableau = tableau
        self.jacobian = jacobian if jacobian is not None else AutodiffJacobian()
        if isinstance(self.jacobian, NewtonKrylov):
            if linear_solver is not None and linear_solver is not self.jacobian:
                raise ValueError("NewtonKrylov is its own linear solver (GMRES); do not pass `linear_solver`")
            linear_solver = self.jacobian
        elif isinstance(linear_solver, NewtonKrylov):
            raise ValueError(
                "pass NewtonKrylov as the Jacobian option (jac=NewtonKrylov(...)), not `linear_solver`"
            )
        self.linear_solver = linear_solver if linear_solver is not None else DenseLU()
        self.max_newton = int(max_newton)
        self.jacobian_rate = float(jacobian_rate)
        self.refactor_ratio = float(refactor_ratio)
        self.smooth_error = bool(smooth_error)
        if newton_kappa is not None and not 0 < newton_kappa < 1:
            raise ValueError(f"`newton_kappa` must lie in (0, 1), got {newton_kappa!r}")
        self.kappa = newton_kappa
        self.counters = ImplicitCounters()
        self.rtol, self.atol = 1e-6, 1e-9
        self._entry_tols = None
        self._J: Jacobian | None = None
        self._J_at: tuple | None = None  # (t, y) where the kept Jacobian was computed
        self._W = None
        self._W_hg: float | None = None
        self._start: tuple | None = None  # (t, y, whether the Jacobian was kept) of the last step
        self._slow = False  # the last step's Newton iterations contracted slowly
        self.newton_failed = False  # the last step's Newton iteration failed with a fresh Jacobian
        self.fixed_grid = False  # set by solve for fixed steps, which cannot shrink: see newton_stage
        self._eta = 1.0
        A = tableau.full_matrix()
        self._a = [torch.tensor(A[i, :i]) for i in range(tableau.n_stages)]
        self._error_weights = torch.tensor(np.array(tableau.b) - np.array(tableau.b_embedded))

    def __repr__(self) -> str:
        return f"ESDIRK({self.tableau.name})"

    def for_solve(self, jac: Any = None) -> ESDIRK:
        provider = jacobian_provider(jac, matrix_free=True) if jac is not None else self.jacobian
        solver = (
            None
            if isinstance(provider, NewtonKrylov) or isinstance(self.linear_solver, NewtonKrylov)
            else (self.linear_solver)
        )
        return ESDIRK(
            self.tableau, provider, solver, self.max_newton, self.jacobian_rate,
            self.refactor_ratio, self.smooth_error, self.kappa,
        )  # fmt: skip

    def begin(self, rtol: float | torch.Tensor, atol: float | torch.Tensor) -> None:
        """Start one integration with its tolerances, which scale the Newton convergence test (tensors: their
        smallest entry; per entry where rtol is 0 in some entries and atol in others, whose minima would
        make a zero scale)."""
        self.rtol = float(rtol.min()) if torch.is_tensor(rtol) else float(rtol)
        self.atol = float(atol.min()) if torch.is_tensor(atol) else float(atol)
        # a zero atol arrives as the dtype's smallest normal number (check_tolerances)
        degenerate = self.rtol == 0 and torch.is_tensor(atol) and self.atol == torch.finfo(atol.dtype).tiny
        self._entry_tols = (rtol, atol) if degenerate else None

    def _newton_scale(self, yd: torch.Tensor) -> torch.Tensor:
        """``atol + rtol·|y|`` of the Newton test."""
        if self._entry_tols is not None:
            rtol, atol = self._entry_tols
            if torch.is_tensor(rtol) and rtol.numel() == yd.numel() and atol.numel() == yd.numel():
                return atol + rtol * yd.abs()
        return self.atol + self.rtol * yd.abs()

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None) -> None:
        return None  # stages are stacked; the Newton iterations dominate

    # ------------------------------------------------------------------------------------ Jacobian, W
    def _jacobian(self, f, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor, fresh: bool):
        """The Jacobian for a step from ``(t, y)``: the kept one unless ``fresh`` or the reuse rules say
        otherwise (see the class docstring). Returns ``(J, computed_here)``."""
        retry = self._start is not None and self._start[0] == t and self._start[1] is y
        here = self._J_at is not None and self._J_at[0] == t and self._J_at[1] is y
        if self._J_at is not None and self._J_at[1].numel() != y.numel():  # another system (an adjoint's)
            self._J = None
        if self._J is not None and not fresh and (here or not (self._slow or (retry and self._start[2]))):
            return self._J, here
        with torch.no_grad():
            J = self.counted_jacobian(f, t, y.detach(), shape, fy.detach())
        self._J, self._J_at, self._W, self._W_hg, self._slow = J, (t, y), None, None, False
        return J, True

    def _factor(self, hg: float):
        if self._W is None or abs(hg / self._W_hg - 1.0) > self.refactor_ratio:
            self._W = self.linear_solver.factor(self._J, 1.0 / hg)
            self._W_hg = hg
            solver = self.linear_solver
            if not (isinstance(solver, NewtonKrylov) and solver.preconditioner is None):
                self.counters.nlu += 1  # a factorisation (or a preconditioner's set-up); GMRES alone: none
        return self._W, self._W_hg

    # ------------------------------------------------------------------------------------------ step
    def step(
        self,
        f,
        t: float,
        y: torch.Tensor,
        h: float,
        k1: torch.Tensor,
        *,
        shape: torch.Size | None = None,
        stiffness: bool = True,
        workspace: Any = None,
    ) -> StepResult:
        """One ESDIRK step of size ``h`` from ``(t, y)`` (``y`` flat, ``k1 = f(t, y)`` flat); the contract
        of :meth:`sciml.solvers.ode.rk.RungeKutta.step`. ``stages`` holds the stage derivatives ``k_i``
        (the last is ``f(t + h, y1)``, the next step's ``k1``)."""
        shape = shape if shape is not None else y.shape
        track = torch.is_grad_enabled() and (y.requires_grad or k1.requires_grad)
        nfe = 0
        fresh = False
        while True:
            J, computed_here = self._jacobian(f, t, y, shape, k1, fresh)
            K, y1, ok, iterations, slow = self._stages(f, t, y, h, k1, shape, track, not computed_here)
            nfe += iterations
            if ok or computed_here:
                break
            self.counters.n_newton_fail += 1
            fresh = True  # the kept Jacobian failed: retry this step at once with a fresh one
        self._start = (t, y, not computed_here)
        self._slow = slow
        norms = None
        if stiffness and not getattr(J, "matrix_free", False):
            rho = J.norm_inf().detach() * abs(h)
            norms = torch.stack([rho, torch.ones_like(rho)])
        self.newton_failed = not ok
        if not ok:  # reject: the controller shrinks h (an infinite error); fixed steps end there
            self.counters.n_newton_fail += 1
            self._slow = True
            bad = torch.full_like(y, math.nan)
            return StepResult(bad, torch.full_like(y, math.inf), norms, K, nfe)
        y_error = h * torch.mv(K.t(), self._weights(self._error_weights, y))
        if self.smooth_error:
            W, hg_w = self._factor(h * self.tableau.gamma)
            y_error = W.solve(y_error) / hg_w
        return StepResult(y1, y_error, norms, K, nfe)

    def _weights(self, w: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return w if w.dtype == y.dtype and w.device == y.device else w.to(y)

    def _stages(self, f, t, y, h, k1, shape, track, kept=False):
        """Solve the stages; returns ``(K, y1, converged, Newton iterations, slow)``: the stage derivatives
        ``(s, n)``, the last stage (the solution: stiffly accurate) and whether the iterations were slow."""
        tab = self.tableau
        hg = h * tab.gamma
        W, hg_w = self._factor(hg)

        def lin(v):
            return W.solve(v) / hg_w

        yd = y.detach()
        scale = self._newton_scale(yd)
        kappa = self.kappa if self.kappa is not None else newton_tolerance(self.rtol, y.dtype)
        block = self._J.matrix.shape[-1] if self._J.blocks else None
        if hasattr(W, "set_tolerance"):  # iterative solves stop at a fraction of Newton's tolerance
            W.set_tolerance(scale, kappa)
        transpose = W.solve_transpose if isinstance(W, KrylovSolve) else None
        ks = [k1]
        Ys = [y]
        iterations, worst, ok = 0, 0.0, True
        max_iter = max(self.max_newton, FIXED_GRID_MAXITER) if self.fixed_grid else self.max_newton
        for i in range(1, tab.n_stages):
            a = self._weights(self._a[i], y)
            R = torch.addmv(y, torch.stack(ks, 1), a, alpha=h)
            pred = tab.predictor[i]
            if pred and math.isnan(pred[0]):
                Y0 = Ys[int(pred[1])].detach()
            else:
                kp = sum(w * k.detach() for w, k in zip(pred, ks) if w != 0.0)
                Y0 = R.detach() + hg * kp
            ti = t + tab.c[i] * h

            def fi(z, ti=ti):
                return f(ti, z.view(shape)).reshape(-1)

            out = newton_stage(
                fi, R, Y0, hg, lin, scale, kappa, self._eta, max_iter, track, block, transpose, kept,
                self.fixed_grid,
            )  # fmt: skip
            iterations += out.iterations
            self.counters.n_newton += out.iterations
            self._eta = out.eta
            worst = max(worst, out.rate if math.isfinite(out.rate) else math.inf)
            if not out.converged:
                ok = False
                break
            Ys.append(out.Y)
            ks.append((out.Y - R) / hg)
        if not ok:
            K = torch.full((tab.n_stages, y.numel()), math.nan, dtype=y.dtype, device=y.device)
            return K, None, False, iterations, True
        return torch.stack(ks), Ys[-1], True, iterations, worst > self.jacobian_rate

    def _hermite_ends(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(y1, k_1, k_s)``: the end point and the end slopes the cubic Hermite output goes through."""
        b = torch.as_tensor(self.tableau.b, dtype=y0.dtype, device=y0.device)
        return y0 + h * torch.mv(stages.t(), b), stages[0], stages[-1]

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        """Cubic Hermite dense output through ``(y0, k_1)`` and ``(y1, k_s)`` (``(m,)`` -> ``(m, n)``)."""
        th = torch.as_tensor(np.asarray(thetas, dtype=np.float64), dtype=y0.dtype, device=y0.device)
        y1, f0, f1 = self._hermite_ends(y0, stages, h)
        t2, t3 = th * th, th * th * th
        h00, h10, h01, h11 = 2 * t3 - 3 * t2 + 1, t3 - 2 * t2 + th, -2 * t3 + 3 * t2, t3 - t2
        return h00[:, None] * y0 + h01[:, None] * y1 + (h * h10)[:, None] * f0 + (h * h11)[:, None] * f1

    def dense_point(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, theta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y(t0 + θh), dy/dθ)`` of the cubic Hermite dense output (flat)."""
        p = self.interpolate(y0, stages, h, np.array([theta]))[0]
        y1, f0, f1 = self._hermite_ends(y0, stages, h)
        th, t2 = theta, theta * theta
        dp = (6 * t2 - 6 * th) * (y0 - y1) + (h * (3 * t2 - 4 * th + 1)) * f0 + (h * (3 * t2 - 2 * th)) * f1
        return p, dp

    def iteration_solve(self, r: torch.Tensor) -> torch.Tensor:
        """``(I/(hγ) − J)⁻¹ r`` with the kept factorisation (its ``hγ`` within ``refactor_ratio`` of the
        step's)."""
        return self._W.solve(r)

"""Rosenbrock methods (linearly implicit Runge–Kutta) as data, and their step.

A Rosenbrock method replaces the Newton iteration of an implicit Runge–Kutta method by one linear solve per
stage with the same matrix ``W = I/(hγ) − J`` (``J = ∂f/∂y`` at the step's start). In the transformed form
of Hairer & Wanner (*Solving ODEs II*, IV.7, eq. 7.25) that the coefficients below use, the stages are

    (I/(hγ) − J) u_i = f(t + c_i h, y + Σ_j a_ij u_j) + Σ_j (C_ij / h) u_j + d_i h ∂f/∂t,

``y1 = y + Σ m_i u_i``, the embedded error ``Σ e_i u_i`` and the dense output
``y(t + θh) = y + Σ P_i(θ) u_i`` with per-stage polynomials ``P_i``. Every stage is a linear solve with the
one factorisation, so a step is a fixed, short sequence of differentiable operations: autograd through it is
exact (no Newton iteration to unroll) and the error estimates are differentiable with respect to ``y0`` and
the parameters of ``f`` — the regularizers of Pal et al. (2021) work under these stiff methods unchanged.

Methods: ``rosenbrock23`` (Shampine & Reichelt's ode23s pair, L-stable order 2 with an order-3 error
estimate, a W-method: it tolerates an approximate Jacobian), ``rodas4`` (Hairer & Wanner's RODAS, order 4(3))
and ``rodas5p`` (Steinebach 2023, order 5(4), stiffly accurate, with a 4th-order dense output).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.polynomial import polynomial as P
from sciml.solvers.ode.implicit import ImplicitCounters, ImplicitMethod
from sciml.solvers.ode.jacobian import (
    AutodiffJacobian,
    DenseLU,
    FiniteDifferenceJacobian,
    Jacobian,
    JacobianProvider,
    jacobian_provider,
)
from sciml.solvers.ode.rk import StepResult

__all__ = ["RosenbrockTableau", "Rosenbrock", "ROSENBROCK23", "RODAS4", "RODAS5P", "ROSENBROCK_TABLEAUS"]


@dataclass(frozen=True)
class RosenbrockTableau:
    """A Rosenbrock method in the transformed form (see the module docstring).

    Args:
        name: short name.
        gamma: the diagonal ``γ``.
        a: stage-input coefficients, row ``i`` has ``i`` entries.
        C: stage-coupling coefficients, row ``i`` has ``i`` entries.
        c: abscissae.
        d: coefficients of ``h ∂f/∂t`` per stage.
        m: solution weights.
        m_error: error weights (``ẽ = Σ e_i u_i``).
        order, error_order: orders of the solution and of the embedded one.
        dense: per stage, polynomial coefficients in θ (ascending) of ``P_i(θ)``.
        citation: the source of the coefficients.
        w_method: the order conditions hold for any matrix in place of ``J`` (a Rosenbrock–W method), so
            the stepper may keep a Jacobian across steps; False for methods whose order needs the exact
            Jacobian of the step's start.

    Derived:
        fsal: the last stage is evaluated at ``y1`` (its ``f`` value starts the next step).
        stiffly_accurate: ``y1`` is the last stage's input plus its solve (``m = (a_s, 1)``: Rodas): in a
            stiff mode ``y1`` lands on the slow manifold whatever ``h``, so the embedded estimate does not see
            the dense output's error between the end points, and ``dense_error="auto"`` tests it.

    Raises:
        ValueError: inconsistent shapes or a dense output that does not reproduce ``y0``/``y1``.
    """

    name: str
    gamma: float
    a: tuple[tuple[float, ...], ...]
    C: tuple[tuple[float, ...], ...]
    c: tuple[float, ...]
    d: tuple[float, ...]
    m: tuple[float, ...]
    m_error: tuple[float, ...]
    order: int
    error_order: int
    dense: tuple[tuple[float, ...], ...]
    citation: str = ""
    w_method: bool = False
    fsal: bool = field(init=False)
    stiffly_accurate: bool = field(init=False)

    adaptive = True
    stability_size = math.inf  # L-stable: the whole left half-plane

    def __post_init__(self) -> None:
        s = len(self.c)
        for label, rows in (("a", self.a), ("C", self.C)):
            if len(rows) != s or any(len(r) != i for i, r in enumerate(rows)):
                raise ValueError(
                    f"{self.name}: `{label}` must have one row per stage with i entries in row i"
                )
        if not len(self.d) == len(self.m) == len(self.m_error) == len(self.dense) == s:
            raise ValueError(f"{self.name}: `d`, `m`, `m_error` and `dense` need one entry per stage")
        at_one = [float(np.polynomial.Polynomial(p)(1.0)) for p in self.dense]
        at_zero = [float(np.polynomial.Polynomial(p)(0.0)) for p in self.dense]
        if max(abs(x - y) for x, y in zip(at_one, self.m)) > 1e-9 or max(map(abs, at_zero)) > 1e-14:
            raise ValueError(f"{self.name}: the dense output must give y0 at θ = 0 and y1 at θ = 1")
        fsal = self.c[-1] == 1.0 and np.allclose(self.a[-1], self.m[:-1], atol=1e-14) and self.m[-1] == 0
        object.__setattr__(self, "fsal", bool(fsal))
        stiffly = s > 1 and np.allclose(self.a[-1], self.m[:-1], atol=1e-14) and self.m[-1] == 1.0
        object.__setattr__(self, "stiffly_accurate", bool(stiffly))

    @property
    def n_stages(self) -> int:
        return len(self.c)

    @classmethod
    def from_gamma_form(
        cls,
        name: str,
        alpha: np.ndarray,
        Gamma: np.ndarray,
        b: np.ndarray,
        b_error: np.ndarray,
        dense_k: np.ndarray,
        **kwargs: Any,
    ) -> RosenbrockTableau:
        """Build the transformed form from the classical one ``(I − hγJ) K_i = h f(y + Σ α_ij K_j) +
        hJ Σ_{j<i} Γ_ij K_j + h² γ_i f_t`` (``Γ`` lower triangular with diagonal γ, ``γ_i = Σ_j Γ_ij``):
        ``u = Γ K``, ``a = αΓ⁻¹``, ``C = diag(1/γ) − Γ⁻¹``, ``m = Γ⁻ᵀb`` (Hairer & Wanner II, IV.7).

        ``dense_k`` holds, per stage, the polynomial coefficients of the dense output in the ``K`` basis.
        """
        G = np.asarray(Gamma, dtype=np.float64)
        Gi = np.linalg.inv(G)
        gamma = float(G[0, 0])
        a = np.asarray(alpha, dtype=np.float64) @ Gi
        C = np.diag(1.0 / np.diag(G)) - Gi
        s = len(G)
        return cls(
            name=name,
            gamma=gamma,
            a=tuple(tuple(float(x) for x in a[i, :i]) for i in range(s)),
            C=tuple(tuple(float(x) for x in C[i, :i]) for i in range(s)),
            c=tuple(float(x) for x in np.asarray(alpha).sum(1)),
            d=tuple(float(x) for x in G.sum(1)),
            m=tuple(float(x) for x in Gi.T @ np.asarray(b, dtype=np.float64)),
            m_error=tuple(float(x) for x in Gi.T @ np.asarray(b_error, dtype=np.float64)),
            dense=tuple(tuple(float(x) for x in row) for row in Gi.T @ np.asarray(dense_k, dtype=np.float64)),
            **kwargs,
        )


def _rodas_dense(m: tuple[float, ...], hs: list[tuple[float, ...]]) -> tuple[tuple[float, ...], ...]:
    """OrdinaryDiffEq's Rodas interpolant ``y(θ) = (1−θ)y0 + θ(y1 + (1−θ)(D_1 + θ(D_2 + θ D_3)))`` with
    ``D_l = Σ_i h_li u_i``, as per-stage polynomials ``θ m_i + θ(1−θ) Σ_l θ^{l−1} h_li``."""
    s = len(m)
    rows = []
    for i in range(s):
        poly = P.polymul([0.0, m[i]], [1.0])
        for ell, h in enumerate(hs):
            term = P.polymul([0.0] * (ell + 1) + [h[i]], [1.0, -1.0])  # θ^{ℓ+1} (1 − θ) h_i
            poly = P.polyadd(poly, term)
        rows.append(tuple(np.pad(poly, (0, len(hs) + 2 - len(poly)))))
    return tuple(rows)


def _rodas(name, gamma, a, C, c, d, h_dense, order, error_order, citation) -> RosenbrockTableau:
    """A stiffly accurate Rodas method given as OrdinaryDiffEq writes it: stages ``s−1`` and ``s`` add
    their own stage to the input (``u ← u + u_{s−1}``), ``y1 = u + u_s`` and the error is ``u_s``."""
    s = len(C) + 1
    last = tuple(a[-1])
    rows = [tuple(r) for r in a]
    while len(rows) < s - 1:  # stages after the last given row add the previous stage to the input
        rows.append((*last, *(1.0,) * (len(rows) + 1 - len(last))))
    m = (*last, *(1.0,) * (s - len(last)))
    m_error = (0.0,) * (s - 1) + (1.0,)
    dense = _rodas_dense(m, [tuple(h) + (0.0,) * (s - len(h)) for h in h_dense])
    return RosenbrockTableau(
        name=name, gamma=gamma, a=((),) + tuple(rows), C=((),) + tuple(tuple(r) for r in C), c=c,
        d=tuple(d) + (0.0,) * (s - len(d)), m=m, m_error=m_error, order=order, error_order=error_order,
        dense=dense, citation=citation,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ rosenbrock23
_D = 1.0 / (2.0 + math.sqrt(2.0))
_E32 = 6.0 + math.sqrt(2.0)
ROSENBROCK23 = RosenbrockTableau.from_gamma_form(
    "rosenbrock23",
    alpha=np.array([[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    Gamma=np.array([[_D, 0.0, 0.0], [-_D, _D, 0.0], [_D * (_E32 - 2.0), -_E32 * _D, _D]]),
    b=np.array([0.0, 1.0, 0.0]),
    b_error=np.array([1 / 6, -1 / 3, 1 / 6]),
    # y(θ) = y0 + θ(1−θ)/(1−2d) K1 + θ(θ−2d)/(1−2d) K2
    dense_k=np.array([[0.0, 1.0, -1.0], [0.0, -2 * _D, 1.0], [0.0, 0.0, 0.0]]) / (1 - 2 * _D),
    order=2,
    error_order=3,
    w_method=True,  # checked by a test: order 2 with a deliberately wrong Jacobian
    citation="Shampine & Reichelt, The MATLAB ODE suite, SIAM J. Sci. Comput. 18 (1997) (ode23s); "
    "written in Γ form as in Hairer & Wanner II, IV.7",
)

# ------------------------------------------------------------------------------------------------ rodas4
RODAS4 = _rodas(
    "rodas4",
    gamma=0.25,
    a=[
        (1.544,),
        (0.9466785280815826, 0.2557011698983284),
        (3.314825187068521, 2.896124015972201, 0.9986419139977817),
        (1.221224509226641, 6.019134481288629, 12.53708332932087, -0.6878860361058950),
    ],
    C=[
        (-5.6688,),
        (-2.430093356833875, -0.2063599157091915),
        (-0.1073529058151375, -9.594562251023355, -20.47028614809616),
        (7.496443313967647, -10.24680431464352, -33.99990352819905, 11.70890893206160),
        (8.083246795921522, -7.981132988064893, -31.52159432874371, 16.31930543123136, -6.058818238834054),
    ],
    c=(0.0, 0.386, 0.21, 0.63, 1.0, 1.0),
    d=(0.25, -0.1043, 0.1035, -0.0362),
    h_dense=[
        (10.12623508344586, -7.487995877610167, -34.80091861555747, -7.992771707568823, 1.025137723295662),
        (-0.6762803392801253, 6.087714651680015, 16.43084320892478, 24.76722511418386, -6.594389125716872),
    ],
    order=4,
    error_order=3,
    citation="Hairer & Wanner, Solving ODEs II (1996), RODAS; dense output as in OrdinaryDiffEq",
)

# ------------------------------------------------------------------------------------------------ rodas5p
RODAS5P = _rodas(
    "rodas5p",
    gamma=0.21193756319429014,
    a=[
        (3.0,),
        (2.849394379747939, 0.45842242204463923),
        (-6.954028509809101, 2.489845061869568, -10.358996098473584),
        (2.8029986275628964, 0.5072464736228206, -0.3988312541770524, -0.04721187230404641),
        (-7.502846399306121, 2.561846144803919, -11.627539656261098, -0.18268767659942256,
         0.030198172008377946),
    ],
    C=[
        (-14.155112264123755,),
        (-17.97296035885952, -2.859693295451294),
        (147.12150275711716, -1.41221402718213, 71.68940251302358),
        (165.43517024871676, -0.4592823456491126, 42.90938336958603, -5.961986721573306),
        (24.854864614690072, -3.0009227002832186, 47.4931110020768, 5.5814197821558125, -0.6610691825249471),
        (30.91273214028599, -3.1208243349937974, 77.79954646070892, 34.28646028294783, -19.097331116725623,
         -28.087943162872662),
        (37.80277123390563, -3.2571969029072276, 112.26918849496327, 66.9347231244047, -40.06618937091002,
         -54.66780262877968, -9.48861652309627),
    ],
    c=(0.0, 0.6358126895828704, 0.4095798393397535, 0.9769306725060716, 0.4288403609558664, 1.0, 1.0, 1.0),
    d=(0.21193756319429014, -0.42387512638858027, -0.3384627126235924, 1.8046452872882734, 2.325825639765069),
    h_dense=[
        (25.948786856663858, -2.5579724845846235, 10.433815404888879, -2.3679251022685204, 0.524948541321073,
         1.1241088310450404, 0.4272876194431874, -0.17202221070155493),
        (-9.91568850695171, -0.9689944594115154, 3.0438037242978453, -24.495224566215796, 20.176138334709044,
         15.98066361424651, -6.789040303419874, -6.710236069923372),
        (11.419903575922262, 2.8879645146136994, 72.92137995996029, 80.12511834622643, -52.072871366152654,
         -59.78993625266729, -0.15582684282751913, 4.883087185713722),
    ],
    order=5,
    error_order=4,
    citation="Steinebach, Construction of Rosenbrock-Wanner method Rodas5P and numerical benchmarks within "
    "the Julia Differential Equations package, BIT Numer. Math. 63 (2023); coefficients as in OrdinaryDiffEq",
)  # fmt: skip

#: every Rosenbrock method by name
ROSENBROCK_TABLEAUS: dict[str, RosenbrockTableau] = {t.name: t for t in (ROSENBROCK23, RODAS4, RODAS5P)}


_FAILED = object()


def _forward_time_derivative(f, t: float, y: torch.Tensor, shape: torch.Size) -> torch.Tensor | None:
    """``∂f/∂t`` at ``(t, y)`` by forward-mode AD (one call of ``f`` with a dual time tensor); None when the
    output carries no tangent (``f`` does not use ``t`` through differentiable operations). Differentiable
    with respect to ``y`` and the parameters of ``f`` where autograd records."""
    import torch.autograd.forward_ad as fwAD

    one = torch.ones((), dtype=y.dtype, device=y.device)
    with fwAD.dual_level():
        with warnings.catch_warnings():  # the first make_dual scripts torch's decompositions: a FutureWarning
            warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
            tt = fwAD.make_dual(torch.scalar_tensor(t, dtype=y.dtype, device=y.device), one)
        if fwAD.unpack_dual(tt).tangent is None:  # forward AD is off here (inside an autograd.Function's
            raise RuntimeError("forward-mode AD is unavailable")  # forward, inference mode): no verdict
        out = f(tt, y.view(shape))
        tangent = fwAD.unpack_dual(out).tangent
    return None if tangent is None else tangent.reshape(-1)


class _Coefficients:
    def __init__(self, tab: RosenbrockTableau, dtype: torch.dtype, device: torch.device):
        def as_tensor(v):
            return torch.tensor(v, dtype=dtype, device=device)

        self.a = [as_tensor(r) if r else None for r in tab.a]
        self.C = [as_tensor(r) if r else None for r in tab.C]
        self.m = as_tensor(tab.m)
        self.m_error = as_tensor(tab.m_error)
        self.has_C = [any(x != 0 for x in r) for r in tab.C]


class Rosenbrock(ImplicitMethod):
    """The stepper of a :class:`RosenbrockTableau`, with a Jacobian provider and a linear-solve strategy.

    Per solve (:meth:`for_solve` makes a fresh instance) it keeps the Jacobian of the last step start — a
    rejected step retries from the same point without recomputing it, only refactorising ``W`` for the new
    ``h`` — and the counters ``njev``, ``nlu``. For a W-method (``tableau.w_method``, e.g. rosenbrock23)
    the Jacobian is also kept across accepted steps, as a W-method's order does not depend on it — but
    only where a Jacobian costs more than four steps' evaluations (``n > 4 ×`` evaluations per step), since
    the embedded error estimate degrades with a stale matrix and the extra rejections cost more than small
    Jacobians save (measured: 1.6× the work on Robertson, n = 3; 0.41× on POLLU, n = 20). A kept Jacobian
    is recomputed when a step taken with it is rejected (as in MATLAB's ode23s), after which it may serve
    half as many steps (doubling again, up to ``max_jacobian_age``, after each term without a rejection).
    ``W`` is refactorised only when ``h`` or the Jacobian changed. Rodas4 and Rodas5P are not W-methods
    (their order conditions use the exact Jacobian), so they compute one Jacobian per step start.

    Args:
        tableau: the coefficients.
        jacobian: a :class:`~sciml.solvers.ode.jacobian.JacobianProvider` (default: dense forward-mode AD).
        linear_solver: a linear-solve strategy (default :class:`~sciml.solvers.ode.jacobian.DenseLU`).
        max_jacobian_age: for W-methods, the most steps one Jacobian serves (1 recomputes it every step).

    Raises:
        ValueError: ``max_jacobian_age`` < 1.

    ``∂f/∂t`` (needed for full order on non-autonomous problems) is computed at every Jacobian (for a
    W-method every step) by forward-mode AD in ``t`` — exact, one evaluation of ``f`` — where the field
    takes a time tensor (fields given to :func:`~sciml.solvers.ode.solve`); a field whose output carries no
    tangent in ``t`` at the first step (and whose difference probe agrees) is autonomous and skips it from
    then on. Fields reached only with host times (the continuous adjoint's) or that forward AD cannot
    evaluate get a forward difference every time instead (see :meth:`_time_derivative`), unless the field is
    marked ``f.autonomous = True`` (the continuous adjoint's backward field, where the forward solve found
    the user's field autonomous: :attr:`found_autonomous`).
    """

    def __init__(
        self,
        tableau: RosenbrockTableau,
        jacobian: JacobianProvider | None = None,
        linear_solver: DenseLU | None = None,
        max_jacobian_age: int = 20,
    ):
        if int(max_jacobian_age) != max_jacobian_age or max_jacobian_age < 1:
            raise ValueError(f"`max_jacobian_age` must be an integer >= 1, got {max_jacobian_age!r}")
        self.tableau = tableau
        self.max_jacobian_age = int(max_jacobian_age)
        self.jacobian = jacobian if jacobian is not None else AutodiffJacobian()
        self.linear_solver = linear_solver if linear_solver is not None else DenseLU()
        self.counters = ImplicitCounters()
        self._coef: dict[tuple, _Coefficients] = {}
        self._point: tuple | None = None  # (t, y) of the cached Jacobian
        self._J: Jacobian | None = None
        self._ft: torch.Tensor | None = None
        self._W = None
        self._W_h: float | None = None
        self._time_mode: str | None = None  # how ∂f/∂t is had: None (not yet), "ad", "fd", "autonomous"
        self._warned = False  # the gradient warning of a finite-difference Jacobian (once per solve)
        self._start: tuple | None = None  # (t, y) of the last step's start
        self._age = 0  # steps the current Jacobian has served
        self._limit = self.max_jacobian_age  # steps it may serve: halved by a rejection, doubled by a term
        dense = np.array(tableau.dense)
        self._dense = dense
        self._dense_derivative = P.polyder(dense.T, axis=0)  # (degree, stages): dP_i/dθ
        # rosenbrock23's dense output is of its solution's order, built from the stages its end point (not
        # slaved to the manifold) and its order-3 estimate see: on Prothero–Robinson its interpolant erred as
        # much as its end point (2e-4 at rtol 1e-3 untested), and testing it doubled its evaluations (2 a
        # step) and cost 1.4-1.5x work on POLLU, Robertson and Van der Pol without changing an error
        self.dense_error_auto = tableau.stiffly_accurate

    def __repr__(self) -> str:
        return f"Rosenbrock({self.tableau.name})"

    def for_solve(self, jac: Any = None) -> Rosenbrock:
        provider = jacobian_provider(jac) if jac is not None else self.jacobian
        return Rosenbrock(self.tableau, provider, self.linear_solver, self.max_jacobian_age)

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None) -> None:
        return None  # stages are stacked; the linear solves dominate

    @property
    def found_autonomous(self) -> bool:
        """Whether the last integration found its field autonomous (no tangent in ``t`` and a difference probe
        that agrees), so that ``∂f/∂t`` was skipped."""
        return self._time_mode == "autonomous"

    def begin(self, rtol: float | torch.Tensor, atol: float | torch.Tensor) -> None:
        """A new integration keeps nothing of the last one: the continuous adjoint's backward solve has
        another field and a larger state, so a W-method's kept Jacobian (and the autonomy probe) must go."""
        self._point = self._J = self._ft = self._W = self._W_h = self._start = self._time_mode = None
        self._age, self._limit = 0, self.max_jacobian_age

    def _coefficients(self, y: torch.Tensor) -> _Coefficients:
        key = (y.dtype, y.device)
        if key not in self._coef:
            self._coef[key] = _Coefficients(self.tableau, y.dtype, y.device)
        return self._coef[key]

    def jacobian_at(self, f, t: float, y: torch.Tensor, h: float, shape: torch.Size, fy: torch.Tensor):
        """``(J, ∂f/∂t or None)`` for a step from ``(t, y)``: computed once per step start (counted), or for
        a W-method the kept one (see the class docstring)."""
        retry = self._start is not None and self._start[0] == t and self._start[1] is y
        self._age = self._age if retry else self._age + 1
        self._start = (t, y)
        if self._point is not None and self._point[0] == t and self._point[1] is y:
            return self._J, self._ft
        if retry and self.tableau.w_method and self._J is not None:  # rejected with a kept Jacobian
            self._limit = max(1, self._limit // 2)
        elif not retry and self._age > self._limit:  # the kept Jacobian served its term without a rejection
            self._limit = min(self.max_jacobian_age, 2 * self._limit)
        keep = self.tableau.w_method and y.numel() > 4 * (self.tableau.n_stages - self.tableau.fsal)
        if keep and self._J is not None and not retry and self._age <= self._limit:
            ft = self._time_derivative(f, t, y, h, shape, fy)
            return self._J, ft
        J = self.counted_jacobian(f, t, y, shape, fy)
        ft = self._time_derivative(f, t, y, h, shape, fy)
        self._point, self._J, self._ft, self._W, self._W_h = (t, y), J, ft, None, None
        self._age = 1
        return J, ft

    def _time_derivative(self, f, t: float, y: torch.Tensor, h: float, shape: torch.Size, fy: torch.Tensor):
        """``∂f/∂t`` at ``(t, y)``, or None where ``f`` does not depend on ``t`` (see the class docstring).

        Forward-mode AD in ``t`` (one evaluation of ``f``, exact) where the field takes a time tensor
        (``f.tensor_time``, set by :func:`~sciml.solvers.ode.solve`); a field whose output carries no tangent
        is autonomous — decided once, structurally, and confirmed by a difference probe (a field reading
        ``t`` through ``float(t)`` carries no tangent either). Otherwise a forward difference with a step
        scaled by ``|h|`` (not ``|t|``: far from ``t = 0`` that made the step, and its truncation error,
        grow with ``t``), a few ulps of ``t`` at least; it is recomputed at every Jacobian, never taken as
        proof of autonomy (one probe can miss the time dependence: ``f`` may change with ``t`` below
        round-off there, or only through a component that is 0 at that state)."""
        mode = self._time_mode
        if mode == "autonomous" or getattr(f, "autonomous", False):
            return None
        if mode in (None, "ad") and getattr(f, "tensor_time", False):
            try:
                ft = _forward_time_derivative(f, t, y, shape)
            except (RuntimeError, NotImplementedError, TypeError):  # an operation forward AD cannot do
                ft, mode = _FAILED, "fd"
            if ft is not _FAILED:
                if ft is not None or mode == "ad":
                    self._time_mode = "ad"
                    return ft
                probe, delta = self._difference(f, t, y, h, shape)
                if torch.equal(probe.detach(), fy.detach()):
                    self._time_mode = "autonomous"
                    return None
                self._time_mode = "fd"  # t enters f outside autograd (float(t), numpy)
                return (probe - fy) / delta
        self._time_mode = "fd"
        probe, delta = self._difference(f, t, y, h, shape)
        if torch.equal(probe.detach(), fy.detach()):
            return None  # no change here; probed again at the next Jacobian
        return (probe - fy) / delta

    @staticmethod
    def _difference(f, t: float, y: torch.Tensor, h: float, shape: torch.Size) -> tuple[torch.Tensor, float]:
        """``(f(t + δ, y), δ)`` with ``δ = √eps·|h|`` (a few ulps of ``t`` at least), rounded so that
        ``t + δ`` is exact."""
        eps = torch.finfo(y.dtype).eps
        ulp = math.ulp(t) if t != 0 else 0.0
        delta = max(math.sqrt(eps) * abs(h), 4 * ulp, 1e-300)
        delta = (t + delta) - t
        return f(t + delta, y.view(shape)).reshape(-1), delta

    def _warn_untracked_jacobian(self) -> None:
        """Once per solve: a finite-difference Jacobian has no autograd history, so the gradient of a
        Rosenbrock solution (whose stages use ``J`` explicitly) misses ``∂J/∂p`` and is not the derivative of
        the computed solution (rodas4, dt = 0.02: 120 % off on a kinetics problem)."""
        self._warned = True
        if isinstance(self.jacobian, FiniteDifferenceJacobian):
            warnings.warn(
                f"differentiating through {self.tableau.name} with a finite-difference Jacobian (jac='fd'): "
                "the Jacobian carries no autograd history, so the gradient misses its dependence on the "
                "parameters and is not the derivative of the computed solution; use jac=None (the default "
                "autodiff Jacobian) when you need gradients",
                UserWarning,
                stacklevel=4,
            )

    def factor(self, J: Jacobian, h: float):
        if self._W is None or self._W_h != h:
            self._W = self.linear_solver.factor(J, 1.0 / (h * self.tableau.gamma))
            self._W_h = h
            self.counters.nlu += 1
        return self._W

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
        """One Rosenbrock step of size ``h`` from ``(t, y)`` (``y`` flat, ``k1 = f(t, y)`` flat); the
        contract of :meth:`sciml.solvers.ode.rk.RungeKutta.step`. ``stages`` holds the ``u_i`` (and, for
        FSAL methods, ``f(t + h, y1)`` as its last row)."""
        tab = self.tableau
        co = self._coefficients(y)
        shape = shape if shape is not None else y.shape
        if not self._warned and torch.is_grad_enabled() and (y.requires_grad or k1.requires_grad):
            self._warn_untracked_jacobian()
        J, ft = self.jacobian_at(f, t, y, h, shape, k1)
        W = self.factor(J, h)
        us: list[torch.Tensor] = []
        g = y
        F = k1
        for i in range(tab.n_stages):
            if i > 0:
                g = torch.addmv(y, torch.stack(us, 1), co.a[i]) if co.a[i] is not None else y
                F = f(t + tab.c[i] * h, g.view(shape)).reshape(-1)
            rhs = F
            if i > 0 and co.has_C[i]:
                rhs = torch.addmv(rhs, torch.stack(us, 1), co.C[i], alpha=1.0 / h)
            if ft is not None and tab.d[i] != 0:
                rhs = rhs + (tab.d[i] * h) * ft
            us.append(W.solve(rhs))
        U = torch.stack(us, 1)
        y1 = g if tab.fsal else torch.addmv(y, U, co.m)
        y_error = torch.mv(U, co.m_error)
        stages = torch.cat([U.t(), F.unsqueeze(0)]) if tab.fsal else U.t()
        norms = None
        if stiffness:
            rho = J.norm_inf() * abs(h)
            norms = torch.stack([rho, torch.ones_like(rho)])
        return StepResult(y1, y_error, norms, stages, tab.n_stages - 1)

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        """Dense output ``y(t0 + θh) = y0 + Σ P_i(θ) u_i`` (``(m,)`` -> ``(m, n)``)."""
        weights = P.polyval(np.asarray(thetas, dtype=np.float64), self._dense.T).T  # (m, stages)
        w = torch.as_tensor(weights, dtype=y0.dtype, device=y0.device)
        return torch.addmm(y0.unsqueeze(0), w, stages[: self.tableau.n_stages])

    def dense_point(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, theta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y(t0 + θh), dy/dθ)`` of the dense output (flat)."""
        p = self.interpolate(y0, stages, h, np.array([theta]))[0]
        dw = torch.as_tensor(P.polyval(theta, self._dense_derivative), dtype=y0.dtype, device=y0.device)
        return p, torch.mv(stages[: self.tableau.n_stages].t(), dw)

    def iteration_solve(self, r: torch.Tensor) -> torch.Tensor:
        """``(I/(hγ) − J)⁻¹ r`` with the last step's factorisation ``W``."""
        return self._W.solve(r)

"""``radau5``: the 3-stage Radau IIA collocation method of order 5 with the algorithm of Hairer & Wanner's
RADAU5 code (*Solving ODEs II*, 2nd ed., IV.8), which scipy's ``Radau`` also follows.

The stage increments ``Z_i = Y_i − y`` solve ``Z = h (A ⊗ I) F(y + Z)``. Transformed by the eigenvectors of
``A⁻¹`` (``W = T⁻¹ Z``) the simplified Newton iteration decouples into one real system with ``γ/h·I − J`` and
one complex one with ``(α − iβ)/h·I − J``: two factorisations per ``(h, J)`` (:func:`torch.linalg.lu_factor`,
per sample for ``jac="batched"``), started from the previous step's collocation polynomial extrapolated to
the new abscissae. Newton stops on RADAU5's convergence-rate test ``θ/(1 − θ)‖ΔW‖ ≤ κ`` (at the first
iteration with the previous step's ``(θ/(1 − θ))^0.8``, so a step may stop after one iteration; it gives
up when ``θ ≥ 1`` or the predicted remainder after ``NEWTON_MAXITER`` iterations is too large); the
Jacobian is kept across steps and recomputed only when Newton converged slowly (``n_iter > 2`` and
``θ > 10⁻³``) or failed, or when a step taken with a kept Jacobian was rejected; ``W`` is refactorised
only when ``h`` or ``J`` changed, and :class:`RadauController` (Gustafsson's predictive controller, as in
RADAU5) holds ``h`` when the proposed ratio lies in ``[1, 1.2]`` so that the factorisations are reused too.

The error estimate is the embedded one filtered by ``(γ/h·I − J)⁻¹`` (Hairer & Wanner II, IV.8, eq. 8.20),
refiltered once through ``f`` at the first step and after a rejection when it still exceeds 1.
The dense output is the collocation polynomial (degree 3, through ``y`` and the three stages).

Differentiability: Newton runs without autograd history. When the solve is differentiated the converged
stages receive their gradients by the implicit function theorem: ``Z = Z* − (M⁻¹G(Z*)) + (M⁻¹G(Z*))``
(the second term detached) with ``G(Z) = Z − h(A ⊗ I)F(y + Z)`` evaluated with history and
``M = ∂G/∂Z`` the exact Jacobian of the stage equations at ``Z*`` (stage Jacobians at the stage points):
the value stays ``Z*`` and ``dZ/dp = −M⁻¹ ∂G/∂p`` exactly, with no Newton iteration unrolled. The solution
and the error estimates are then differentiable with respect to ``y0`` and the parameters of ``f``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sciml.solvers.controllers import Controller
from sciml.solvers.ode.implicit import ImplicitCounters, ImplicitMethod
from sciml.solvers.ode.jacobian import AutodiffJacobian, Jacobian, JacobianProvider, jacobian_provider
from sciml.solvers.ode.newton import FIXED_GRID_MAXITER
from sciml.solvers.ode.rk import StepResult

__all__ = ["RadauIIA", "RADAU5", "Radau", "RadauController"]

_S6 = math.sqrt(6.0)


@dataclass(frozen=True)
class RadauIIA:
    """Coefficients of the 3-stage Radau IIA method (closed forms in √6) and what RADAU5 derives from them.

    Attributes:
        A, c: the Butcher matrix and abscissae ``(4 ∓ √6)/10, 1``.
        E: error weights (``ẽ = (γ/h·I − J)⁻¹ (f(y) + Σ E_i Z_i / h)``; Hairer & Wanner II, IV.8).
        P: dense output: ``y(t + θh) = y + Σ_i Z_i (P_i1 θ + P_i2 θ² + P_i3 θ³)``.
        T, TI: eigenvectors of ``A⁻¹`` and their inverse (``TI A⁻¹ T`` = real γ, complex block α ∓ iβ),
            computed from ``A`` at import and checked.
        mu_real, mu_complex: the eigenvalues ``γ = 3 + 3^{2/3} − 3^{1/3}`` and ``α − iβ`` of ``A⁻¹``.

    Raises:
        ValueError: the derived matrices do not reproduce the method (a broken constant).
    """

    name: str = "radau5"
    order: int = 5
    error_order: int = 3
    fsal: bool = False
    adaptive: bool = True
    n_stages: int = 3
    stability_size: float = math.inf  # L-stable
    citation: str = "Hairer & Wanner, Solving ODEs II (1996), IV.8 (RADAU5)"
    A: np.ndarray = field(
        default_factory=lambda: np.array([
            [(88 - 7 * _S6) / 360, (296 - 169 * _S6) / 1800, (-2 + 3 * _S6) / 225],
            [(296 + 169 * _S6) / 1800, (88 + 7 * _S6) / 360, (-2 - 3 * _S6) / 225],
            [(16 - _S6) / 36, (16 + _S6) / 36, 1 / 9],
        ])
    )  # fmt: skip
    c: np.ndarray = field(default_factory=lambda: np.array([(4 - _S6) / 10, (4 + _S6) / 10, 1.0]))
    E: np.ndarray = field(default_factory=lambda: np.array([-13 - 7 * _S6, -13 + 7 * _S6, -1.0]) / 3)
    P: np.ndarray = field(
        default_factory=lambda: np.array([
            [13 / 3 + 7 * _S6 / 3, -23 / 3 - 22 * _S6 / 3, 10 / 3 + 5 * _S6],
            [13 / 3 - 7 * _S6 / 3, -23 / 3 + 22 * _S6 / 3, 10 / 3 - 5 * _S6],
            [1 / 3, -8 / 3, 10 / 3],
        ])
    )  # fmt: skip
    mu_real: float = 3 + 3 ** (2 / 3) - 3 ** (1 / 3)
    mu_complex: complex = complex(
        3 + 0.5 * (3 ** (1 / 3) - 3 ** (2 / 3)), -0.5 * (3 ** (5 / 6) + 3 ** (7 / 6))
    )
    T: np.ndarray = field(init=False)
    TI: np.ndarray = field(init=False)

    @property
    def dense(self) -> np.ndarray:
        return self.P

    def __post_init__(self) -> None:
        A, c, P = self.A, self.c, self.P
        Ainv = np.linalg.inv(A)
        # rows of TI: left eigenvectors of A⁻¹ (real γ; real and imaginary parts for α − iβ)
        vals, vecs = np.linalg.eig(Ainv.T)
        real = int(np.argmin(np.abs(vals.imag)))
        cplx = int(np.argmin(np.abs(vals - self.mu_complex)))
        if abs(vals[real] - self.mu_real) > 1e-12 or abs(vals[cplx] - self.mu_complex) > 1e-12:
            raise ValueError("radau5: the eigenvalues of A⁻¹ do not match γ and α − iβ")
        TI = np.stack([vecs[:, real].real, vecs[:, cplx].real, vecs[:, cplx].imag])
        TI[0] /= np.abs(TI[0]).max()
        TI[1:] /= np.abs(TI[1:]).max()  # one factor for the complex pair keeps it an eigenvector
        T = np.linalg.inv(TI)
        g, a, b = self.mu_real, self.mu_complex.real, -self.mu_complex.imag
        block = np.array([[g, 0, 0], [0, a, -b], [0, b, a]])
        theta = np.linspace(0, 1, 4)
        weights = P @ np.stack([theta, theta**2, theta**3])  # (stage, θ)
        checks = (
            np.abs(TI @ Ainv @ T - block.T).max() < 1e-12,
            np.abs(A.sum(1) - c).max() < 1e-14,  # row sums
            np.abs(P @ np.stack([c, c**2, c**3]) - np.eye(3)).max() < 1e-12,  # interpolates the stages
            abs(weights[:, 0]).max() == 0,
        )
        if not all(checks):
            raise ValueError(f"radau5: inconsistent coefficients (checks {checks})")
        object.__setattr__(self, "T", T)
        object.__setattr__(self, "TI", TI)


RADAU5 = RadauIIA()

#: Newton iterations per step before giving up (scipy's value; RADAU5 uses 7)
NEWTON_MAXITER = 6
#: blocks up to this size factorise the real and the complex system as one batched complex LU
FUSED_MAX = 64
_EPS64 = float(np.finfo(np.float64).eps)


@dataclass
class _History:
    """Controller memory: last accepted step size and error, whether the last try was rejected."""

    h_old: float | None = None
    err_old: float | None = None
    rejected: bool = False


@dataclass
class _StepInfo:
    """What the last step's Newton solve reported to the controller."""

    n_iter: int = 1
    rate: float = 0.0
    newton_failed: bool = False
    recompute_jac: bool = False


@dataclass(frozen=True)
class RadauController(Controller):
    """RADAU5's step-size controller: Gustafsson's predictive formula with the Newton-iteration-dependent
    safety factor (Hairer & Wanner II, IV.8, eq. 8.21–8.25).

    ``factor = min(1, (h/h_old)(E_old/E)^{1/4}) · E^{−1/4}``, multiplied by
    ``safety · (2·NEWTON_MAXITER + 1)/(2·NEWTON_MAXITER + n_iter)``;
    a Newton failure halves ``h`` (as scipy; RADAU5 predicts a factor from the contraction rate); after an
    accepted step the proposal is held at ``h`` when it lies in ``[1, 1.2]`` and the Jacobian is kept, so
    the factorisations are reused; no growth right after a rejection. :class:`Radau` supplies it as its
    default controller (bound to the stepper, which reports its Newton iterations); any other controller
    works too, without these refinements.

    Args: as :class:`~sciml.solvers.controllers.Controller` (``factor_min=0.2``, ``factor_max=10``) plus
        ``hold_min``, ``hold_max``: the band of proposed ratios held at 1 (RADAU5's QUOT1, QUOT2), and
        ``method``: the :class:`Radau` stepper whose Newton statistics it reads (a controller made without
        one — e.g. passed by the user — sees no Newton statistics).
    """

    hold_min: float = 1.0
    hold_max: float = 1.2
    method: Any = field(default=None, compare=False, repr=False)

    def new_state(self) -> _History:
        return _History()

    def decide(self, error: float, h: float, k: int, state: _History) -> tuple[bool, float]:
        info = self.method.info if self.method is not None else _StepInfo()
        if info.newton_failed:
            state.rejected = True
            return False, 0.5 * h
        if not math.isfinite(error):
            state.rejected = True
            return False, h * self.factor_min
        safety = self.safety * (2 * NEWTON_MAXITER + 1) / (2 * NEWTON_MAXITER + info.n_iter)
        if error == 0.0:
            factor = self.factor_max
        else:
            multiplier = 1.0
            if state.h_old is not None and state.err_old is not None:
                multiplier = abs(h) / state.h_old * (state.err_old / error) ** 0.25
            factor = min(1.0, multiplier) * error**-0.25
        if error > 1.0:
            state.rejected = True
            return False, h * max(self.factor_min, safety * factor)
        factor = min(self.factor_max, safety * factor)
        if state.rejected:
            factor = min(factor, 1.0)
        if not info.recompute_jac and self.hold_min <= factor <= self.hold_max:
            factor = 1.0  # keep h: the factorisations stay valid
        state.h_old, state.err_old, state.rejected = abs(h), max(error, 1e-2), False
        h_next = h * factor
        if abs(h_next) > self.dt_max:
            h_next = math.copysign(self.dt_max, h)
        return True, h_next


class _Tensors:
    def __init__(self, tab: RadauIIA, dtype: torch.dtype, device: torch.device):
        def t(v):
            return torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype, device=device)

        self.A, self.c, self.E, self.P, self.T, self.TI = (
            t(v) for v in (tab.A, tab.c, tab.E, tab.P, tab.T, tab.TI)
        )
        self.complex = torch.complex128 if dtype == torch.float64 else torch.complex64
        # the transforms as complex (2, 3) and (3, 2): row 0 the real eigenvalue's, row 1 the complex pair's
        self.TIc = torch.complex(self.TI[[0, 1]], torch.stack([torch.zeros_like(self.TI[2]), self.TI[2]]))
        self.Tc = torch.complex(
            self.T[:, [0, 1]], torch.stack([torch.zeros_like(self.T[:, 2]), -self.T[:, 2]], 1)
        )
        self.mu = torch.tensor([tab.mu_real, tab.mu_complex], dtype=self.complex, device=device).view(2, 1)
        # per-step constants as Python floats (no numpy/finfo calls in the step)
        self.c_float = tuple(float(ci) for ci in tab.c)
        self.eps = float(torch.finfo(dtype).eps)
        self._extrap: tuple[float, torch.Tensor] | None = None  # (h/h_old, weights) of the last extrapolation
        self._norms: tuple | None = None  # (J, h, stiffness norms) of the last step

    def extrapolation(self, tab: RadauIIA, ratio: float) -> torch.Tensor:
        """``(3, 3)`` weights taking the last step's ``Z`` to the start of the new step's Newton iteration
        (its collocation polynomial at ``1 + c·ratio``, relative to its end point); kept for a held ``h``."""
        if self._extrap is None or self._extrap[0] != ratio:
            theta = 1.0 + tab.c * ratio
            w = tab.P @ np.stack([theta, theta**2, theta**3])  # (stage j, new stage i)
            w[2] -= 1.0  # relative to y = y_old + Z_old[2]
            self._extrap = (ratio, torch.as_tensor(w.T, dtype=self.A.dtype, device=self.A.device))
        return self._extrap[1]


@dataclass
class _Step:
    """One tried step (to learn, at the next call, whether it was accepted)."""

    t: float
    h: float
    y: torch.Tensor
    y1: torch.Tensor
    Z: torch.Tensor  # (3, n), detached
    recompute_jac: bool


class Radau(ImplicitMethod):
    """The RADAU5 stepper (see the module docstring) honouring the explicit methods' step contract.

    Per solve (:meth:`for_solve` makes a fresh instance) it keeps the Jacobian, the two factorisations and
    the last accepted step's collocation polynomial, and counts ``njev``, ``nlu`` (each real or complex
    factorisation counts one, as scipy counts), ``n_newton`` (iterations) and ``n_newton_fail``.

    Args:
        jacobian: a :class:`~sciml.solvers.ode.jacobian.JacobianProvider` (default: dense reverse-mode AD).
    """

    tableau = RADAU5
    #: one abscissa: the collocation polynomial's largest error over a step was within 3.0× of the estimate
    #: at θ = 1/2 on Prothero–Robinson (1.3–1.5× typically; two points: 1.7×) and the local interpolation
    #: errors on Robertson and Van der Pol were the same as with two points, at half the extra work of a
    #: method that often needs only 3–6 evaluations a step
    dense_error_thetas = (0.5,)

    def __init__(self, jacobian: JacobianProvider | None = None):
        self.jacobian = jacobian if jacobian is not None else AutodiffJacobian()
        #: set by ``solve`` for fixed steps (odeint's ``radauIIA5``, ``dt=``), which cannot shrink: Newton is
        #: not given up on a slow predicted convergence and runs up to ``FIXED_GRID_MAXITER`` iterations
        self.fixed_grid = False
        self.counters = ImplicitCounters()
        self.info = _StepInfo()
        self._tensors: dict[tuple, _Tensors] = {}
        self.begin(1e-6, 1e-9)

    def __repr__(self) -> str:
        return "Radau(radau5)"

    @property
    def newton_failed(self) -> bool:
        """The last step's Newton iteration failed (read by :func:`~sciml.solvers.ode.solve`'s loop, which
        ends a fixed-step solve there)."""
        return self.info.newton_failed

    def for_solve(self, jac: Any = None) -> Radau:
        return Radau(jacobian_provider(jac) if jac is not None else self.jacobian)

    def default_controller(self) -> Controller:
        return RadauController(method=self)

    def begin(self, rtol: float | torch.Tensor, atol: float | torch.Tensor) -> None:
        """Start one integration: the tolerances (for Newton's scale and stopping test), no step history."""
        self._rtol, self._atol = rtol, atol
        self._rtol_min = float(rtol.min()) if torch.is_tensor(rtol) else float(rtol)
        self._J: Jacobian | None = None
        self._J_point: tuple | None = None  # (t, y) where J was computed
        self._lu: tuple | None = None  # (h, J, real LU or None, complex LU(s), fused)
        self._J_norms: tuple | None = None  # (J, (‖J‖_∞, 1))
        self._tried: _Step | None = None
        self._accepted: _Step | None = None
        self._jac_due = False
        self._n_accepted = 0
        self._faccon = 1.0
        self.info = _StepInfo()

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None) -> None:
        return None

    def _co(self, y: torch.Tensor) -> _Tensors:
        key = (y.dtype, y.device)
        if key not in self._tensors:
            self._tensors[key] = _Tensors(self.tableau, y.dtype, y.device)
        return self._tensors[key]

    def _scale(self, y: torch.Tensor) -> torch.Tensor:
        rtol, atol = self._rtol, self._atol
        if torch.is_tensor(rtol) and rtol.numel() != y.numel():
            rtol = float(rtol.min())
        if torch.is_tensor(atol) and atol.numel() != y.numel():
            atol = float(atol.min())
        return atol + y.detach().abs() * rtol

    def _compute_jacobian(self, f, t: float, y: torch.Tensor, shape, fy) -> None:
        J = self.counted_jacobian(f, t, y, shape, fy)
        self._J, self._J_point, self._lu = J, (t, y), None

    def _factor(self, h: float, co: _Tensors, grad: bool) -> None:
        """Factorise ``γ/h·I − J`` and ``(α − iβ)/h·I − J`` unless ``h`` and ``J`` are unchanged.

        Small blocks (``≤ FUSED_MAX`` unknowns per block) factorise both as one batched complex LU (half the
        tensor operations per Newton iteration; the real matrix in complex arithmetic costs nothing there);
        larger ones separately (real and complex). The real factorisation with ``J``'s autograd history is
        made too when the solve is differentiated (for the error estimate)."""
        if self._lu is not None and self._lu[0] == h and self._lu[1] is self._J:
            return
        J = self._J.matrix
        d = J.shape[-1]
        eye = torch.eye(d, dtype=J.dtype, device=J.device)
        real = pair = None
        if grad or d > FUSED_MAX:
            with torch.set_grad_enabled(grad):  # keeps J's history (for the error estimate)
                real = torch.linalg.lu_factor(self.tableau.mu_real / h * eye - J)
            self.counters.nlu += 1
        with torch.no_grad():
            Jc = J.detach().to(co.complex)
            if d <= FUSED_MAX:
                mus = co.mu.view(2, *([1] * J.dim())) / h
                pair = torch.linalg.lu_factor(mus * eye.to(co.complex) - Jc.unsqueeze(0))
                self.counters.nlu += 2
            else:
                cplx = torch.linalg.lu_factor((self.tableau.mu_complex / h) * eye.to(co.complex) - Jc)
                self.counters.nlu += 1
        self._lu = (h, self._J, real, pair if pair is not None else cplx, pair is not None)

    def _solve_pair(self, rhs: torch.Tensor) -> torch.Tensor:
        """``(2, n)`` complex right-hand sides of the real and the complex system -> their solutions."""
        _, J, real, lu, fused = self._lu
        n = rhs.shape[-1]
        if fused:
            LU, piv = lu
            if J.blocks:
                B, d = LU.shape[1], LU.shape[-1]
                return torch.linalg.lu_solve(LU, piv, rhs.view(2, B, d, 1)).view(2, n)
            return torch.linalg.lu_solve(LU, piv, rhs.unsqueeze(-1)).squeeze(-1)
        dW0 = self._solve(real, rhs[0].real.contiguous())
        dWc = self._solve(lu, rhs[1].contiguous())
        return torch.stack([dW0.to(rhs.dtype), dWc])

    def _solve_real(self, rhs: torch.Tensor) -> torch.Tensor:
        """``(γ/h·I − J)⁻¹ rhs`` (differentiable when the real factorisation was made with history)."""
        _, J, real, lu, fused = self._lu
        if real is not None:
            return self._solve(real, rhs)
        LU, piv = lu
        if J.blocks:
            B, d = LU.shape[1], LU.shape[-1]
            return torch.linalg.lu_solve(LU[0], piv[0], rhs.to(LU.dtype).view(B, d, 1)).real.reshape(-1)
        return torch.linalg.lu_solve(LU[0], piv[0], rhs.to(LU.dtype).unsqueeze(-1)).real.squeeze(-1)

    def _solve(self, lu, rhs: torch.Tensor) -> torch.Tensor:
        LU, piv = lu
        if self._J.blocks:
            B, d = LU.shape[0], LU.shape[-1]
            return torch.linalg.lu_solve(LU, piv, rhs.reshape(B, d, 1)).reshape(-1)
        return torch.linalg.lu_solve(LU, piv, rhs.unsqueeze(-1)).squeeze(-1)

    def _newton(self, f, t, y, h, shape, Z0, scale, co):
        """Simplified Newton on the transformed system; ``(converged, Z, n_iter, rate)`` (no history).

        ``W = T⁻¹Z`` is kept as one complex ``(2, n)`` tensor: ``W_0`` (real) and ``W_1 + iW_2``; the
        increment norm is the RMS of ``ΔW / scale`` over all ``3n`` real entries (as scipy's)."""
        norm_factor = 1.0 / math.sqrt(3 * y.numel())
        inv_scale = 1.0 / scale
        ts = [t + ci * h for ci in co.c_float]
        Z = Z0
        W = co.TIc @ Z0.to(co.complex)
        dW_norm_old = rate = None
        converged = False
        # RADAU5: the contraction factor θ/(1 − θ) of the last step lets a step stop after one iteration
        faccon = max(self._faccon, _EPS64) ** 0.8
        # RADAU5's stopping tolerance; its floor 10·eps/rtol uses the state's precision, so a float32 state
        # with an rtol below float32 resolution stops at what float32 can resolve instead of failing
        # (rtol = 0, pure absolute control: Hairer's fixed 0.03)
        r = self._rtol_min
        newton_tol = max(10 * co.eps / r, min(0.03, r**0.5)) if r > 0 else 0.03
        k = 0
        max_iter = FIXED_GRID_MAXITER if self.fixed_grid else NEWTON_MAXITER
        for k in range(max_iter):
            Y = (y + Z).view(3, *shape)
            F = torch.stack([f(ts[i], Y[i]) for i in range(3)]).view(3, -1)
            dW = self._solve_pair(torch.addcmul(co.TIc @ F.to(co.complex), co.mu, W, value=-1.0 / h))
            dW_norm = float(torch.linalg.vector_norm(dW * inv_scale)) * norm_factor
            if not math.isfinite(dW_norm):
                break
            if dW_norm_old is not None:
                rate = dW_norm / dW_norm_old
            stagnates = rate is not None and rate >= 1 and dW_norm < newton_tol  # round-off (tight rtol)
            if not stagnates and (
                rate is not None
                and (
                    rate >= 1
                    or not self.fixed_grid
                    and rate ** (max_iter - k) / (1 - rate) * dW_norm > newton_tol
                )
            ):
                break
            W = W + dW
            Z = (co.Tc @ W).real
            if rate is not None and rate < 1:
                faccon = rate / (1 - rate)
            if stagnates or faccon * dW_norm <= newton_tol:
                converged = True
                break
            dW_norm_old = dW_norm
        if converged:
            self._faccon = faccon
        self.counters.n_newton += k + 1
        return converged, Z, k + 1, rate

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
        """One RADAU5 step of size ``h`` from ``(t, y)`` (``y`` flat, ``k1 = f(t, y)``): the contract of
        :meth:`sciml.solvers.ode.rk.RungeKutta.step`. ``stages`` holds the increments ``Z_i`` ``(3, n)``.
        A Newton solve that does not converge (also after a fresh Jacobian) returns a NaN solution and an
        infinite error: the step is rejected (halved by :class:`RadauController`)."""
        shape = shape if shape is not None else y.shape
        co = self._co(y)
        tried = self._tried
        retry = tried is not None and tried.t == t and tried.y is y
        if tried is not None and not retry and tried.y1 is y:  # the last tried step was accepted
            self._accepted, self._n_accepted = tried, self._n_accepted + 1
            self._jac_due = tried.recompute_jac
        elif not retry:
            self._accepted = None  # a different start (e.g. an event restart): no extrapolation
        current = self._J_point is not None and self._J_point[0] == t and self._J_point[1] is y
        stale_retry = retry and not current and not self.info.newton_failed
        if self._J is None or (self._jac_due and not retry) or stale_retry:
            self._compute_jacobian(f, t, y, shape, k1)
            current = True
        self._jac_due = False
        nfe = 0
        grad = torch.is_grad_enabled() and (y.requires_grad or k1.requires_grad)
        with torch.no_grad():
            yd = y.detach()
            scale = self._scale(yd)
            acc = self._accepted
            if acc is not None and acc.y1 is y:  # extrapolate the last collocation polynomial
                Z0 = co.extrapolation(self.tableau, h / acc.h) @ acc.Z
            else:
                Z0 = yd.new_zeros((3, yd.numel()))
            while True:
                self._factor(h, co, grad)
                converged, Z, n_iter, rate = self._newton(f, t, yd, h, shape, Z0, scale, co)
                nfe += 3 * n_iter
                if converged or current:
                    break
                self._compute_jacobian(f, t, y, shape, k1)
                current = True
        if not converged:
            self.counters.n_newton_fail += 1
            self.info = _StepInfo(n_iter, rate or 0.0, newton_failed=True)
            bad = torch.full_like(yd, math.nan)
            self._tried = _Step(t, h, y, bad, Z0, False)  # the retry from (t, y) is recognised as one
            return StepResult(bad, torch.full_like(yd, math.inf), None, Z0, nfe)
        recompute = n_iter > 2 and rate is not None and rate > 1e-3
        self.info = _StepInfo(n_iter, rate or 0.0, newton_failed=False, recompute_jac=recompute)
        if grad:
            Z, extra = self._implicit_gradient(f, t, y, h, shape, Z, co)
            nfe += extra
        y1 = y + Z[2]
        err = self._solve_real(torch.addmv(k1, Z.t(), co.E, alpha=1.0 / h))
        if retry or self._n_accepted == 0:  # RADAU5: refilter at the first step and after a rejection
            sc = self._scale(torch.maximum(yd.abs(), y1.detach().abs()))
            if float(torch.linalg.vector_norm(err.detach() / sc)) / math.sqrt(yd.numel()) > 1:
                ZE = torch.mv(Z.t(), co.E) / h
                err = self._solve_real(f(t, (y + err).view(shape)).reshape(-1) + ZE)
                nfe += 1
        self._tried = _Step(t, h, y, y1, Z.detach(), recompute)
        norms = None
        if stiffness:
            if self._J_norms is None or self._J_norms[0] is not self._J:
                rho = self._J.norm_inf()
                self._J_norms = (self._J, torch.stack([rho, torch.ones_like(rho)]))
            if co._norms is None or co._norms[0] is not self._J_norms[1] or co._norms[1] != h:
                scaled = self._J_norms[1] * torch.tensor([abs(h), 1.0], dtype=yd.dtype, device=yd.device)
                co._norms = (self._J_norms[1], h, scaled)
            norms = co._norms[2]
        return StepResult(y1, err, norms, Z, nfe)

    def _implicit_gradient(self, f, t, y, h, shape, Z, co) -> tuple[torch.Tensor, int]:
        """The converged stages with gradients by the implicit function theorem (module docstring)."""
        n = y.numel()
        Zd = Z.detach()
        ts = [t + ci * h for ci in co.c_float]
        with torch.no_grad():
            Js = []
            for i in range(3):
                Yi = y.detach() + Zd[i]
                Fi = f(ts[i], Yi.view(shape)).reshape(-1)
                Js.append(self.counted_jacobian(f, ts[i], Yi, shape, Fi))
                self.counters.nfe_jacobian += 1  # Fi
            hA = h * co.A
            if Js[0].blocks:  # per sample: (B, 3d, 3d)
                B, d = Js[0].matrix.shape[0], Js[0].matrix.shape[-1]
                eye = torch.eye(3 * d, dtype=y.dtype, device=y.device).expand(B, 3 * d, 3 * d)
                M = eye - torch.cat(
                    [torch.cat([hA[k, j] * Js[j].matrix for j in range(3)], -1) for k in range(3)], -2
                )
            else:
                M = torch.eye(3 * n, dtype=y.dtype, device=y.device) - torch.cat(
                    [torch.cat([hA[k, j] * Js[j].matrix for j in range(3)], -1) for k in range(3)], -2
                )
            lu = torch.linalg.lu_factor(M)
        F = torch.stack([f(ts[i], (y + Zd[i]).view(shape)).reshape(-1) for i in range(3)])
        G = Zd - hA @ F  # (3, n), ~0 in value; carries ∂G/∂(y0, params)
        if Js[0].blocks:
            B, d = Js[0].matrix.shape[0], Js[0].matrix.shape[-1]
            rhs = G.view(3, B, d).permute(1, 0, 2).reshape(B, 3 * d, 1)
            D = torch.linalg.lu_solve(*lu, rhs).view(B, 3, d).permute(1, 0, 2).reshape(3, n)
        else:
            D = torch.linalg.lu_solve(*lu, G.reshape(-1, 1)).view(3, n)
        return Zd - D + D.detach(), 3

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        """Collocation polynomial ``y0 + Σ_i Z_i (P_i1 θ + P_i2 θ² + P_i3 θ³)``, ``(m,)`` -> ``(m, n)``."""
        th = np.asarray(thetas, dtype=np.float64)
        weights = np.stack([th, th**2, th**3], 1) @ self.tableau.P.T  # (m, stages)
        w = torch.as_tensor(weights, dtype=y0.dtype, device=y0.device)
        return torch.addmm(y0.unsqueeze(0), w, stages)

    def dense_point(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, theta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(y(t0 + θh), dy/dθ)`` of the collocation polynomial (flat)."""
        p = self.interpolate(y0, stages, h, np.array([theta]))[0]
        dw = torch.as_tensor(self.tableau.P @ np.array([1.0, 2 * theta, 3 * theta**2]), dtype=y0.dtype,
                             device=y0.device)  # fmt: skip
        return p, torch.mv(stages.t(), dw)

    def iteration_solve(self, r: torch.Tensor) -> torch.Tensor:
        """``(γ/h·I − J)⁻¹ r`` with the last step's real factorisation (``hγ`` of the base class is
        ``h/γ`` here: γ = 3.6378 is the real eigenvalue of ``A⁻¹``)."""
        return self._solve_real(r)

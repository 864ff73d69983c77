"""The two-layer quasi-geostrophic (QG) model on a doubly periodic β-plane.

Potential vorticity ``q_i`` of layer ``i = 1`` (upper, depth ``H1``) and ``2`` (lower, ``H2``), with
``δ = H1/H2``, ``F1 = 1/(Rd²(1 + δ))``, ``F2 = δ F1`` (``Rd`` the baroclinic deformation radius):

    q1 = ∇²ψ1 + F1 (ψ2 − ψ1),        q2 = ∇²ψ2 + F2 (ψ1 − ψ2),

    ∂t q_i + a J(ψ_i, q_i) + U_i ∂x q_i + Q_{i,y} ∂x ψ_i = − δ_{i2} r ∇²ψ2 − ν (−∇²)^p q_i,

    Q_{1,y} = β + F1 (U1 − U2),      Q_{2,y} = β − F2 (U1 − U2),

(Phillips 1954; the form of pyqg's ``QGModel`` and of the QG test case of Mojgani, Chattopadhyay &
Hassanzadeh, JAMES 2024). The imposed vertical shear ``U1 − U2`` of the mean zonal flow feeds the eddies
through baroclinic instability; bottom (Ekman) drag ``r`` and hyperviscosity ``ν`` of order ``p``
(``∇^{2p}``) remove the energy. ``a`` (default 1) scales the advective nonlinearity, so that "a wrong
nonlinear term" is one field too.

Units are nondimensional: the default is length unit ``Rd = 1`` and velocity unit ``U1 − U2 = 1``; the
parameters (``β = 0.135``, ``r = 0.347``, ``δ = 0.25``) are pyqg's defaults (β = 1.5e-11 m⁻¹s⁻¹, rd = 15 km,
rek = 5.78e-7 s⁻¹, U1 = 2.5 cm/s) in those units. An imperfect model is one line:

>>> truth = QGProblem()
>>> no_beta = truth.replace(beta=0.0)
>>> (truth.beta, no_beta.beta, no_beta.rd)
(0.135, 0.0, 1.0)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["QGProblem", "qg_initial_condition"]


def qg_initial_condition(problem: QGProblem, seed: int = 0, amplitude: float = 1e-3) -> np.ndarray:
    """Small random PV ``(2, n, n)`` in the lowest quarter of the resolved modes (fixed ``seed``)."""
    rng = np.random.default_rng(seed)
    n = problem.n
    k = np.fft.fftfreq(n, 1.0 / n)
    kx, ky = np.meshgrid(np.fft.rfftfreq(n, 1.0 / n), k, indexing="xy")
    mask = (np.sqrt(kx**2 + ky**2) <= n / 8) & (np.sqrt(kx**2 + ky**2) > 0)
    shape = (2, n, n // 2 + 1)
    field_hat = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)) * mask
    q = np.fft.irfft2(field_hat, s=(n, n))
    return amplitude * q / np.sqrt(np.mean(q**2))


@dataclass(frozen=True, eq=False)
class QGProblem:
    """The two-layer QG problem (see the module docstring for the equations).

    Args:
        n: grid points per side (even, ≥ 8); the grid is ``n × n`` on ``[0, L)²``.
        L: side of the periodic square.
        beta: planetary vorticity gradient β.
        rd: baroclinic deformation radius ``Rd`` (> 0).
        delta: layer-depth ratio ``H1/H2`` (> 0).
        U1, U2: mean zonal velocities of the two layers (the eddy-driving shear is ``U1 − U2``).
        rek: bottom (Ekman) drag ``r`` on the lower layer (≥ 0).
        nu: hyperviscosity ``ν`` (≥ 0).
        nu_order: ``p`` in ``ν (−∇²)^p q`` (4: ``∇⁸``).
        advection: the factor ``a`` of the Jacobian ``J(ψ, q)`` (1 for the physical model).
        q0: initial PV ``(2, n, n)``: an array or a callable of the problem; default small random noise.
        t_span: ``(t0, t1)``.
        name: a label for messages and cache files.

    Raises:
        ValueError: a non-finite parameter, ``n`` odd or < 8, ``L``, ``rd`` or ``delta`` not positive,
            negative ``rek``/``nu``, ``nu_order < 1``, a ``q0`` of the wrong shape, or ``t1 <= t0``.
    """

    n: int = 64
    L: float = 20 * math.pi
    beta: float = 0.135
    rd: float = 1.0
    delta: float = 0.25
    U1: float = 1.0
    U2: float = 0.0
    rek: float = 0.347
    nu: float = 2e-4
    nu_order: int = 4
    advection: float = 1.0
    q0: np.ndarray | Callable[[QGProblem], np.ndarray] | None = field(default=None, repr=False)
    t_span: tuple[float, float] = (0.0, 100.0)
    name: str = "qg"

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 8 or self.n % 2:
            raise ValueError(f"n must be an even integer >= 8 (grid points per side), got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        for name in ("L", "beta", "rd", "delta", "U1", "U2", "rek", "nu", "advection"):
            value = getattr(self, name)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be a real number, got {value!r}") from None
            if not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value}")
            object.__setattr__(self, name, value)
        for name in ("L", "rd", "delta"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("rek", "nu"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if isinstance(self.nu_order, bool) or int(self.nu_order) != self.nu_order or self.nu_order < 1:
            raise ValueError(f"nu_order must be an integer >= 1 (4 for ∇⁸), got {self.nu_order!r}")
        object.__setattr__(self, "nu_order", int(self.nu_order))
        t0, t1 = (float(t) for t in self.t_span)
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"t_span must be (t0, t1) with finite t0 < t1, got {self.t_span!r}")
        object.__setattr__(self, "t_span", (t0, t1))
        if self.q0 is not None and not callable(self.q0):
            values = np.asarray(self.q0, dtype=np.float64)
            if values.shape != (2, self.n, self.n):
                raise ValueError(f"q0 must have shape (2, {self.n}, {self.n}), got {values.shape}")
            if not np.all(np.isfinite(values)):
                raise ValueError("q0 must be finite (it holds NaN or inf)")
            values = values.copy()
            values.setflags(write=False)
            object.__setattr__(self, "q0", values)

    def replace(self, **changes) -> QGProblem:
        """A copy with some fields changed: ``truth.replace(rek=0.0)``."""
        return dataclasses.replace(self, **changes)

    # -- derived parameters --------------------------------------------------------------------------
    @property
    def F1(self) -> float:
        return 1.0 / (self.rd**2 * (1.0 + self.delta))

    @property
    def F2(self) -> float:
        return self.delta * self.F1

    @property
    def weights(self) -> tuple[float, float]:
        """Layer depth fractions ``(H1/H, H2/H)``."""
        return self.delta / (1 + self.delta), 1 / (1 + self.delta)

    @property
    def Qy(self) -> tuple[float, float]:
        """Mean PV gradients ``(β + F1 ΔU, β − F2 ΔU)``."""
        shear = self.U1 - self.U2
        return self.beta + self.F1 * shear, self.beta - self.F2 * shear

    @property
    def dx(self) -> float:
        return self.L / self.n

    def wavenumbers(self, *, dtype: torch.dtype = torch.float64, device=None) -> tuple[torch.Tensor, ...]:
        """``(kx, ky, κ²)`` on the ``rfft2`` grid, each ``(n, n//2 + 1)``."""
        n = self.n
        scale = 2 * math.pi / self.L
        kx = scale * torch.arange(n // 2 + 1, dtype=dtype, device=device)
        ky = scale * torch.fft.fftfreq(n, 1.0 / n, dtype=dtype, device=device)
        KX, KY = torch.meshgrid(kx, ky, indexing="xy")  # (n, n//2+1): rows ky, columns kx
        return KX, KY, KX**2 + KY**2

    def initial_condition(self) -> np.ndarray:
        """``q0`` on the grid ``(2, n, n)`` (default: :func:`qg_initial_condition` with seed 0)."""
        if self.q0 is None:
            return qg_initial_condition(self)
        if callable(self.q0):
            values = np.asarray(self.q0(self), dtype=np.float64)
            if values.shape != (2, self.n, self.n) or not np.all(np.isfinite(values)):
                raise ValueError(f"q0(problem) must return finite values of shape (2, {self.n}, {self.n})")
            return values
        return np.array(self.q0)

    def parameters(self) -> dict:
        """Every physical and grid parameter (JSON-ready; for cache keys and reports)."""
        return {
            "n": self.n,
            "L": self.L,
            "beta": self.beta,
            "rd": self.rd,
            "delta": self.delta,
            "U1": self.U1,
            "U2": self.U2,
            "rek": self.rek,
            "nu": self.nu,
            "nu_order": self.nu_order,
            "advection": self.advection,
            "t_span": list(self.t_span),
        }

    # -- inversion and diagnostics -------------------------------------------------------------------
    def invert(self, q_hat: torch.Tensor) -> torch.Tensor:
        """Streamfunction ``ψ̂`` ``(..., 2, n, n//2+1)`` from PV ``q̂`` (the mean mode is set to zero)."""
        _, _, k2 = self.wavenumbers(dtype=q_hat.real.dtype, device=q_hat.device)
        F1, F2 = self.F1, self.F2
        det = k2 * (k2 + F1 + F2)
        inv = torch.where(det > 0, 1.0 / torch.where(det > 0, det, 1.0), 0.0)
        q1, q2 = q_hat[..., 0, :, :], q_hat[..., 1, :, :]
        p1 = (-(k2 + F2) * q1 - F1 * q2) * inv
        p2 = (-F2 * q1 - (k2 + F1) * q2) * inv
        return torch.stack([p1, p2], dim=-3)

    def pv(self, psi_hat: torch.Tensor) -> torch.Tensor:
        """PV ``q̂`` from ``ψ̂`` (the inverse of :meth:`invert` on the non-mean modes)."""
        _, _, k2 = self.wavenumbers(dtype=psi_hat.real.dtype, device=psi_hat.device)
        p1, p2 = psi_hat[..., 0, :, :], psi_hat[..., 1, :, :]
        return torch.stack([-k2 * p1 + self.F1 * (p2 - p1), -k2 * p2 + self.F2 * (p1 - p2)], dim=-3)

    def energy(self, q: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Total (kinetic + available potential) energy per unit area, ``−½ Σ_i (H_i/H) ⟨ψ_i q_i⟩``."""
        q = torch.as_tensor(q, dtype=torch.float64)
        psi = torch.fft.irfft2(self.invert(torch.fft.rfft2(q)), s=(self.n, self.n))
        w1, w2 = self.weights
        prod = (psi * q).mean(dim=(-2, -1))
        return -0.5 * (w1 * prod[..., 0] + w2 * prod[..., 1])

    def enstrophy(self, q: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Potential enstrophy per unit area, ``½ Σ_i (H_i/H) ⟨q_i²⟩``."""
        q = torch.as_tensor(q, dtype=torch.float64)
        w1, w2 = self.weights
        sq = (q * q).mean(dim=(-2, -1))
        return 0.5 * (w1 * sq[..., 0] + w2 * sq[..., 1])

    def phillips_growth_rate(self, k: float, l: float = 0.0) -> float:
        """Linear growth rate of the mode ``exp(i(kx + ly))`` of the inviscid, drag-free model.

        Closed form from the 2×2 dispersion relation (quadratic in the phase speed ``c``; Phillips 1954,
        Vallis 2017 §9.5 for equal layers): ``k · max(Im c)``. Valid for any ``δ``, β, ``U1``, ``U2``;
        drag and hyperviscosity are ignored.
        """
        K2 = k * k + l * l
        F1, F2 = self.F1, self.F2
        Q1, Q2 = self.Qy
        U1, U2 = self.U1, self.U2
        # (U_i − c)(−K² q-inversion...) written as  A c² + B c + C = 0 for ψ_i ∝ exp(ik(x − ct))
        # layer i: (U_i − c)[−(K² + F_i) ψ_i + F_i ψ_j] + Q_i ψ_i = 0
        a11, a12 = -(K2 + F1), F1
        a21, a22 = F2, -(K2 + F2)
        # det [[(U1 − c) a11 + Q1, (U1 − c) a12], [(U2 − c) a21, (U2 − c) a22 + Q2]] = 0
        A = a11 * a22 - a12 * a21
        B = -(U1 + U2) * A - Q1 * a22 - Q2 * a11
        C = U1 * U2 * A + U1 * a11 * Q2 + U2 * a22 * Q1 + Q1 * Q2
        disc = B * B - 4 * A * C
        if disc >= 0:
            return 0.0
        return abs(k) * math.sqrt(-disc) / (2 * abs(A))

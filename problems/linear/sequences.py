"""Sequences of related linear systems, as met by solvers inside a simulation (definitions only).

Two families from Khodak, Chow, Balcan & Talwalkar, *Learning to Relax: Setting Solver Parameters Across
a Sequence of Linear System Instances* (ICLR 2024), both built on the shared :class:`PoissonGrid` stencil:

* :class:`ShiftedLaplacianSequence` — ``A_t = A + c_t I`` with ``A`` the 5-point Laplacian on a 10×10
  interior with unit spacing (smallest eigenvalue 4(1 − cos(π/11)) ≈ 0.162), i.i.d. shifts
  ``c_t = −0.15 + 0.6·Beta(0.5, 1.5)`` (high variance) or ``−0.15 + 0.6·Beta(2, 6)`` (low variance), and
  right-hand sides ``b_t`` standard Gaussian truncated radially to ``‖b‖ <= √n``.
* :class:`HeatEquation2D` — Crank–Nicolson steps of ``u_t = κ(t) Δu + f(t, x)`` on the unit square with
  zero Dirichlet walls: ``(I + ½ κ dt K) u_{k+1} = (I − ½ κ dt K) u_k + dt f`` with ``K = −Δ_h`` the
  5-point matrix, ``κ(t) = max(0.1 sin 2πt, −10 sin 2πt)``, a bump forcing moving on a circle, and the
  previous state as the natural warm start.

Nothing here solves a system; the solvers live in ``sciml.solvers.linear`` and the loops in ``sciml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal, NamedTuple

import numpy as np
import scipy.sparse as sp
from sciml.problems.linear.grid import PoissonGrid

__all__ = [
    "LinearInstance",
    "ShiftedLaplacianSequence",
    "HeatEquation2D",
    "VariableDiffusionSequence",
    "RotatedAnisotropicSequence",
    "bump",
]


class LinearInstance(NamedTuple):
    """One system of a sequence: ``A x = b``, a scalar ``context`` describing it (the shift or the
    diffusion coefficient), and the natural initial guess ``x0`` (``None`` for zero)."""

    A: sp.csr_array
    b: np.ndarray
    context: float
    x0: np.ndarray | None = None


_BETA = {"high": (0.5, 1.5), "low": (2.0, 6.0)}


@dataclass(frozen=True)
class ShiftedLaplacianSequence:
    """i.i.d. shifted Laplacians ``A_t = A + c_t I`` with ``c_t = offset + scale · Beta(a, b)``.

    Args:
        variance: ``"high"`` (Beta(0.5, 1.5)) or ``"low"`` (Beta(2, 6)).
        size: interior points per side (``size²`` unknowns); spacing 1, so ``A`` has 4 on the diagonal.
        offset, scale: the affine map of the Beta sample (−0.15 and 0.6 in the paper).
        seed: seeds the shifts and the right-hand sides (independent streams, so the first ``T`` instances
            do not depend on how many are drawn).

    Raises:
        ValueError: unknown ``variance``, ``size < 2``, or a shift range reaching ``−λ_min(A)`` (the
            systems would stop being positive definite).
    """

    variance: Literal["high", "low"] = "high"
    size: int = 10
    offset: float = -0.15
    scale: float = 0.6
    seed: int = 0

    def __post_init__(self) -> None:
        if self.variance not in _BETA:
            raise ValueError(f"`variance` must be 'high' or 'low', got {self.variance!r}")
        if int(self.size) != self.size or self.size < 2:
            raise ValueError(f"`size` must be an integer >= 2, got {self.size}")
        if not self.scale > 0:
            raise ValueError(f"`scale` must be positive, got {self.scale}")
        if self.offset <= -self.smallest_eigenvalue:
            raise ValueError(
                f"`offset` {self.offset} makes A + c I singular or indefinite (λ_min(A) = "
                f"{self.smallest_eigenvalue:.4f}); use offset > {-self.smallest_eigenvalue:.4f}"
            )

    def replace(self, **changes) -> ShiftedLaplacianSequence:
        return replace(self, **changes)

    @property
    def grid(self) -> PoissonGrid:
        """The shared stencil: ``size²`` interior nodes at unit spacing, Dirichlet walls one step away."""
        n = self.size
        return PoissonGrid((n, n), lower=(0.0, 0.0), upper=(n + 1.0, n + 1.0), wall_distance=1.0)

    @property
    def n(self) -> int:
        return self.size * self.size

    @property
    def smallest_eigenvalue(self) -> float:
        """``λ_min(A) = 4 (1 − cos(π/(size+1)))`` (≈ 0.162 for size 10)."""
        return 4.0 * (1.0 - np.cos(np.pi / (self.size + 1)))

    @property
    def context_range(self) -> tuple[float, float]:
        """The support of ``c_t``: ``[offset, offset + scale]``."""
        return (self.offset, self.offset + self.scale)

    def matrix(self) -> sp.csr_array:
        """The unshifted 5-point matrix ``A``."""
        return sp.csr_array(self.grid.matrix())

    def _streams(self) -> tuple[np.random.Generator, np.random.Generator]:
        shift_seed, rhs_seed = np.random.SeedSequence(self.seed).spawn(2)
        return np.random.default_rng(shift_seed), np.random.default_rng(rhs_seed)

    def shifts(self, T: int) -> np.ndarray:
        """The first ``T`` shifts ``c_t``."""
        a, b = _BETA[self.variance]
        return self.offset + self.scale * self._streams()[0].beta(a, b, size=_count(T))

    def rhs(self, T: int) -> np.ndarray:
        """The first ``T`` right-hand sides, shape ``(T, n)``: ``N(0, I)`` conditioned on ``‖b‖ <= √n``
        (rejection sampling, acceptance about one half)."""
        rng = self._streams()[1]
        out = np.empty((_count(T), self.n))
        for t in range(out.shape[0]):
            while True:
                sample = rng.standard_normal(self.n)
                if sample @ sample <= self.n:
                    out[t] = sample
                    break
        return out

    def jacobi_spectral_radius(self, shift: float | np.ndarray) -> float | np.ndarray:
        """Exact ``ρ(I − D⁻¹A_t)`` for shift ``c``: ``(4 − λ_min(A)) / (4 + c)`` (constant diagonal 4 + c)."""
        return (4.0 - self.smallest_eigenvalue) / (4.0 + np.asarray(shift, dtype=float))

    def instances(self, T: int) -> Iterator[LinearInstance]:
        """The first ``T`` systems ``(A + c_t I, b_t, context=c_t)``."""
        A = self.matrix()
        eye = sp.eye_array(self.n, format="csr")
        for c, b in zip(self.shifts(T), self.rhs(T)):
            yield LinearInstance(sp.csr_array(A + c * eye), b, float(c))


def _count(T: int) -> int:
    if int(T) != T or T < 0:
        raise ValueError(f"`T` must be a non-negative integer, got {T}")
    return int(T)


def bump(points: np.ndarray, centre: tuple[float, float], radius: float) -> np.ndarray:
    """Smooth compactly supported bump ``exp(1 − 1/(1 − ρ²))`` for ``ρ = |x − centre|/radius < 1``, else 0.

    Peak value 1 at the centre. ``points`` has shape ``(..., 2)``.
    """
    rho2 = (((points - np.asarray(centre)) / radius) ** 2).sum(axis=-1)
    out = np.zeros(rho2.shape)
    inside = rho2 < 1.0
    out[inside] = np.exp(1.0 - 1.0 / (1.0 - rho2[inside]))
    return out


@dataclass(frozen=True)
class HeatEquation2D:
    """Crank–Nicolson time stepping of ``u_t = κ(t) Δu + f(t, x)`` on the unit square, zero Dirichlet walls.

    Step ``k`` (time ``t_k = k dt``) solves ``A_k u_{k+1} = b_k`` with

        A_k = I + ½ κ(t_k + dt/2) dt K,     b_k = (I − ½ κ(t_k + dt/2) dt K) u_k + dt f(t_k + dt/2),

    ``K = −Δ_h`` on ``N × N`` interior nodes (spacing ``1/(N+1)``), ``κ(t) = max(κ_low sin 2πt,
    −κ_high sin 2πt)`` and ``f(t, x) = amplitude · bump(x; (½ + r cos 2πνt, ½ + r sin 2πνt), radius)``.
    The initial state is ``bump(x; (½, ½), 0.25)``; ``u_k`` is the warm start of step ``k``.

    Args:
        N: interior nodes per side (``N²`` unknowns).
        dt: time step; ``steps`` steps cover ``[0, steps · dt]``.
        kappa_low, kappa_high: the two amplitudes of the diffusion coefficient.
        amplitude, radius, orbit, frequency: the moving forcing bump (32, 0.125, 0.25, 8 revolutions per
            unit time).

    Raises:
        ValueError: ``N < 2``, non-positive ``dt`` or ``steps``, negative amplitudes.
    """

    N: int = 100
    dt: float = 1e-3
    steps: int = 5000
    kappa_low: float = 0.1
    kappa_high: float = 10.0
    amplitude: float = 32.0
    radius: float = 0.125
    orbit: float = 0.25
    frequency: float = 8.0

    def __post_init__(self) -> None:
        if int(self.N) != self.N or self.N < 2:
            raise ValueError(f"`N` must be an integer >= 2, got {self.N}")
        if not self.dt > 0 or int(self.steps) != self.steps or self.steps < 1:
            raise ValueError(f"`dt` must be > 0 and `steps` a positive integer, got {self.dt}, {self.steps}")
        if min(self.kappa_low, self.kappa_high, self.amplitude, self.radius) < 0:
            raise ValueError("`kappa_low`, `kappa_high`, `amplitude` and `radius` must be >= 0")

    def replace(self, **changes) -> HeatEquation2D:
        return replace(self, **changes)

    @cached_property
    def grid(self) -> PoissonGrid:
        return PoissonGrid((self.N, self.N), wall_distance=1.0)

    @cached_property
    def _points(self) -> np.ndarray:
        return self.grid.to_vector(np.moveaxis(self.grid.coordinates(), -1, 0)).T

    @property
    def n(self) -> int:
        return self.N * self.N

    def kappa(self, t: float | np.ndarray) -> float | np.ndarray:
        """Diffusion coefficient ``max(κ_low sin 2πt, −κ_high sin 2πt)`` (>= 0)."""
        s = np.sin(2.0 * np.pi * np.asarray(t, dtype=float))
        out = np.maximum(self.kappa_low * s, -self.kappa_high * s)
        return float(out) if out.ndim == 0 else out

    @property
    def context_range(self) -> tuple[float, float]:
        """The range of ``κ``: ``[0, max(κ_low, κ_high)]``."""
        return (0.0, max(self.kappa_low, self.kappa_high))

    def jacobi_spectral_radius(self, k: int) -> float:
        """Exact ``ρ(I − D⁻¹A_k)``: with ``a = ½ κ dt / h²``, ``4 a cos(π h) / (1 + 4 a)``."""
        h = self.grid.spacing[0]
        a = 0.5 * self.context(k) * self.dt / h**2
        return 4.0 * a * np.cos(np.pi * h) / (1.0 + 4.0 * a)

    def laplacian(self) -> sp.csr_array:
        """``K = −Δ_h`` (SPD) on the unknowns."""
        return sp.csr_array(self.grid.matrix())

    def forcing(self, t: float) -> np.ndarray:
        """``f(t, ·)`` on the unknowns."""
        phase = 2.0 * np.pi * self.frequency * t
        centre = (0.5 + self.orbit * np.cos(phase), 0.5 + self.orbit * np.sin(phase))
        return self.amplitude * bump(self._points, centre, self.radius)

    def initial(self) -> np.ndarray:
        """``u_0``: a bump of radius 0.25 in the centre."""
        return bump(self._points, (0.5, 0.5), 0.25)

    def context(self, k: int) -> float:
        """``κ`` at the midpoint of step ``k`` (what the step's matrix depends on)."""
        return self.kappa((k + 0.5) * self.dt)

    @staticmethod
    def _diagonal_positions(K: sp.csr_array) -> np.ndarray:
        rows = np.repeat(np.arange(K.shape[0]), np.diff(K.indptr))
        pos = np.flatnonzero(rows == K.indices)
        if pos.size != K.shape[0]:
            raise ValueError("`K` must store its full diagonal")
        return pos

    def system(self, k: int, u: np.ndarray, K: sp.csr_array | None = None) -> LinearInstance:
        """The system of step ``k`` from state ``u = u_k``: ``(A_k, b_k, context=κ, x0=u)``.

        Pass ``K = self.laplacian()`` when calling in a loop to skip rebuilding it.
        """
        if not 0 <= k < self.steps:
            raise ValueError(f"step `k` must lie in [0, {self.steps}), got {k}")
        u = np.asarray(u, dtype=np.float64)
        if u.shape != (self.n,):
            raise ValueError(f"`u` must have shape ({self.n},), got {u.shape}")
        K = self.laplacian() if K is None else K
        kappa = self.context(k)
        half = 0.5 * kappa * self.dt
        A = sp.csr_array(
            (half * K.data, K.indices, K.indptr), shape=K.shape
        )  # K's pattern holds the diagonal
        A.data[self._diagonal_positions(K)] += 1.0
        b = u - half * (K @ u) + self.dt * self.forcing((k + 0.5) * self.dt)
        return LinearInstance(A, b, kappa, u)


def _grid_index(N: int) -> np.ndarray:
    return np.arange(N * N).reshape(N, N)


def _stencil_matrix(
    N: int, offsets: dict[tuple[int, int], np.ndarray | float], centre: np.ndarray
) -> sp.csr_array:
    """Assemble ``N² × N²`` from per-node coefficients of neighbours at ``(di, dj)`` (Dirichlet: neighbours
    outside the grid dropped) and the centre coefficient."""
    idx = _grid_index(N)
    rows, cols, vals = [idx.ravel()], [idx.ravel()], [np.broadcast_to(centre, (N, N)).ravel()]
    for (di, dj), coef in offsets.items():
        coef = np.broadcast_to(np.asarray(coef, dtype=np.float64), (N, N))
        i0, i1 = max(0, -di), N - max(0, di)
        j0, j1 = max(0, -dj), N - max(0, dj)
        rows.append(idx[i0:i1, j0:j1].ravel())
        cols.append(idx[i0 + di : i1 + di, j0 + dj : j1 + dj].ravel())
        vals.append(coef[i0:i1, j0:j1].ravel())
    A = sp.coo_array(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(N * N, N * N)
    )
    A = sp.csr_array(A)
    A.sum_duplicates()
    A.eliminate_zeros()
    return A


def _check_positive_int(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or int(value) != value or value < least:
        raise ValueError(f"`{name}` must be an integer >= {least}, got {value!r}")


@dataclass(frozen=True)
class VariableDiffusionSequence:
    """Variable-coefficient diffusion–reaction systems ``−∇·(a_t ∇u) + c_t u = f_t`` on the unit square.

    Each system draws a fresh log-normal coefficient ``a_t = exp(σ g_t)`` (``g_t`` a smooth Gaussian
    field: random sine modes ``k, l <= modes`` with amplitudes ``1/(k² + l²)``, normalised to unit
    standard deviation), a reaction coefficient ``c_t ~ U[0, reaction]`` and a right-hand side
    ``b_t ~ N(0, I)``. The 5-point finite-volume discretisation on ``N × N`` interior nodes (spacing
    ``h = 1/(N+1)``, zero Dirichlet walls) uses harmonic means of ``a`` on the faces: symmetric positive
    definite and consistently ordered, so Young's formula applies to every system.

    Args:
        N: interior nodes per side (64: 4096 unknowns).
        sigma: standard deviation of ``log a``.
        reaction: upper end of the reaction coefficient's range (``c_t ∈ [0, reaction]``).
        modes: sine modes per direction in ``g``.
        seed: seeds coefficients, reactions and right-hand sides (the first ``T`` systems do not depend on
            how many are drawn).

    Raises:
        ValueError: ``N < 2``, ``modes < 1``, negative ``sigma`` or ``reaction``.
    """

    N: int = 64
    sigma: float = 1.0
    reaction: float = 50.0
    modes: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("N", self.N, 2)
        _check_positive_int("modes", self.modes, 1)
        if not (self.sigma >= 0 and self.reaction >= 0):
            raise ValueError(f"`sigma` and `reaction` must be >= 0, got {self.sigma}, {self.reaction}")

    @property
    def n(self) -> int:
        return self.N * self.N

    @property
    def context_range(self) -> tuple[float, float]:
        """The range of the context (the reaction coefficient): ``[0, reaction]``."""
        return (0.0, max(float(self.reaction), 1e-12))

    def coefficient(self, rng: np.random.Generator) -> np.ndarray:
        """One draw of ``a`` on the ``(N+2)²`` nodes including the walls."""
        x = np.linspace(0.0, 1.0, self.N + 2)
        k = np.arange(1, self.modes + 1)
        S = np.sin(np.pi * np.outer(k, x))  # (modes, N+2)
        amp = rng.standard_normal((self.modes, self.modes)) / (k[:, None] ** 2 + k[None, :] ** 2)
        g = S.T @ amp @ S
        g = (g - g.mean()) / max(g.std(), 1e-300)
        return np.exp(self.sigma * g)

    def system(self, a: np.ndarray, c: float) -> sp.csr_array:
        """The matrix for coefficient nodes ``a`` (``(N+2)²``) and reaction ``c``."""
        N, h2 = self.N, (1.0 / (self.N + 1)) ** 2
        inner = a[1:-1, 1:-1]

        def face(other):
            return 2.0 * inner * other / (inner + other) / h2

        east, west = face(a[2:, 1:-1]), face(a[:-2, 1:-1])
        north, south = face(a[1:-1, 2:]), face(a[1:-1, :-2])
        centre = east + west + north + south + c
        return _stencil_matrix(N, {(1, 0): -east, (-1, 0): -west, (0, 1): -north, (0, -1): -south}, centre)

    def instances(self, T: int) -> Iterator[LinearInstance]:
        """The first ``T`` systems ``(A_t, b_t, context=c_t)``."""
        coef_seed, react_seed, rhs_seed = np.random.SeedSequence(self.seed).spawn(3)
        coef_rng, react_rng, rhs_rng = (np.random.default_rng(s) for s in (coef_seed, react_seed, rhs_seed))
        for _ in range(_count(T)):
            a = self.coefficient(coef_rng)
            c = float(react_rng.uniform(0.0, self.reaction))
            yield LinearInstance(self.system(a, c), rhs_rng.standard_normal(self.n), c)


@dataclass(frozen=True)
class RotatedAnisotropicSequence:
    """Rotated anisotropic diffusion ``−∇·(K_t ∇u) = f_t`` with ``K_t = R(φ_t) diag(1, ε_t) R(φ_t)ᵀ``.

    ``φ_t ~ U[0, π)``, ``ε_t`` log-uniform on ``[eps_min, 1]``, ``b_t ~ N(0, I)``; the 9-point stencil
    (central differences, the mixed derivative on the four diagonal neighbours) on ``N × N`` interior
    nodes with zero Dirichlet walls. Symmetric positive definite, but **not consistently ordered** (the
    diagonal neighbours break the red–black structure), so Young's formula does not give the optimal SOR
    factor, and for strong anisotropy at oblique angles the Jacobi iteration itself diverges.

    Args:
        N: interior nodes per side.
        eps_min: the strongest anisotropy ratio (0 < eps_min <= 1).
        seed: seeds angles, ratios and right-hand sides.

    Raises:
        ValueError: ``N < 2`` or ``eps_min`` outside (0, 1].
    """

    N: int = 32
    eps_min: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("N", self.N, 2)
        if not 0 < self.eps_min <= 1:
            raise ValueError(f"`eps_min` must lie in (0, 1], got {self.eps_min}")

    @property
    def n(self) -> int:
        return self.N * self.N

    @property
    def context_range(self) -> tuple[float, float]:
        """The range of the context ``log10 ε``: ``[log10 eps_min, 0]``."""
        return (float(np.log10(self.eps_min)), 0.0 if self.eps_min < 1 else 1e-12)

    def system(self, phi: float, eps: float) -> sp.csr_array:
        """The 9-point matrix for angle ``phi`` and ratio ``eps``."""
        c, s = np.cos(phi), np.sin(phi)
        k11, k22, k12 = c * c + eps * s * s, s * s + eps * c * c, (1.0 - eps) * c * s
        h2 = (1.0 / (self.N + 1)) ** 2
        offsets = {
            (1, 0): -k11 / h2,
            (-1, 0): -k11 / h2,
            (0, 1): -k22 / h2,
            (0, -1): -k22 / h2,
            (1, 1): -0.5 * k12 / h2,
            (-1, -1): -0.5 * k12 / h2,
            (1, -1): 0.5 * k12 / h2,
            (-1, 1): 0.5 * k12 / h2,
        }
        return _stencil_matrix(self.N, offsets, np.full((self.N, self.N), 2.0 * (k11 + k22) / h2))

    def instances(self, T: int) -> Iterator[LinearInstance]:
        """The first ``T`` systems ``(A_t, b_t, context=log10 ε_t)``."""
        par_seed, rhs_seed = np.random.SeedSequence(self.seed).spawn(2)
        par_rng, rhs_rng = np.random.default_rng(par_seed), np.random.default_rng(rhs_seed)
        lo = np.log10(self.eps_min)
        for _ in range(_count(T)):
            phi = float(par_rng.uniform(0.0, np.pi))
            log_eps = float(par_rng.uniform(lo, 0.0))
            yield LinearInstance(self.system(phi, 10.0**log_eps), rhs_rng.standard_normal(self.n), log_eps)

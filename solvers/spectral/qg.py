"""Pseudo-spectral two-layer QG solver: ``rfft2``, 2/3 dealiasing, ETDRK4 for the hyperviscosity.

The stiff part of :class:`~sciml.problems.qg.QGProblem` is the hyperviscosity ``−ν κ^{2p}``, diagonal in
Fourier space and equal in both layers: it is integrated exactly by Cox & Matthews' ETDRK4 with Kassam &
Trefethen's contour coefficients (shared with :mod:`sciml.solvers.spectral.etdrk4`). Everything else —
advection ``a J(ψ, q)`` (flux form ``∂x(u q) + ∂y(v q)``, products dealiased by the 2/3 rule), mean-flow
advection, the β/shear PV gradient and bottom drag (which couple the layers through the inversion) — is the
explicit part. States are PV grids ``(..., 2, n, n)`` in float64; any leading batch axes (an ensemble)
step together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from sciml.problems.qg import QGProblem
from sciml.solvers.cache import cached_arrays
from sciml.solvers.spectral.etdrk4 import ETDRK4Coefficients, etdrk4_coefficients, small_work_threads
from tqdm.auto import tqdm

__all__ = ["QGStepper", "QGSolution", "solve_qg", "cached_qg", "energy_spectrum", "QG_SOLVER_VERSION"]

#: bump when the integrator changes in a way that changes its results
QG_SOLVER_VERSION = 1


class QGStepper:
    """ETDRK4 stepper for one :class:`~sciml.problems.qg.QGProblem` and step ``dt``.

    Args:
        problem: the QG problem.
        dt: the time step.

    Other Args:
        extra: ``g(q_hat, psi_hat) -> tendency_hat`` added to the explicit part (``(..., 2, n, n//2+1)``
            complex), e.g. a discovered correction; ``None`` for none.
        linear: a Fourier symbol ``σ`` (broadcastable to ``(2, n, n//2+1)``, one per layer) added to the
            hyperviscosity's ``−ν κ^{2p}`` in the exactly integrated part: the term ``σ q̂`` (e.g. a
            discovered ``c ∇⁸q``, symbol ``c κ⁸``) is then stepped as the model's own hyperviscosity is,
            which an explicit term of that stiffness (``|σ| dt ≫ 1``) could not be. ``None`` for none.

    Raises:
        ValueError: ``dt`` is not positive and finite, or ``linear`` does not broadcast to the layers'
            Fourier grid or is not finite.
        TypeError: ``problem`` is not a ``QGProblem``.
    """

    def __init__(
        self,
        problem: QGProblem,
        dt: float,
        *,
        extra: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        linear: torch.Tensor | None = None,
    ) -> None:
        if not isinstance(problem, QGProblem):
            raise TypeError(f"problem must be a QGProblem, got {type(problem).__name__}")
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive and finite, got {dt}")
        self.problem, self.dt, self.extra = problem, dt, extra
        n = problem.n
        kx, ky, k2 = problem.wavenumbers()
        self.ikx, self.iky, self.k2 = 1j * kx, 1j * ky, k2
        cut = (2.0 / 3.0) * (n / 2) * (2 * math.pi / problem.L)
        self.mask = ((kx.abs() < cut) & (ky.abs() < cut)).to(torch.complex128)
        symbol = (-problem.nu * k2**problem.nu_order).to(torch.complex128)
        if linear is not None:
            linear = torch.as_tensor(linear).to(torch.complex128)
            try:
                symbol = (symbol + linear).expand(2, n, n // 2 + 1)
            except RuntimeError:
                raise ValueError(
                    f"linear must broadcast to the layers' Fourier grid (2, {n}, {n // 2 + 1}), "
                    f"got shape {tuple(linear.shape)}"
                ) from None
            if not bool(torch.isfinite(symbol).all()):
                raise ValueError("linear (the added Fourier symbol) must be finite")
        shape = symbol.shape
        coefficients = etdrk4_coefficients(symbol.reshape(-1), dt)
        self.coefficients = ETDRK4Coefficients(*(c.reshape(shape) for c in coefficients))

    def tendency_hat(self, q_hat: torch.Tensor) -> torch.Tensor:
        """The explicit (non-hyperviscous) tendency ``∂t q̂`` (dealiased)."""
        p = self.problem
        n = p.n
        psi_hat = p.invert(q_hat)
        out = torch.zeros_like(q_hat)
        if p.advection != 0.0:
            u = torch.fft.irfft2(-self.iky * psi_hat, s=(n, n))
            v = torch.fft.irfft2(self.ikx * psi_hat, s=(n, n))
            q = torch.fft.irfft2(q_hat, s=(n, n))
            jac = self.ikx * torch.fft.rfft2(u * q) + self.iky * torch.fft.rfft2(v * q)
            out = out - p.advection * jac
        U = torch.tensor([p.U1, p.U2], dtype=torch.float64).reshape(2, 1, 1)
        Qy = torch.tensor(p.Qy, dtype=torch.float64).reshape(2, 1, 1)
        out = out - U * self.ikx * q_hat - Qy * self.ikx * psi_hat
        if p.rek != 0.0:
            drag = torch.zeros_like(q_hat)
            drag[..., 1, :, :] = p.rek * self.k2 * psi_hat[..., 1, :, :]
            out = out + drag
        if self.extra is not None:
            out = out + self.extra(q_hat, psi_hat)
        return out * self.mask

    def step_hat(self, v: torch.Tensor) -> torch.Tensor:
        """One ETDRK4 step of ``q̂`` ``(..., 2, n, n//2+1)``."""
        E, E2, Q, f1, f2, f3 = self.coefficients
        N = self.tendency_hat
        Nv = N(v)
        a = E2 * v + Q * Nv
        Na = N(a)
        b = E2 * v + Q * Na
        Nb = N(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = N(c)
        return E * v + f1 * Nv + 2 * f2 * (Na + Nb) + f3 * Nc

    def _check(self, q) -> torch.Tensor:
        q = torch.as_tensor(q, dtype=torch.float64)
        n = self.problem.n
        if q.ndim < 3 or tuple(q.shape[-3:]) != (2, n, n):
            raise ValueError(f"PV state must have shape (..., 2, {n}, {n}), got {tuple(q.shape)}")
        return q

    def advance(self, q: torch.Tensor | np.ndarray, n_steps: int) -> torch.Tensor:
        """``n_steps`` steps from PV grids ``q`` ``(..., 2, n, n)``."""
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
        q = self._check(q)
        v = torch.fft.rfft2(q)
        with small_work_threads(q.numel()):
            for _ in range(int(n_steps)):
                v = self.step_hat(v)
        return torch.fft.irfft2(v, s=q.shape[-2:])


class QGSolution(NamedTuple):
    """Save times ``ts`` ``(T,)``, PV ``qs`` ``(T, ..., 2, n, n)`` and energies ``energy`` ``(T, ...)``."""

    ts: np.ndarray
    qs: torch.Tensor
    energy: torch.Tensor


def solve_qg(
    problem: QGProblem,
    dt: float,
    saveat: np.ndarray | list[float],
    *,
    q0: torch.Tensor | np.ndarray | None = None,
    progress: bool | str = False,
) -> QGSolution:
    """Integrate ``problem`` from ``t_span[0]`` and return PV at ``saveat`` (times on the step grid).

    Args:
        problem: the QG problem.
        dt: the ETDRK4 step.
        saveat: increasing times ``≥ t_span[0]``, each ``t0 + m·dt``.

    Other Args:
        q0: initial PV ``(..., 2, n, n)`` (default ``problem.initial_condition()``).
        progress: a tqdm bar; a string is its description.

    Raises:
        ValueError: save times off the step grid or unsorted; a wrong-shaped ``q0``.
        FloatingPointError: the solution became non-finite (the message gives the time).
    """
    stepper = QGStepper(problem, dt)
    t0 = problem.t_span[0]
    saveat = np.atleast_1d(np.asarray(saveat, dtype=np.float64))
    if saveat.ndim != 1 or saveat.size == 0 or np.any(np.diff(saveat) < 0) or saveat[0] < t0 - 1e-12:
        raise ValueError(f"saveat must be a sorted 1-D array of times >= t0 = {t0}")
    steps = (saveat - t0) / dt
    counts = np.rint(steps).astype(np.int64)
    if np.any(np.abs(steps - counts) > 1e-6 * np.maximum(1.0, steps)):
        raise ValueError(f"save times must be t0 + a whole number of steps dt = {dt}")
    q = stepper._check(problem.initial_condition() if q0 is None else q0)
    v = torch.fft.rfft2(q)
    out = torch.empty((len(saveat), *q.shape), dtype=torch.float64)
    desc = progress if isinstance(progress, str) else f"QG {problem.name}"
    bar = tqdm(total=int(counts[-1]), disable=not progress, desc=desc)
    with small_work_threads(q.numel()):
        _integrate(stepper, v, counts, out, bar, problem, dt, t0)
    bar.close()
    if not bool(torch.isfinite(out).all()):
        raise FloatingPointError(f"the QG solution of {problem.name!r} became non-finite; reduce dt")
    return QGSolution(saveat, out, problem.energy(out))


def _integrate(stepper, v, counts, out, bar, problem, dt, t0) -> None:
    n = problem.n
    done = 0
    for i, target in enumerate(counts):
        while done < target:
            v = stepper.step_hat(v)
            done += 1
            bar.update(1)
            if done % 200 == 0 and not bool(torch.isfinite(v).all()):
                bar.close()
                raise FloatingPointError(
                    f"the QG solution of {problem.name!r} became non-finite by t = {t0 + done * dt:g}; "
                    "reduce dt or raise the hyperviscosity nu"
                )
        out[i] = torch.fft.irfft2(v, s=(n, n))


def cached_qg(
    problem: QGProblem,
    dt: float,
    saveat: np.ndarray | list[float],
    *,
    seed: int = 0,
    what: str = "QG trajectory",
    progress: bool = True,
    directory=None,
) -> dict[str, np.ndarray]:
    """``{"t", "q", "energy"}`` of :func:`solve_qg` from the random initial PV of ``seed``, cached in HDF5.

    The cache key holds every parameter of ``problem``, ``dt``, ``seed``, the save times and the solver
    version. ``problem.q0`` must be ``None`` (the seed defines the start). The first run shows a tqdm bar
    whose description is ``what`` (say what is computed, e.g. "spin-up of the QG truth (cached)").

    Raises:
        ValueError: ``problem.q0`` is set (pass it through ``solve_qg`` instead).
    """
    from sciml.problems.qg import qg_initial_condition

    if problem.q0 is not None:
        raise ValueError("cached_qg starts from the random state of `seed`; use a problem with q0=None")
    saveat = np.asarray(saveat, dtype=np.float64)
    params = {
        "method": "etdrk4-qg",
        "version": QG_SOLVER_VERSION,
        "dt": float(dt),
        "seed": int(seed),
        "problem": problem.parameters(),
        "saveat": saveat.tolist(),
    }

    def compute() -> dict[str, np.ndarray]:
        q0 = qg_initial_condition(problem, seed=seed)
        solution = solve_qg(problem, dt, saveat, q0=q0, progress=what if progress else False)
        return {"t": solution.ts, "q": solution.qs.numpy(), "energy": solution.energy.numpy()}

    return cached_arrays(f"qg-{problem.name}", params, compute, directory=directory)


def energy_spectrum(problem: QGProblem, q: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotropic kinetic-energy spectrum (depth-weighted, both layers) of PV grids ``(..., 2, n, n)``.

    Returns:
        ``(k, E_k)``: shell wavenumbers (multiples of ``2π/L``, up to ``n/2``) and the energy per shell,
        averaged over the leading axes. ``Σ E_k`` is the kinetic energy per unit area.
    """
    q = torch.as_tensor(q, dtype=torch.float64)
    n = problem.n
    psi_hat = problem.invert(torch.fft.rfft2(q))
    kx, ky, k2 = problem.wavenumbers()
    density = k2 * psi_hat.abs() ** 2 / n**4  # |∇ψ|² per mode
    density = density.clone()
    density[..., 1:-1] *= 2  # rfft halves: interior columns stand for ±kx
    w = torch.tensor(problem.weights, dtype=torch.float64).reshape(2, 1, 1)
    density = 0.5 * (w * density).sum(dim=-3).reshape(-1, n, n // 2 + 1).mean(dim=0)
    shell = torch.round(torch.sqrt(k2) / (2 * math.pi / problem.L)).long()
    kmax = n // 2
    spectrum = torch.zeros(kmax + 1, dtype=torch.float64)
    keep = shell <= kmax
    spectrum.index_add_(0, shell[keep], density[keep])
    return np.arange(kmax + 1) * (2 * math.pi / problem.L), spectrum.numpy()

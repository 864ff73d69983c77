"""ETDRK4: fourth-order exponential time differencing Runge–Kutta for semilinear periodic PDEs.

For ``v̂_t = L v̂ + N(v̂)`` in Fourier space (``L`` the diagonal linear symbol, ``N`` the pseudo-spectral
nonlinear part of a :class:`~sciml.problems.semilinear.SemilinearPeriodicProblem`), one step of size ``h`` is
Cox & Matthews' ETDRK4 (J. Comput. Phys. 176, 2002):

    a = E₂v + Q N(v),   b = E₂v + Q N(a),   c = E₂a + Q (2N(b) − N(v))
    v ← E v + f₁ N(v) + 2 f₂ (N(a) + N(b)) + f₃ N(c),      E = e^{hL}, E₂ = e^{hL/2},

with ``Q, f₁, f₂, f₃`` (φ-functions of ``hL``) evaluated by Kassam & Trefethen's contour integral
(SIAM J. Sci. Comput. 26, 2005): the mean over ``M`` points on a unit circle around each ``hL``, which
avoids the cancellation of the explicit formulas at small ``|hL|``. For a real symbol (even derivatives
only) the ``M = 16`` points lie on the upper half circle and the real part is taken (their choice); for a
complex symbol (odd linear derivatives, e.g. ``u_xxx``) ``2M`` points cover the whole circle.

Transforms are ``rfft``/``irfft`` (real data stay real; a complex FFT lets round-off grow through the
unstable modes of KS). No dealiasing by default: the KS solutions of the project are resolved to round-off
at N = 1024, L = 100. ``dealias=True`` zeroes the top third of the nonlinear term's modes (2/3 rule), for
under-resolved runs of quadratic nonlinearities.

States are torch tensors of shape ``(..., n)`` (any batch, e.g. an ensemble), float64 by default.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np
import torch
from sciml.problems.semilinear import SemilinearPeriodicProblem
from tqdm.auto import tqdm

__all__ = [
    "ETDRK4",
    "ETDRK4Coefficients",
    "IllPosedProblemError",
    "SpectralSolution",
    "solve_spectral",
    "small_work_threads",
]

#: an ill-posed run is reported as failed once round-off at the grid scale can grow by more than this
ILL_POSED_AMPLIFICATION = 1e12


class IllPosedProblemError(ValueError, FloatingPointError):
    """:func:`solve_spectral` of an ill-posed problem over a span where its growth swamps the solution.

    A ``ValueError`` (bad input) and a ``FloatingPointError`` (what a blow-up raises), so either catches it.
    """


def _ill_posed_message(problem: SemilinearPeriodicProblem, span: float) -> str | None:
    """Why integrating ``problem`` over ``span`` is meaningless, or ``None`` when it is not.

    The linear symbol's real part grows without bound in ``k`` (:attr:`~SemilinearPeriodicProblem.
    ill_posed_term`) and its largest value on the grid, times ``span``, amplifies round-off by more than
    :data:`ILL_POSED_AMPLIFICATION`.
    """
    term = problem.ill_posed_term
    if term is None:
        return None
    rate = float(problem.linear_symbol().real.max())
    if not rate * span > math.log(ILL_POSED_AMPLIFICATION):
        return None
    return (
        f"the model {problem.name!r} is ill-posed: its linear term {term} gives Fourier mode k a growth rate "
        f"that increases without bound with k (here {rate:.3g} at the grid's highest mode), so over "
        f"t = {span:g} round-off at the grid scale grows by e^{rate * span:.3g} and swamps the solution (it "
        "blows up or becomes meaningless, whatever the grid or dt); make the highest even derivative damp "
        "(e.g. +u_xx or -u_xxxx in u_t = ...) or integrate over a much shorter time"
    )


#: below this many state values per step, stepping runs on one thread (more only add overhead)
SMALL_WORK = 1 << 16


@contextlib.contextmanager
def small_work_threads(numel: int) -> Iterator[None]:
    """Run small batched FFT work on one torch thread; leave the setting alone for large work.

    Each ETDRK4 step is a few dozen tiny kernels; with several threads their start-up (and, on a busy
    machine, spinning threads) costs more than the arithmetic — ten times more was measured here.
    """
    threads = torch.get_num_threads()
    if numel >= SMALL_WORK or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ETDRK4Coefficients(NamedTuple):
    """Diagonal ETDRK4 coefficients for one step size (complex, ``rfft`` order)."""

    E: torch.Tensor
    E2: torch.Tensor
    Q: torch.Tensor
    f1: torch.Tensor
    f2: torch.Tensor
    f3: torch.Tensor


def etdrk4_coefficients(symbol: torch.Tensor, h: float, contour_points: int = 16) -> ETDRK4Coefficients:
    """Kassam & Trefethen's contour-integral coefficients for the diagonal symbol ``L`` and step ``h``.

    Computed in complex128 whatever the working precision.
    """
    L = symbol.to(torch.complex128)
    hL = h * L
    real = bool(torch.all(L.imag == 0))
    if real:  # upper half circle, real part (Kassam & Trefethen 2005, their kursiv.m)
        theta = math.pi * (torch.arange(1, contour_points + 1, dtype=torch.float64) - 0.5) / contour_points
    else:  # the whole circle around a complex hL
        m = 2 * contour_points
        theta = 2 * math.pi * (torch.arange(1, m + 1, dtype=torch.float64) - 0.5) / m
    r = torch.exp(1j * theta.to(torch.complex128))
    LR = hL[:, None] + r[None, :]
    eLR = torch.exp(LR)

    def mean(values: torch.Tensor) -> torch.Tensor:
        out = values.mean(dim=1)
        return out.real.to(torch.complex128) if real else out

    Q = h * mean((torch.exp(LR / 2) - 1) / LR)
    f1 = h * mean((-4 - LR + eLR * (4 - 3 * LR + LR**2)) / LR**3)
    f2 = h * mean((2 + LR + eLR * (LR - 2)) / LR**3)
    f3 = h * mean((-4 - 3 * LR - LR**2 + eLR * (4 - LR)) / LR**3)
    return ETDRK4Coefficients(torch.exp(hL), torch.exp(hL / 2), Q, f1, f2, f3)


class ETDRK4:
    """ETDRK4 stepper for one :class:`~sciml.problems.semilinear.SemilinearPeriodicProblem` and step ``dt``.

    Args:
        problem: the PDE (its terms, grid and period).
        dt: the time step.

    Other Args:
        dealias: zero the top third of the nonlinear term's Fourier modes (2/3 rule). Default off.
        contour_points: points of the contour integral (16 as in Kassam & Trefethen).
        extra: a function ``g(u)`` of grid values ``(..., n)`` added to the nonlinear part (a closure or
            a correction term outside the ``u^p ∂^q u`` family); ``None`` for none.
        dtype: ``torch.float64`` (default) or ``torch.float32``.
        device: where the coefficients live (the states must be there too).

    Raises:
        ValueError: ``dt`` is not positive and finite, or ``contour_points < 4``.
        TypeError: ``problem`` is not a ``SemilinearPeriodicProblem``.

    Example:
        >>> from sciml.problems.semilinear import kuramoto_sivashinsky
        >>> ks = kuramoto_sivashinsky(length=22.0, n=64)
        >>> stepper = ETDRK4(ks, 0.25)
        >>> u = stepper.advance(torch.as_tensor(ks.initial_condition()), 40)  # to t = 10
    """

    def __init__(
        self,
        problem: SemilinearPeriodicProblem,
        dt: float,
        *,
        dealias: bool = False,
        contour_points: int = 16,
        extra: Callable[[torch.Tensor], torch.Tensor] | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(problem, SemilinearPeriodicProblem):
            raise TypeError(f"problem must be a SemilinearPeriodicProblem, got {type(problem).__name__}")
        dt = float(dt)
        if not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be positive and finite, got {dt}")
        if int(contour_points) < 4:
            raise ValueError(f"contour_points must be at least 4 (16 is standard), got {contour_points}")
        if dtype not in (torch.float64, torch.float32):
            raise ValueError(f"dtype must be torch.float64 or torch.float32, got {dtype}")
        if extra is not None and not callable(extra):
            raise TypeError(f"extra must be a callable g(u) or None, got {type(extra).__name__}")
        self.problem = problem
        self.extra = extra
        self.dt = dt
        self.dealias = bool(dealias)
        self.dtype = dtype
        self.cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        coefficients = etdrk4_coefficients(problem.linear_symbol(), dt, int(contour_points))
        self.coefficients = ETDRK4Coefficients(*(c.to(self.cdtype).to(self.device) for c in coefficients))
        self.mask = None
        if self.dealias:
            m = torch.arange(problem.n // 2 + 1, device=self.device)
            self.mask = (m < problem.n / 3).to(self.cdtype)

    def _nonlinear_hat(self, v_hat: torch.Tensor) -> torch.Tensor:
        out = self.problem.nonlinear_hat(v_hat)
        if self.extra is not None:
            out = out + torch.fft.rfft(self.extra(torch.fft.irfft(v_hat, n=self.problem.n)))
        return out * self.mask if self.mask is not None else out

    def step_hat(self, v_hat: torch.Tensor) -> torch.Tensor:
        """One step in Fourier space (``rfft`` coefficients, shape ``(..., n//2 + 1)``)."""
        E, E2, Q, f1, f2, f3 = self.coefficients
        Nv = self._nonlinear_hat(v_hat)
        a = E2 * v_hat + Q * Nv
        Na = self._nonlinear_hat(a)
        b = E2 * v_hat + Q * Na
        Nb = self._nonlinear_hat(b)
        c = E2 * a + Q * (2 * Nb - Nv)
        Nc = self._nonlinear_hat(c)
        return E * v_hat + f1 * Nv + 2 * f2 * (Na + Nb) + f3 * Nc

    def _check_state(self, u: torch.Tensor | np.ndarray) -> torch.Tensor:
        u = torch.as_tensor(u, dtype=self.dtype, device=self.device)
        if u.ndim == 0 or u.shape[-1] != self.problem.n:
            raise ValueError(
                f"state must have the problem's {self.problem.n} grid values on its last axis, got shape "
                f"{tuple(u.shape)}"
            )
        return u

    def step(self, u: torch.Tensor | np.ndarray) -> torch.Tensor:
        """One step on grid values ``u`` of shape ``(..., n)``."""
        u = self._check_state(u)
        return torch.fft.irfft(self.step_hat(torch.fft.rfft(u)), n=self.problem.n)

    def advance(self, u: torch.Tensor | np.ndarray, n_steps: int, *, progress: bool = False) -> torch.Tensor:
        """``n_steps`` steps from grid values ``u`` (no finiteness check; see :func:`solve_spectral`)."""
        if isinstance(n_steps, bool) or int(n_steps) != n_steps or n_steps < 0:
            raise ValueError(f"`n_steps` must be an integer ≥ 0, got {n_steps!r}")
        u = self._check_state(u)
        v = torch.fft.rfft(u)
        for _ in tqdm(range(int(n_steps)), disable=not progress, desc="ETDRK4", leave=False):
            v = self.step_hat(v)
        return torch.fft.irfft(v, n=self.problem.n)


class SpectralSolution(NamedTuple):
    """Result of :func:`solve_spectral`.

    Attributes:
        ts: the save times, shape ``(T,)`` (numpy).
        us: the states at ``ts``, shape ``(T, ..., n)`` (torch); NaN after a blow-up with ``throw=False``.
        success: whether every save time was reached with finite values, and the problem is not ill-posed
            over the run (an ill-posed run that stays finite keeps its states but has ``success=False``).
        message: what happened.
        n_steps: ETDRK4 steps taken.
    """

    ts: np.ndarray
    us: torch.Tensor
    success: bool
    message: str
    n_steps: int


def _step_counts(t0: float, saveat: np.ndarray, dt: float) -> np.ndarray:
    steps = (saveat - t0) / dt
    counts = np.rint(steps).astype(np.int64)
    if np.any(np.abs(steps - counts) > 1e-6 * np.maximum(1.0, np.abs(steps))):
        bad = saveat[np.argmax(np.abs(steps - counts))]
        raise ValueError(
            f"saveat time {bad} is not t0 + a whole number of steps dt = {dt}; choose save times on the "
            "step grid (or a dt that divides them)"
        )
    return counts


def solve_spectral(
    problem: SemilinearPeriodicProblem,
    dt: float,
    *,
    saveat: np.ndarray | list[float] | None = None,
    u0: torch.Tensor | np.ndarray | None = None,
    t0: float | None = None,
    dealias: bool = False,
    throw: bool = True,
    check_every: int = 200,
    progress: bool | str = False,
) -> SpectralSolution:
    """Integrate ``problem`` with ETDRK4 and return the states at ``saveat``.

    Args:
        problem: the PDE; its ``t_span`` gives ``t0`` and the default end time.
        dt: the step; every save time must be ``t0 + m·dt`` for a whole ``m``.

    Other Args:
        saveat: increasing save times in ``[t0, ∞)`` (default: ``t_span[1]`` only).
        u0: initial grid values ``(..., n)`` (default ``problem.initial_condition()``); a batch integrates
            an ensemble at once.
        t0: the start time (default ``problem.t_span[0]``).
        dealias: see :class:`ETDRK4`.
        throw: raise on a blow-up (default) or return the partial solution with ``success=False``.
        check_every: steps between finiteness checks (each check is one host sync); a positive integer.
        progress: show a tqdm bar; a string is its description (say what is computed).

    Returns:
        A :class:`SpectralSolution`.

    Raises:
        ValueError: for save times off the step grid, unsorted or before ``t0``, a wrong-shaped or complex
            ``u0``, or ``check_every`` not a positive integer.
        TypeError: ``problem`` is not a ``SemilinearPeriodicProblem``.
        FloatingPointError: the solution became non-finite (``throw=True``); the message gives the time.
        IllPosedProblemError: (a ``ValueError`` and ``FloatingPointError``; ``throw=True``) the linear part
            is ill-posed (:attr:`~sciml.problems.semilinear.SemilinearPeriodicProblem.ill_posed_term`, e.g.
            negative viscosity) and its growth at the grid's highest mode amplifies round-off by more than
            ``1e12`` over the run: raised before integrating. With ``throw=False`` the run is integrated
            and returned with ``success=False`` and this message (unless it became non-finite first).
    """
    if not isinstance(problem, SemilinearPeriodicProblem):
        raise TypeError(f"problem must be a SemilinearPeriodicProblem, got {type(problem).__name__}")
    if isinstance(check_every, bool) or not isinstance(check_every, (int, np.integer)) or check_every < 1:
        raise ValueError(
            f"check_every must be a positive integer (steps between finiteness checks, default 200), got "
            f"{check_every!r}"
        )
    if u0 is not None and (torch.is_tensor(u0) and u0.is_complex() or np.iscomplexobj(u0)):
        raise ValueError(
            "u0 is complex, but complex fields are not supported (the solver evolves real u with rfft); "
            "pass real grid values"
        )
    t0 = problem.t_span[0] if t0 is None else float(t0)
    saveat = np.atleast_1d(np.asarray(problem.t_span[1] if saveat is None else saveat, dtype=np.float64))
    if saveat.ndim != 1 or saveat.size == 0 or not np.all(np.isfinite(saveat)):
        raise ValueError("saveat must be a non-empty 1-D array of finite times")
    if np.any(np.diff(saveat) < 0) or saveat[0] < t0 - 1e-12:
        raise ValueError(f"saveat must be sorted and start at or after t0 = {t0}")
    stepper = ETDRK4(problem, dt, dealias=dealias)
    counts = _step_counts(t0, saveat, stepper.dt)
    ill_posed = _ill_posed_message(problem, float(counts[-1]) * stepper.dt)
    if ill_posed is not None and throw:
        raise IllPosedProblemError(ill_posed)
    u = stepper._check_state(problem.initial_condition() if u0 is None else u0)
    if not bool(torch.isfinite(u).all()):
        raise ValueError("`u0` must be finite: it holds NaN or inf values")
    n = problem.n
    out = torch.full((len(saveat), *u.shape), math.nan, dtype=u.dtype)
    v = torch.fft.rfft(u)
    done = 0
    desc = progress if isinstance(progress, str) else f"ETDRK4 {problem.name}"
    bar = tqdm(total=int(counts[-1]), disable=not progress, desc=desc, leave=False)
    message = f"reached t = {saveat[-1]:g} in {int(counts[-1])} steps"
    success = True
    with small_work_threads(u.numel()):
        for i, target in enumerate(counts):
            while done < target:
                chunk = int(min(check_every, target - done))
                for _ in range(chunk):
                    v = stepper.step_hat(v)
                done += chunk
                bar.update(chunk)
                if not bool(torch.isfinite(v).all()):
                    t_bad = t0 + done * stepper.dt
                    message = (
                        f"the solution of {problem.name!r} became non-finite by t = {t_bad:g} (step {done}); "
                        "the model may be ill-posed (e.g. anti-diffusion without hyperviscosity) or dt too "
                        "large"
                    )
                    success = False
                    break
            if not success:
                break
            out[i] = torch.fft.irfft(v, n=n)
    bar.close()
    if success and ill_posed is not None:  # finite, but amplified round-off (throw=False)
        success, message = False, ill_posed
    if not success and throw:
        raise FloatingPointError(message)
    return SpectralSolution(saveat, out, success, message, done)

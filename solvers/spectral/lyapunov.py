"""The largest Lyapunov exponent of a semilinear periodic PDE, by Benettin's two-trajectory method.

A reference trajectory and a neighbour at distance ``ε`` are integrated with ETDRK4; every ``τ`` time units
the separation is measured, its logarithmic growth accumulated and the neighbour pulled back to distance
``ε`` along the current separation (Benettin, Galgani, Giorgilli & Strelcyn, Meccanica 15, 1980). Several
independent trajectories are integrated as one batch; their spread gives a standard error.

Reference values for Kuramoto–Sivashinsky (``u_t + u u_x + u_xx + u_xxxx = 0``): about 0.043–0.048 for
``L = 22`` (Cvitanović, Davidchack & Siminos, SIAM J. Appl. Dyn. Syst. 9, 2010) and about 0.09 for
``L = 100``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
from sciml.problems.semilinear import SemilinearPeriodicProblem
from sciml.solvers.spectral.etdrk4 import ETDRK4, small_work_threads
from tqdm.auto import tqdm

__all__ = ["LyapunovEstimate", "largest_lyapunov_exponent"]


class LyapunovEstimate(NamedTuple):
    """``exponent`` (mean over trajectories), its ``std_error``, the ``per_trajectory`` values and the
    averaging time per trajectory."""

    exponent: float
    std_error: float
    per_trajectory: np.ndarray
    t_average: float

    @property
    def lyapunov_time(self) -> float:
        """``1 / exponent``."""
        return 1.0 / self.exponent


def largest_lyapunov_exponent(
    problem: SemilinearPeriodicProblem,
    dt: float,
    *,
    t_transient: float = 200.0,
    t_average: float = 2000.0,
    renormalize_every: float = 1.0,
    epsilon: float = 1e-7,
    n_trajectories: int = 4,
    seed: int = 0,
    progress: bool = False,
) -> LyapunovEstimate:
    """Estimate the largest Lyapunov exponent of ``problem`` (Benettin's method, see the module docstring).

    Args:
        problem: the PDE; its initial condition plus a small random perturbation per trajectory starts
            each of the ``n_trajectories`` runs.
        dt: the ETDRK4 step.

    Other Args:
        t_transient: time discarded to reach the attractor.
        t_average: averaging time per trajectory.
        renormalize_every: ``τ``, time between renormalisations (a whole number of steps).
        epsilon: separation, relative to the RMS of the state.
        n_trajectories: independent trajectories integrated as one batch.
        seed: for the perturbations.
        progress: show a tqdm bar.

    Returns:
        A :class:`LyapunovEstimate`.

    Raises:
        ValueError: for non-positive times, ``n_trajectories < 1``, ``epsilon`` outside (0, 1e-3], a
            trajectory that blows up, or one that decayed to the fixed point ``u = 0`` (a zero ``u0``, or a
            transient long enough for a damped system to underflow), where a separation relative to the
            state's RMS is zero: the message says so (the exponent is then the linearization's decay rate).
    """
    for label, value in (("t_transient", t_transient), ("t_average", t_average), ("dt", dt)):
        if not (math.isfinite(value) and value >= (0 if label == "t_transient" else 1e-300)):
            raise ValueError(f"{label} must be a positive finite time, got {value}")
    if not (math.isfinite(renormalize_every) and renormalize_every > 0):
        raise ValueError(f"renormalize_every must be a positive time, got {renormalize_every}")
    if int(n_trajectories) < 1:
        raise ValueError(f"n_trajectories must be at least 1, got {n_trajectories}")
    if not 0 < epsilon <= 1e-3:
        raise ValueError(f"epsilon must be in (0, 1e-3] (a small relative separation), got {epsilon}")
    steps_per = max(1, round(renormalize_every / dt))
    tau = steps_per * dt
    n_intervals = max(1, round(t_average / tau))
    with small_work_threads(2 * int(n_trajectories) * problem.n):
        return _benettin(
            problem,
            dt,
            t_transient,
            n_intervals,
            steps_per,
            tau,
            epsilon,
            int(n_trajectories),
            seed,
            progress,
        )


def _benettin(
    problem, dt, t_transient, n_intervals, steps_per, tau, epsilon, m, seed, progress
) -> LyapunovEstimate:
    """Benettin's loop for :func:`largest_lyapunov_exponent` (``m`` trajectories as one batch)."""
    stepper = ETDRK4(problem, dt)
    generator = torch.Generator().manual_seed(seed)
    u0 = torch.as_tensor(problem.initial_condition())
    u = u0 + 1e-2 * u0.std() * torch.randn(m, problem.n, generator=generator, dtype=torch.float64)
    u = stepper.advance(u, round(t_transient / dt))
    if not bool(torch.isfinite(u).all()):
        raise ValueError(f"the trajectory of {problem.name!r} blew up during the transient; reduce dt")
    rms = float(u.pow(2).mean().sqrt())
    if not rms > 1e-280:  # the separation epsilon * rms would underflow: nothing is left to perturb
        # at u = 0 every nonlinear term u^p d^q u (p >= 1) vanishes with its derivative: the linearization is
        # the linear symbol, whose largest real part over the zero-mean modes is the exponent there
        rate = float(problem.linear_symbol().real[1:].max())
        raise ValueError(
            f"the trajectory of {problem.name!r} is at the fixed point u = 0 after the transient "
            f"(t_transient = {t_transient:g}; state RMS {rms:.3g}: a zero u0, or a state that decayed), not "
            "blown up; a "
            "separation relative to the state's RMS is then zero and Benettin's method is undefined. At "
            "u = 0 the largest exponent is that of the linear part, the largest real part of its symbol over "
            f"the zero-mean modes: {rate:.6g} for this problem; to measure it along a trajectory, start from "
            "a nonzero u0 and shorten t_transient"
        )
    scale = epsilon * rms
    d = torch.randn(m, problem.n, generator=generator, dtype=torch.float64)
    d = d - d.mean(dim=-1, keepdim=True)  # keep the mean (a conserved quantity) unchanged
    d = scale * d / d.norm(dim=-1, keepdim=True)
    v = torch.fft.rfft(torch.cat([u, u + d]))
    log_growth = torch.zeros(m, dtype=torch.float64)
    for _ in tqdm(range(n_intervals), disable=not progress, desc="Lyapunov", leave=False):
        for _ in range(steps_per):
            v = stepper.step_hat(v)
        x = torch.fft.irfft(v, n=problem.n)
        sep = x[m:] - x[:m]
        norm = sep.norm(dim=-1)
        if not bool(torch.isfinite(x).all()) or not bool(torch.isfinite(norm).all()):
            raise ValueError(f"the trajectory of {problem.name!r} blew up; reduce dt")
        if not bool((norm > 0).all()):
            raise ValueError(
                f"the separation of the perturbed trajectory of {problem.name!r} underflowed to 0: the state "
                "decays so fast to a fixed point that the log growth is -inf; the exponent is the decay "
                "rate of the linearization there (average over a shorter t_average)"
            )
        log_growth += torch.log(norm / scale)
        x = torch.cat([x[:m], x[:m] + sep * (scale / norm)[:, None]])
        v = torch.fft.rfft(x)
    per = (log_growth / (n_intervals * tau)).numpy()
    std_error = float(per.std(ddof=1) / math.sqrt(m)) if m > 1 else math.nan
    return LyapunovEstimate(float(per.mean()), std_error, per, n_intervals * tau)

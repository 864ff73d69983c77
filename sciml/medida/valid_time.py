"""Valid time: how long a model tracks the truth from the same initial state, in Lyapunov times.

All models are integrated from the same state with the same ETDRK4 step and grid; the relative error
``‖u_model(t) − u_truth(t)‖₂ / ‖u_truth(t)‖₂`` is computed at every save time, and the valid time is the
first time it exceeds ``threshold`` (a model that blows up stops being valid when it does), times the
largest Lyapunov exponent of the truth. A model that stays within the threshold to the horizon is reported
with its valid time equal to the horizon and ``censored = True``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from sciml.problems.semilinear import SemilinearPeriodicProblem
from sciml.solvers.spectral import solve_spectral

__all__ = ["ValidTime", "valid_times"]


class ValidTime(NamedTuple):
    """``lyapunov_times``: the valid time × λ; ``time``: in time units; ``censored``: never left the
    threshold before the horizon; ``errors``: the relative error at each save time."""

    lyapunov_times: float
    time: float
    censored: bool
    errors: np.ndarray


def valid_times(
    truth: SemilinearPeriodicProblem,
    models: dict[str, SemilinearPeriodicProblem],
    u0: np.ndarray | torch.Tensor,
    *,
    lyapunov_exponent: float,
    horizon_lyapunov: float = 10.0,
    dt: float = 0.01,
    save_every: float = 0.1,
    threshold: float = 0.5,
    n: int | None = 256,
) -> tuple[np.ndarray, np.ndarray, dict[str, ValidTime], dict[str, np.ndarray]]:
    """Integrate ``truth`` and each model from ``u0`` and measure their valid times.

    Args:
        truth: the true system.
        models: named models (e.g. ``{"imperfect": ..., "corrected": ...}``).
        u0: the common initial state on the truth's grid.
        lyapunov_exponent: λ of the truth (the unit of the result).

    Other Args:
        horizon_lyapunov: how far to integrate, in Lyapunov times.
        dt: the ETDRK4 step (the same for all).
        save_every: spacing of the error samples (a multiple of ``dt``).
        threshold: relative error at which a model stops being valid.
        n: integrate on this many grid points (band-limited ``u0``; default 256, enough for KS at L = 100),
            ``None`` for the truth's grid.

    Returns:
        ``(x, t, valid, trajectories)``: the grid, the save times, ``{name: ValidTime}`` and
        ``{"truth": (T, n), name: (T, n)}`` (NaN after a blow-up).

    Raises:
        ValueError: a non-positive ``lyapunov_exponent`` or ``threshold``, models on another grid.
    """
    if not (math.isfinite(lyapunov_exponent) and lyapunov_exponent > 0):
        raise ValueError(f"lyapunov_exponent must be positive, got {lyapunov_exponent}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold}")
    for name, model in models.items():
        if model.n != truth.n or model.length != truth.length:
            raise ValueError(f"model {name!r} is on another grid than the truth")
    u0 = torch.as_tensor(u0, dtype=torch.float64)
    if n is not None and n != truth.n:
        keep = min(n, truth.n) // 2
        u0 = torch.fft.irfft(torch.fft.rfft(u0)[:keep], n=n) * (n / truth.n)
        truth = truth.replace(n=n, u0=u0.numpy())
        models = {k: m.replace(n=n, u0=u0.numpy()) for k, m in models.items()}
    horizon = horizon_lyapunov / lyapunov_exponent
    every = max(1, round(save_every / dt))
    n_saves = int(math.ceil(horizon / (every * dt)))
    t = truth.t_span[0] + dt * every * np.arange(n_saves + 1)
    ref = solve_spectral(truth, dt, saveat=t, u0=u0, t0=t[0]).us
    norms = ref.pow(2).sum(-1).sqrt()
    out: dict[str, ValidTime] = {}
    trajectories = {"truth": ref.numpy()}
    for name, model in models.items():
        sol = solve_spectral(model, dt, saveat=t, u0=u0, t0=t[0], throw=False)
        err = ((sol.us - ref).pow(2).sum(-1).sqrt() / norms).numpy()
        err = np.where(np.isfinite(err), err, np.inf)
        bad = np.flatnonzero(err > threshold)
        censored = bad.size == 0
        when = (t[-1] if censored else t[bad[0]]) - t[0]
        out[name] = ValidTime(float(when * lyapunov_exponent), float(when), bool(censored), err)
        trajectories[name] = sol.us.numpy()
    x = truth.x
    return x, t - t[0], out, trajectories

"""A vectorised ensemble Kalman filter with multiplicative inflation and Gaspari–Cohn localization.

The whole ensemble is one tensor ``(members, n)``; a forecast is one batched call, an analysis a few
dense matrix products. Two analysis schemes:

* ``"stochastic"`` — the perturbed-observation EnKF (Burgers, van Leeuwen & Evensen, MWR 126, 1998):
  every member assimilates ``y + ε_i``, ``ε_i ~ N(0, R)``.
* ``"deterministic"`` (default) — the DEnKF of Sakov & Oke (Tellus A 60, 2008), a square-root-like
  filter without perturbed observations: the mean is updated with the gain ``K``, the anomalies with
  ``K/2``; it keeps the analysis mean free of the observation-perturbation noise and, unlike an ETKF,
  works with a localized gain.

Localization is a Schur product of the forecast covariance with a Gaspari–Cohn taper (Gaspari & Cohn,
QJRMS 125, 1999) of the distances between state points (periodic distances supported); inflation
multiplies the forecast anomalies by ``sqrt(ρ)`` before each analysis (Anderson & Anderson, MWR 127,
1999), with ``ρ`` fixed or ``"adaptive"``: estimated from the innovations ``d = y − Hx̄`` as
``(dᵀd − tr R) / tr(HPHᵀ)`` and smoothed in time (Li, Kalnay & Miyoshi, QJRMS 135, 2009), so a filter
whose model is poor inflates more, and one whose model is good hardly at all. The observation operator
is a selection of state points (``obs_index``), which covers full and sparse point observations.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from tqdm.auto import tqdm

__all__ = ["gaspari_cohn", "periodic_distances", "EnsembleKalmanFilter", "FilterResult"]


def gaspari_cohn(distance: torch.Tensor | np.ndarray, radius: float) -> torch.Tensor:
    """Gaspari & Cohn's (1999, eq. 4.10) compactly supported 5th-order taper: 1 at 0, 0 beyond ``2·radius``.

    Raises:
        ValueError: ``radius`` is not positive.
    """
    if not radius > 0:
        raise ValueError(f"the localization radius must be positive, got {radius}")
    z = torch.as_tensor(distance, dtype=torch.float64).abs() / radius
    near = -0.25 * z**5 + 0.5 * z**4 + 0.625 * z**3 - 5.0 / 3.0 * z**2 + 1.0
    zf = torch.where(z > 0, z, torch.ones_like(z))
    far = z**5 / 12.0 - 0.5 * z**4 + 0.625 * z**3 + 5.0 / 3.0 * z**2 - 5.0 * z + 4.0 - 2.0 / (3.0 * zf)
    return torch.where(z <= 1, near, torch.where(z < 2, far, torch.zeros_like(z)))


def periodic_distances(n: int, length: float) -> torch.Tensor:
    """``(n, n)`` distances between the points ``j·length/n`` of a periodic grid."""
    j = torch.arange(n, dtype=torch.float64)
    d = (j[:, None] - j[None, :]).abs()
    return torch.minimum(d, n - d) * (length / n)


class FilterResult(NamedTuple):
    """``means`` ``(T, n)``: analysis means; ``spreads`` ``(T,)``: RMS ensemble spread after each analysis;
    ``ensemble``: the final analysis ensemble ``(members, n)``; ``inflation`` ``(T,)``: the ``ρ`` used."""

    means: torch.Tensor
    spreads: torch.Tensor
    ensemble: torch.Tensor
    inflation: torch.Tensor


class EnsembleKalmanFilter:
    """EnKF for a forecast model ``x ↦ forecast(x)`` acting on an ensemble ``(members, n)``.

    Args:
        forecast: advances a batch of states by one observation interval.
        obs_std: observation-error standard deviation (a scalar, or one per observed point).

    Other Args:
        obs_index: the observed state indices (default: every point).
        inflation: multiplicative covariance inflation ``ρ ≥ 1`` applied to forecast anomalies, or
            ``"adaptive"`` (innovation-based, see the module docstring).
        adaptive: ``(ρ_min, ρ_max, smoothing)`` of the adaptive inflation; the estimate is
            ``ρ ← (1 − smoothing)·ρ + smoothing·ρ_obs`` clipped to ``[ρ_min, ρ_max]``.
        localization: an ``(n, n)`` taper (e.g. ``gaspari_cohn(periodic_distances(n, L), r)``) or None.
        method: ``"deterministic"`` (DEnKF, default) or ``"stochastic"`` (perturbed observations).
        seed: for the observation perturbations of the stochastic filter.

    Raises:
        ValueError: for a non-positive ``obs_std``, ``inflation < 1``, an unknown ``method``, a taper or an
            index of the wrong shape.
    """

    def __init__(
        self,
        forecast: Callable[[torch.Tensor], torch.Tensor],
        obs_std: float | torch.Tensor,
        *,
        obs_index: torch.Tensor | np.ndarray | None = None,
        inflation: float | str = 1.0,
        adaptive: tuple[float, float, float] = (1.0, 3.0, 0.05),
        localization: torch.Tensor | None = None,
        method: str = "deterministic",
        seed: int = 0,
    ) -> None:
        if not callable(forecast):
            raise TypeError("forecast must be a callable advancing an ensemble (members, n)")
        obs_std = torch.as_tensor(obs_std, dtype=torch.float64)
        if not bool(torch.all(obs_std > 0)) or not bool(torch.isfinite(obs_std).all()):
            raise ValueError("obs_std must be positive and finite (the observation-error standard deviation)")
        self.adaptive = inflation == "adaptive"
        if self.adaptive:
            low, high, smoothing = (float(v) for v in adaptive)
            if not (1.0 <= low <= high and 0 < smoothing <= 1):
                raise ValueError(
                    f"adaptive must be (rho_min >= 1, rho_max >= rho_min, 0 < smoothing <= 1), got {adaptive}"
                )
            self.adaptive_range = (low, high, smoothing)
            inflation = low
        elif isinstance(inflation, str) or not (math.isfinite(inflation) and inflation >= 1.0):
            raise ValueError(f"inflation must be >= 1 (1 = none) or 'adaptive', got {inflation!r}")
        if method not in ("deterministic", "stochastic"):
            raise ValueError(f"method must be 'deterministic' or 'stochastic', got {method!r}")
        self.forecast = forecast
        self.obs_std = obs_std
        self.obs_index = None if obs_index is None else torch.as_tensor(obs_index, dtype=torch.long)
        self.inflation = float(inflation)
        self.localization = (
            None if localization is None else torch.as_tensor(localization, dtype=torch.float64)
        )
        if self.localization is not None and (
            self.localization.ndim != 2 or self.localization.shape[0] != self.localization.shape[1]
        ):
            raise ValueError(
                f"localization must be a square (n, n) taper, got {tuple(self.localization.shape)}"
            )
        self.method = method
        self.generator = torch.Generator().manual_seed(seed)

    def analysis(self, ensemble: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Assimilate observations ``y`` (the observed points) into a forecast ensemble ``(members, n)``.

        Raises:
            ValueError: wrong shapes, fewer than 2 members, or NaN/inf in the ensemble or ``y``.
        """
        E = torch.as_tensor(ensemble, dtype=torch.float64)
        y = torch.as_tensor(y, dtype=torch.float64)
        if E.ndim != 2 or E.shape[0] < 2:
            raise ValueError(f"ensemble must have shape (members >= 2, n), got {tuple(E.shape)}")
        n = E.shape[1]
        index = self.obs_index if self.obs_index is not None else torch.arange(n)
        if y.shape != (index.numel(),):
            raise ValueError(f"observations must have shape ({index.numel()},), got {tuple(y.shape)}")
        if not (bool(torch.isfinite(E).all()) and bool(torch.isfinite(y).all())):
            raise ValueError("the ensemble or the observations hold NaN or inf (did the forecast blow up?)")
        if self.localization is not None and self.localization.shape != (n, n):
            raise ValueError(f"localization taper is {tuple(self.localization.shape)}, state has n = {n}")
        m = E.shape[0]
        mean = E.mean(dim=0)
        A = E - mean
        r2 = torch.broadcast_to(self.obs_std**2, (index.numel(),))
        if self.adaptive:
            low, high, smoothing = self.adaptive_range
            d = y - mean[index]
            spread = A[:, index].pow(2).sum() / (m - 1)
            if float(spread) > 0:
                estimate = float((d @ d - r2.sum()) / spread)
                rho = (1 - smoothing) * self.inflation + smoothing * estimate
                self.inflation = min(max(rho, low), high)
        A = A * math.sqrt(self.inflation)
        PHt = A.T @ A[:, index] / (m - 1)  # (n, p): P H^T
        if self.localization is not None:
            PHt = PHt * self.localization[:, index]
        HPHt = PHt[index]
        S = HPHt + torch.diag(r2)
        K = torch.linalg.solve(S, PHt.T).T  # (n, p): P H^T (H P H^T + R)^-1  (S symmetric)
        if self.method == "stochastic":
            noise = torch.randn(m, index.numel(), generator=self.generator, dtype=torch.float64) * r2.sqrt()
            noise = noise - noise.mean(dim=0)  # keep the mean update exact
            Xf = mean + A
            return Xf + (y + noise - Xf[:, index]) @ K.T
        new_mean = mean + K @ (y - mean[index])
        new_anomalies = A - 0.5 * A[:, index] @ K.T
        return new_mean + new_anomalies

    def run(
        self,
        ensemble: torch.Tensor,
        observations: torch.Tensor,
        *,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        progress: bool = False,
    ) -> FilterResult:
        """Cycle through ``observations`` ``(T, p)``: analysis at step 0, then forecast + analysis.

        Args:
            ensemble: the initial (prior) ensemble ``(members, n)`` at the first observation time.
            observations: one row per observation time, spaced by the forecast interval.
            transform: applied to every forecast and analysis ensemble (e.g. a spectral band limit).
            progress: show a tqdm bar.

        Returns:
            A :class:`FilterResult`.

        Raises:
            ValueError: see :meth:`analysis`; the message names the step at which the filter failed.
        """
        observations = torch.as_tensor(observations, dtype=torch.float64)
        E = torch.as_tensor(ensemble, dtype=torch.float64)
        means, spreads, rhos = [], [], []
        for k in tqdm(range(observations.shape[0]), disable=not progress, desc="EnKF", leave=False):
            if k > 0:
                E = self.forecast(E)
                if transform is not None:
                    E = transform(E)
            try:
                E = self.analysis(E, observations[k])
            except ValueError as exc:
                raise ValueError(f"EnKF step {k}: {exc}") from exc
            if transform is not None:
                E = transform(E)
            mean = E.mean(dim=0)
            means.append(mean)
            spreads.append((E - mean).pow(2).mean().sqrt())
            rhos.append(self.inflation)
        return FilterResult(
            torch.stack(means), torch.stack(spreads), E, torch.tensor(rhos, dtype=torch.float64)
        )

"""Contextual tuners: the best relaxation factor depends on the system, and a scalar context says how.

* :class:`ChebCB` — per arm, a ridge regression of the normalised cost on Chebyshev features
  ``T_0..T_m`` of the context rescaled to [−1, 1]; sampling by inverse-gap weighting
  ``p_i = 1 / (d + γ_t (ŷ_i − ŷ*))`` with the remaining mass on the predicted best arm. This is SquareCB
  (Foster & Rakhlin, *Beyond UCB*, ICML 2020) with a Chebyshev regression oracle, as in ChebCB of Khodak
  et al., *Learning to Relax* (ICLR 2024); it approaches the instance-optimal policy over the arm grid.
* :class:`ContextualBins` — the simple baseline: the context range cut into bins, one
  :class:`~sciml.relax.bandits.TsallisINF` per bin.

Costs are normalised as in :mod:`sciml.relax.bandits`: ``(cost − floor) / running mean``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from sciml.relax.bandits import TsallisINF, Tuner

__all__ = ["ChebCB", "ContextualBins", "chebyshev_features"]


def chebyshev_features(z: float | np.ndarray, degree: int) -> np.ndarray:
    """``[T_0(z), …, T_degree(z)]`` by the three-term recurrence (``z`` clipped to [−1, 1])."""
    z = np.clip(np.asarray(z, dtype=np.float64), -1.0, 1.0)
    out = [np.ones_like(z), z]
    for _ in range(2, degree + 1):
        out.append(2.0 * z * out[-1] - out[-2])
    return np.stack(out[: degree + 1], axis=-1)


def _check_range(context_range: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in context_range)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"`context_range` must be a pair (low, high), got {context_range!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"`context_range` must be finite with low < high, got {context_range!r}")
    return lo, hi


def _check_context(context: Any) -> float:
    if context is None:
        raise ValueError("this tuner is contextual: pass the context (e.g. the shift or κ) to select()")
    context = float(context)
    if not math.isfinite(context):
        raise ValueError(f"`context` must be finite, got {context}")
    return context


class ChebCB(Tuner):
    """Contextual bandit with a Chebyshev-polynomial cost model per arm and inverse-gap weighting.

    For context ``c``, ``z = 2 (c − low)/(high − low) − 1`` (clipped to [−1, 1]) and features
    ``φ = [T_0(z) … T_degree(z)]``. Arm ``i`` predicts the normalised cost ``ŷ_i = θ_iᵀφ / scale`` with
    ``θ_i`` the ridge solution ``(λI + Σ φφᵀ)⁻¹ Σ φ (cost − floor)`` over the rounds it was played (an
    arm never played predicts 0, the most optimistic value, so every arm gets tried). Sampling:
    ``p_i = 1 / (d + γ_t (ŷ_i − ŷ*))`` for the arms other than the predicted best ``i*``, which gets the
    rest; ``γ_t = gamma · √(d t)`` grows so exploration fades (SquareCB's rate).

    Args:
        arms: candidate values (default ``linspace(1, 1.95, 20)``).
        context_range: ``(low, high)`` of the context (contexts outside are clipped).
        degree: highest Chebyshev degree (5: features ``T_0..T_5``).
        gamma: exploration constant in ``γ_t`` (larger: greedier).
        ridge: ``λ`` of the per-arm ridge regression (in units of the feature Gram matrix).
        seed, floor: as in :class:`~sciml.relax.bandits.Tuner`.

    Raises:
        ValueError: a bad ``context_range``, ``degree < 0``, non-positive ``gamma``/``ridge``.
    """

    def __init__(
        self,
        arms: Any = None,
        *,
        context_range: tuple[float, float],
        degree: int = 5,
        gamma: float = 1.0,
        ridge: float = 1e-3,
        target: str = "log",
        seed: int = 0,
        floor: float = 1.0,
    ) -> None:
        super().__init__(arms, seed=seed, floor=floor)
        self.low, self.high = _check_range(context_range)
        if target not in ("log", "cost"):
            raise ValueError(f"`target` must be 'log' or 'cost', got {target!r}")
        self.target = target
        if int(degree) != degree or degree < 0:
            raise ValueError(f"`degree` must be a non-negative integer, got {degree}")
        if not (gamma > 0 and ridge > 0):
            raise ValueError(f"`gamma` and `ridge` must be positive, got {gamma}, {ridge}")
        self.degree = int(degree)
        self.gamma = float(gamma)
        self.ridge = float(ridge)
        m = self.degree + 1
        self.gram = np.zeros((self.d, m, m))  # Σ φφᵀ per arm
        self.moment = np.zeros((self.d, m))  # Σ φ (cost − floor) per arm
        self.theta = np.zeros((self.d, m))
        self._pending_features = np.zeros(m)

    def features(self, context: float) -> np.ndarray:
        z = 2.0 * (context - self.low) / (self.high - self.low) - 1.0
        return chebyshev_features(z, self.degree)

    def predict(self, context: float) -> np.ndarray:
        """Predicted cost of every arm at ``context``: ``log(cost/floor)``, or ``(cost − floor)/scale``."""
        raw = self.theta @ self.features(_check_context(context))
        return raw if self.target == "log" else raw / self.scale

    def probabilities(self, context: float) -> np.ndarray:
        """Inverse-gap-weighted sampling distribution at ``context``."""
        yhat = self.predict(context)
        best = int(np.argmin(yhat))
        rate = self.gamma * math.sqrt(self.d * max(self.t, 1))
        probs = 1.0 / (self.d + rate * (yhat - yhat[best]))
        probs[best] = 0.0
        probs[best] = 1.0 - probs.sum()
        return probs

    def select(self, context: float | None = None) -> float:
        """Sample a value for a system with this ``context``."""
        context = _check_context(context)
        probs = self.probabilities(context)
        i = self._sample(probs)
        self._pending, self._pending_prob = i, float(probs[i])
        self._pending_features = self.features(context)
        return float(self.arms[i])

    def update(self, cost: float) -> None:
        """Feed back the cost of the last :meth:`select`; refits that arm's regression."""
        shifted = self._check_cost(cost)
        i, phi = self._pending, self._pending_features
        y = np.log1p(shifted / self.floor) if self.target == "log" else shifted
        self.gram[i] += np.outer(phi, phi)
        self.moment[i] += phi * y
        m = self.degree + 1
        self.theta[i] = np.linalg.solve(self.gram[i] + self.ridge * np.eye(m), self.moment[i])
        self.cost_sum += shifted
        self.t += 1
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "context_range": [self.low, self.high],
            "degree": self.degree,
            "target": self.target,
            "gamma": self.gamma,
            "ridge": self.ridge,
            "gram": torch.as_tensor(self.gram),
            "moment": torch.as_tensor(self.moment),
            "theta": torch.as_tensor(self.theta),
            "pending_features": torch.as_tensor(self._pending_features),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if int(state["degree"]) != self.degree:
            raise ValueError(f"state has degree {state['degree']}, this tuner {self.degree}")
        if state.get("target", self.target) != self.target:
            raise ValueError(
                f"state was saved by a tuner with target={state['target']!r}, this one has "
                f"target={self.target!r}: build it with target={state['target']!r}"
            )
        self.low, self.high = _check_range(state["context_range"])
        self.gamma, self.ridge = float(state["gamma"]), float(state["ridge"])
        self.gram = np.asarray(state["gram"], dtype=np.float64).copy()
        self.moment = np.asarray(state["moment"], dtype=np.float64).copy()
        self.theta = np.asarray(state["theta"], dtype=np.float64).copy()
        self._pending_features = np.asarray(state["pending_features"], dtype=np.float64).copy()


class ContextualBins(Tuner):
    """One :class:`~sciml.relax.bandits.TsallisINF` per bin of the context range (nearest bin centre).

    Args:
        arms: candidate values.
        context_range: ``(low, high)``; ``bins`` equal bins, contexts outside go to the end bins.
        bins: number of bins (5 in the paper).
        seed, floor: as in :class:`~sciml.relax.bandits.Tuner`; bin ``k`` is seeded ``seed + k``.
    """

    def __init__(
        self,
        arms: Any = None,
        *,
        context_range: tuple[float, float],
        bins: int = 5,
        seed: int = 0,
        floor: float = 1.0,
    ) -> None:
        super().__init__(arms, seed=seed, floor=floor)
        self.low, self.high = _check_range(context_range)
        if int(bins) != bins or bins < 1:
            raise ValueError(f"`bins` must be a positive integer, got {bins}")
        self.bins = [TsallisINF(self.arms, seed=seed + k, floor=floor) for k in range(int(bins))]
        self._pending_bin = -1

    def bin_of(self, context: float) -> int:
        k = int((context - self.low) / (self.high - self.low) * len(self.bins))
        return min(max(k, 0), len(self.bins) - 1)

    def select(self, context: float | None = None) -> float:
        k = self.bin_of(_check_context(context))
        value = self.bins[k].select()
        self._pending, self._pending_bin = self.bins[k]._pending, k
        return value

    def update(self, cost: float) -> None:
        shifted = self._check_cost(cost)
        self.bins[self._pending_bin].update(cost)
        self.cost_sum += shifted
        self.t += 1
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "context_range": [self.low, self.high],
            "pending_bin": self._pending_bin,
            "bins": [b.state_dict() for b in self.bins],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if len(state["bins"]) != len(self.bins):
            raise ValueError(f"state has {len(state['bins'])} bins, this tuner {len(self.bins)}")
        self.low, self.high = _check_range(state["context_range"])
        self._pending_bin = int(state["pending_bin"])
        for b, s in zip(self.bins, state["bins"]):
            b.load_state_dict(s)

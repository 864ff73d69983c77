"""Online tuners for a solver parameter (the SOR relaxation factor ω) learned from solve costs alone.

The loop a simulation runs is two lines per system::

    omega = tuner.select(context)       # context: a number describing the system (or None)
    tuner.update(iterations)            # the cost the solve incurred with that omega

Costs are normalised the same way in every tuner: ``cost − floor`` (``floor = 1`` by default, the least an
iterative solve can cost), divided by the running mean of ``cost − floor`` seen so far. The tuners are
therefore scale-free (iterations, seconds, flops all work) and need no bound on the cost in advance.

Each tuner owns a seeded ``torch.Generator`` and exposes ``state_dict()`` / ``load_state_dict()`` holding
only tensors and plain numbers, so :func:`sciml.checkpoint.save_checkpoint` (``weights_only`` loading)
can checkpoint it mid-simulation and a resumed run makes the same choices.

:class:`TsallisINF` — Zimmert & Seldin, *Tsallis-INF: An optimal algorithm for stochastic and adversarial
bandits* (JMLR 2021): 1/2-Tsallis entropy regulariser, learning rate ``η_t = 2/√t``, importance-weighted
loss estimates with their reduced-variance baseline (§5 there); as used over a grid of ω by Khodak et al.,
*Learning to Relax* (ICLR 2024).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

__all__ = ["Tuner", "TsallisINF", "default_arms"]


def default_arms() -> np.ndarray:
    """The paper's grid of relaxation factors: ``linspace(1, 1.95, 20)``."""
    return np.linspace(1.0, 1.95, 20)


class Tuner:
    """Base class: arms (candidate parameter values), a seeded generator, cost normalisation, checkpoints.

    Args:
        arms: candidate values (e.g. relaxation factors), at least 2, finite.
        seed: seeds the sampling generator.
        floor: the least possible cost, subtracted before normalising (1 for iteration counts). A cost of
            exactly 0 (a system its initial guess already solved, e.g. ``b = 0``) counts as ``floor``;
            other costs below ``floor`` are errors.

    Raises:
        ValueError: fewer than two arms, non-finite arms or floor.
    """

    def __init__(self, arms: Any = None, *, seed: int = 0, floor: float = 1.0) -> None:
        arms = default_arms() if arms is None else np.asarray(arms, dtype=np.float64).ravel()
        if arms.size < 2 or not np.isfinite(arms).all():
            raise ValueError(f"`arms` must hold at least two finite values, got {arms}")
        if not math.isfinite(floor):
            raise ValueError(f"`floor` must be finite, got {floor}")
        self.arms = arms
        self.floor = float(floor)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.t = 0  # completed rounds
        self.cost_sum = 0.0  # Σ (cost − floor)
        self._pending: int | None = None  # arm chosen by the last select(), awaiting its cost
        self._pending_prob = 1.0

    @property
    def d(self) -> int:
        return int(self.arms.size)

    @property
    def scale(self) -> float:
        """Running mean of ``cost − floor`` (1 before any cost, or if all costs sat at the floor)."""
        mean = self.cost_sum / self.t if self.t else 0.0
        return mean if mean > 0 else 1.0

    def _sample(self, probs: np.ndarray) -> int:
        u = float(torch.rand((), generator=self.generator, dtype=torch.float64))
        cdf = np.cumsum(probs)
        return int(min(np.searchsorted(cdf, u * cdf[-1], side="right"), probs.size - 1))

    def _check_cost(self, cost: float) -> float:
        if self._pending is None:
            raise RuntimeError("update() called without a preceding select(); call select() first")
        cost = float(cost)
        if not math.isfinite(cost):
            raise ValueError(
                f"`cost` must be finite, got {cost} (cap failed solves at their iteration limit)"
            )
        if cost == 0.0 and self.floor > 0:  # a system its initial guess already solved (e.g. b = 0)
            cost = self.floor  # says nothing about the arm: the least cost, no penalty
        if cost < self.floor:
            raise ValueError(f"`cost` {cost} is below `floor` {self.floor}; lower `floor` for such costs")
        return cost - self.floor

    # ----------------------------------------------------------------- interface
    def select(self, context: float | None = None) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def update(self, cost: float) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: tensors and plain values only (``weights_only``-loadable)."""
        return {
            "kind": type(self).__name__,
            "arms": torch.as_tensor(self.arms),
            "floor": self.floor,
            "t": self.t,
            "cost_sum": self.cost_sum,
            "pending": -1 if self._pending is None else self._pending,
            "pending_prob": self._pending_prob,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a :meth:`state_dict` (of the same tuner class and arms).

        Raises:
            ValueError: a state of another tuner kind or arm grid.
        """
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"state is for a {state.get('kind')!r}, not a {type(self).__name__}")
        arms = np.asarray(state["arms"], dtype=np.float64)
        if arms.shape != self.arms.shape or not np.allclose(arms, self.arms):
            raise ValueError("state was saved with another grid of arms")
        self.floor = float(state["floor"])
        self.t = int(state["t"])
        self.cost_sum = float(state["cost_sum"])
        self._pending = None if int(state["pending"]) < 0 else int(state["pending"])
        self._pending_prob = float(state["pending_prob"])
        self.generator.set_state(state["generator"])


def tsallis_probabilities(losses: np.ndarray, eta: float, tol: float = 1e-12) -> np.ndarray:
    """Arm probabilities of 1/2-Tsallis-INF: ``p_i = 4 / (η (L_i − x))²`` with ``x < min L`` such that
    ``Σ p_i = 1``.

    ``f(x) = Σ p_i(x) − 1`` is convex and increasing on ``x < min L``; Newton's method started at
    ``min L − 2/η`` (where ``f >= 0``) decreases monotonically to the root, never crossing the pole.
    """
    losses = np.asarray(losses, dtype=np.float64)
    x = losses.min() - 2.0 / eta
    for _ in range(100):
        gap = eta * (losses - x)
        p = 4.0 / gap**2
        f = p.sum() - 1.0
        if abs(f) < tol:
            break
        x -= f / (eta * (2.0 * p / gap).sum())  # f'(x) = Σ 8 / (η² (L_i − x)³) = η Σ 2 p_i / gap_i
    return p / p.sum()


class TsallisINF(Tuner):
    """Non-contextual bandit over a grid of values; competes with the best fixed value in hindsight.

    Round ``t`` (from 1) samples arm ``i`` with probability :func:`tsallis_probabilities` of the
    normalised cumulative loss estimates ``L̂ / scale`` at ``η_t = 2/√t``. The observed cost, normalised
    to ``ℓ = (cost − floor) / scale`` (``scale``: running mean of ``cost − floor`` before this round),
    enters the reduced-variance importance-weighted estimate of Zimmert & Seldin (2021, §5):

        L̂_j += B_j + 1[j = i] (ℓ − B_j) / p_i,     B_j = baseline · 1[p_j >= η_t²],

    unbiased for every arm; the baseline (default 1, the mean normalised loss) removes most of the
    variance that the spread of costs across instances would otherwise inject. ``baseline=0`` gives the
    plain estimator ``L̂_i += ℓ / p_i`` of the paper's reference code.

    Args:
        arms: candidate values (default :func:`default_arms`).
        seed: sampling seed.
        floor: least possible cost (1 for iteration counts).
        baseline: ``B`` above, in units of the running mean cost (>= 0).

    Raises:
        ValueError: as :class:`Tuner`, or a negative ``baseline``.
    """

    def __init__(self, arms: Any = None, *, seed: int = 0, floor: float = 1.0, baseline: float = 1.0) -> None:
        super().__init__(arms, seed=seed, floor=floor)
        if not (math.isfinite(baseline) and baseline >= 0):
            raise ValueError(f"`baseline` must be a finite number >= 0, got {baseline}")
        self.baseline = float(baseline)
        self.loss_estimates = np.zeros(self.d)  # in units of the scale at the time of each update
        self._pending_probs = np.full(self.d, 1.0 / self.d)

    def probabilities(self) -> np.ndarray:
        """The sampling distribution of the next round."""
        eta = 2.0 / math.sqrt(self.t + 1)
        return tsallis_probabilities(self.loss_estimates / self.scale, eta)

    def select(self, context: float | None = None) -> float:
        """Sample a value (``context`` is ignored: this tuner is not contextual)."""
        probs = self.probabilities()
        i = self._sample(probs)
        self._pending, self._pending_prob, self._pending_probs = i, float(probs[i]), probs
        return float(self.arms[i])

    def update(self, cost: float) -> None:
        """Feed back the cost of the value returned by the last :meth:`select`."""
        shifted = self._check_cost(cost)
        scale = self.scale if self.t else max(shifted, 1e-12)  # the mean before this round (round 1: itself)
        self.cost_sum += shifted
        self.t += 1
        eta = 2.0 / math.sqrt(self.t)  # the rate the played distribution was computed with
        base = self.baseline * (self._pending_probs >= eta * eta)
        estimate = base.copy()
        i = self._pending
        estimate[i] += (shifted / scale - base[i]) / self._pending_prob
        self.loss_estimates += estimate * scale
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "baseline": self.baseline,
            "loss_estimates": torch.as_tensor(self.loss_estimates),
            "pending_probs": torch.as_tensor(self._pending_probs),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = float(state["baseline"])
        self.loss_estimates = np.asarray(state["loss_estimates"], dtype=np.float64).copy()
        self._pending_probs = np.asarray(state["pending_probs"], dtype=np.float64).copy()

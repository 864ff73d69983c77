"""Step-size controllers (shared by the ODE and SDE solvers): immutable configuration, per-solve state kept
separately.

A controller turns the scaled error ``E`` of a step (``E ≤ 1`` accepts) into the next step size. The
decision is made on host floats and is **not differentiated**: the step sizes of a solve are constants for
autograd, while the error and stiffness estimates of each step keep their gradients (the convention of
Pal et al. 2021 and of discrete-adjoint solvers generally).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Controller", "IController", "PIDController", "ConstantSteps"]


@dataclass
class _History:
    """Per-solve controller memory: inverse errors of the last accepted steps, and whether the last try
    was rejected (the next step may then not grow)."""

    inv_errors: list[float] = field(default_factory=lambda: [1.0, 1.0])
    rejected: bool = False


@dataclass(frozen=True)
class Controller:
    """Common configuration.

    Args:
        safety: factor on the optimal step (< 1).
        factor_min, factor_max: bounds on ``h_next / h``.
        dt_min: smallest step allowed; a smaller proposal ends the solve with a step-size-underflow status.
        dt_max: largest step allowed.

    Raises:
        ValueError: for inconsistent bounds.
    """

    safety: float = 0.9
    factor_min: float = 0.2
    factor_max: float = 10.0
    dt_min: float = 0.0
    dt_max: float = math.inf

    def __post_init__(self) -> None:
        if not 0 < self.safety <= 1:
            raise ValueError(f"`safety` must be in (0, 1], got {self.safety}")
        if not 0 < self.factor_min < 1 < self.factor_max:
            raise ValueError(
                f"need 0 < factor_min < 1 < factor_max, got {self.factor_min}, {self.factor_max}"
            )
        if not 0 <= self.dt_min < self.dt_max:
            raise ValueError(f"need 0 <= dt_min < dt_max, got {self.dt_min}, {self.dt_max}")

    adaptive = True

    def new_state(self) -> _History:
        return _History()

    def _factor(self, inv_error: float, state: _History, k: int) -> float:
        raise NotImplementedError

    def decide(self, error: float, h: float, k: int, state: _History) -> tuple[bool, float]:
        """Accept or reject a step of size ``h`` with scaled error ``error``; propose the next size.

        Args:
            error: the scaled error E (NaN/inf reject the step and shrink it by ``factor_min``).
            h: the step just tried (signed).
            k: ``error_order + 1`` of the method (the error scales like h^k).
            state: from :meth:`new_state`, updated in place.

        Returns:
            ``(accepted, h_next)`` with ``h_next`` signed like ``h`` and clipped to ``dt_max``.
        """
        if not math.isfinite(error):
            state.rejected = True
            return False, h * self.factor_min
        accept = error <= 1.0
        inv = 1.0 / error if error > 0 else math.inf
        factor = self._factor(min(inv, 1e10), state, k)
        factor = min(self.factor_max, max(self.factor_min, self.safety * factor))
        if not accept or state.rejected:
            factor = min(factor, 1.0)
        if accept:
            state.inv_errors = [min(inv, 1e10), state.inv_errors[0]]
        state.rejected = not accept
        h_next = h * factor
        if abs(h_next) > self.dt_max:
            h_next = math.copysign(self.dt_max, h)
        return accept, h_next


@dataclass(frozen=True)
class IController(Controller):
    """Integral controller ``h_next = h · safety · E^(−1/k)`` (the classical one; torchdiffeq's)."""

    def _factor(self, inv_error: float, state: _History, k: int) -> float:
        return inv_error ** (1.0 / k)


@dataclass(frozen=True)
class PIDController(Controller):
    """PID controller (Söderlind, *Digital filters in adaptive time-stepping*, ACM TOMS 2003).

    ``h_next = h · safety · E_n^(−β1) E_{n−1}^(−β2) E_{n−2}^(−β3)`` with ``β1 = (p + i + d)/k``,
    ``β2 = −(p + 2d)/k``, ``β3 = d/k`` — the parametrisation of diffrax. The defaults ``pcoeff=0.4,
    icoeff=0.3`` are Hairer's PI controller (β1 = 0.7/k, β2 = −0.4/k), OrdinaryDiffEq's default for
    non-stiff methods; ``pcoeff=0, icoeff=1`` is the integral controller.
    """

    pcoeff: float = 0.4
    icoeff: float = 0.3
    dcoeff: float = 0.0

    def _factor(self, inv_error: float, state: _History, k: int) -> float:
        p, i, d = self.pcoeff, self.icoeff, self.dcoeff
        prev, prev2 = state.inv_errors
        return inv_error ** ((p + i + d) / k) * prev ** (-(p + 2 * d) / k) * prev2 ** (d / k)


@dataclass(frozen=True)
class ConstantSteps(Controller):
    """Fixed steps of size ``dt`` (every step accepted; the last is shortened to land on the end time).

    Args:
        dt: the step size (> 0; the sign follows the direction of integration).
    """

    dt: float = 0.0
    adaptive = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not (self.dt > 0 and math.isfinite(self.dt)):
            raise ValueError(f"`dt` must be a positive finite step size, got {self.dt}")

    def decide(self, error: float, h: float, k: int, state: _History) -> tuple[bool, float]:
        return True, math.copysign(self.dt, h)

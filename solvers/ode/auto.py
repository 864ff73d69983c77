"""``method="auto"``: Tsit5 where the problem is non-stiff, Rodas5P where it is stiff, switched by the
stiffness index every step already computes.

The composite owns the two steppers and a switching rule with hysteresis, after OrdinaryDiffEq's
``AutoSwitch`` (Rackauckas & Nie, *DifferentialEquations.jl*, JORS 2017). The stiffness index of a Tsit5 step
is Shampine's ``S = |ρh| / 3.5068`` (Shampine 1977; Hairer & Wanner II, IV.2: ``ρ`` estimates the modulus of
the dominant eigenvalue, 3.5068 is Tsit5's stability boundary on the negative real axis); of a Rodas5P step
``S = |h|‖J‖_∞ / 3.5068``. Both are on the same scale, so they are comparable across modes.

**Tsit5 → Rodas5P.** An accepted Tsit5 step counts as stiff when

1. ``S > stifftol · r_min / 3.5068`` (0.713 with ``stifftol = 0.9``), where ``r_min`` =
   :func:`sector_boundary` = 2.778 is the smallest radius of Tsit5's stability region over the directions
   ``hλ`` with damping ratio ``ζ = −Re λ / |λ| ≥ 0.1`` (computed from the tableau's stability polynomial).
   ``ρ`` gives ``|λ|`` only, and the boundary depends on the direction: 3.5068 on the negative real axis,
   3.48 at −10³ ± 10³i, 2.78 at ζ = 0.1 (95.7°). A step that stability limits in any of those directions
   reaches the threshold; measured against the real-axis boundary alone, the stability-limited steps of a
   pair at −200 ± 2000i sit at S = 0.79 and could never count;
2. and the solution moves slowly on the step's scale: ``max_i |Δy_i| / (|y_i| + atol_i/rtol_i) < |ρh| / 10``,
   i.e. the dominant mode is at least ten times faster than the solution itself — the definition of
   stiffness (Shampine & Gear, SIAM Review 21, 1979; Hairer & Wanner II, IV.1). A mode as fast as the
   solution is being resolved, not stiff: at loose tolerances accuracy-limited steps of an oscillator reach
   ``|hω|`` ≈ 2–3 (S up to 0.9) but change the solution by O(1) per step, while stability-limited steps of
   the stiff problems measured change it by a few per cent at most.

It switches to Rodas5P once ``maxstiffstep`` of the last ``2·maxstiffstep − 1`` accepted Tsit5 steps are
stiff — a majority, i.e. the window's median, rather than ``maxstiffstep`` *consecutive* steps. A
stability-limited step size is not steady: the controller steps past the boundary and is pushed back, so
``S`` cycles (0.88, 0.88, 1.05, 1.17 for −10³ ± 10³i), and for a non-normal Jacobian (a stiff damped spring
in natural variables) ``‖JΔg‖/‖Δg‖`` depends on the phase of ``Δg`` and scatters over orders of magnitude
around ``|λ|``; a consecutive count is reset again and again and never fires. Hairer's DOPRI5 likewise
counts stiff steps without resetting on the first non-stiff one (Hairer & Wanner II, IV.2). Any
``maxstiffstep`` consecutive stiff steps are such a majority, so problems that switched before switch no
later (unless condition 2 refuses their steps, which it did on none of the stiff problems measured).

**Rodas5P → Tsit5** (unchanged): ``maxnonstiffstep`` consecutive accepted steps with ``S < nonstifftol`` (a
Tsit5 step of that size would be stable on the real axis).

Each switch is recorded as ``(t, method)`` in :attr:`Solution.switches`.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
from typing import Any

import numpy as np
import torch
from sciml.solvers.ode.implicit import ImplicitMethod
from sciml.solvers.ode.rk import RungeKutta, StepResult
from sciml.solvers.ode.rosenbrock import RODAS5P, Rosenbrock
from sciml.solvers.ode.tableau import TSIT5, Tableau
from sciml.solvers.solution import Solution

__all__ = ["AutoSwitch", "sector_boundary"]

#: the smallest damping ratio ``−Re λ / |λ|`` of the directions the stiffness threshold covers
MIN_DAMPING = 0.1
#: a stiff step's dominant mode is at least this many times faster than the solution moves
_STIFFNESS_RATIO = 10.0


@functools.cache
def sector_boundary(tableau: Tableau = TSIT5, min_damping: float = MIN_DAMPING) -> float:
    """The smallest radius of an explicit method's stability region ``|R(z)| ≤ 1`` over the directions
    ``z = x e^{iθ}`` with damping ratio ``−cos θ ≥ min_damping`` (``θ ∈ [π/2 + asin ζ, π]``, ``0 < ζ ≤ 1``).

    ``R(z) = Σ_k (bᵀA^{k−1}1) z^k`` is the tableau's stability polynomial; along ``e^{iθ}`` the boundary is
    the smallest positive root of the real polynomial ``(|R(x e^{iθ})|² − 1) / x``. Minimised over a 1° grid
    of directions, then by golden-section search between the neighbours of the smallest.

    Raises:
        ValueError: ``min_damping`` outside ``(0, 1]``.
    """
    if not 0 < min_damping <= 1:
        raise ValueError(f"`min_damping` must be in (0, 1], got {min_damping}")
    s = tableau.n_stages
    A = np.zeros((s, s))
    for i, row in enumerate(tableau.a):
        A[i, :i] = row
    coef, v = [1.0], np.ones(s)
    for _ in range(s):
        coef.append(float(np.dot(tableau.b, v)))
        v = A @ v
    coef = np.trim_zeros(np.array(coef), "b")
    powers = np.arange(len(coef))

    def radius(theta: float) -> float:
        p = coef * np.exp(1j * theta * powers)  # R(x e^{iθ}) in powers of x
        q = np.convolve(p, np.conj(p)[: len(p)]).real[1:]  # |R|² − 1, divided by x (its root at x = 0)
        roots = np.roots(q[::-1])
        real = roots.real[(np.abs(roots.imag) <= 1e-9 * np.abs(roots)) & (roots.real > 0)]
        return float(real.min()) if real.size else math.inf

    lo = math.pi / 2 + math.asin(min_damping)
    grid = np.linspace(lo, math.pi, max(2, math.ceil(math.degrees(math.pi - lo)) + 1))
    radii = [radius(t) for t in grid]
    i = int(np.argmin(radii))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    for _ in range(40):
        m1, m2 = b - 0.618 * (b - a), a + 0.618 * (b - a)
        a, b = (a, m2) if radius(m1) <= radius(m2) else (m1, b)
    return min(radii[i], radius(a), radius((a + b) / 2))


class _ModeTableau:
    """The traits the integration loop reads, answered by the stepper of the current mode (both methods
    are order 5 with an order-4 error estimate, so the controller's exponent is the same)."""

    name = "auto"
    adaptive = True
    order = 5
    error_order = 4
    stability_size = TSIT5.stability_size

    def __init__(self, owner: AutoSwitch):
        self._owner = owner

    @property
    def fsal(self) -> bool:
        return self._owner.current.tableau.fsal

    @property
    def dense(self) -> Any:
        return self._owner.current.tableau.dense

    @property
    def n_stages(self) -> int:
        return self._owner.current.tableau.n_stages


class AutoSwitch(ImplicitMethod):
    """Tsit5 ↔ Rodas5P switching on the stiffness index, with hysteresis.

    Args:
        maxstiffstep: switch to Rodas5P once this many of the last ``2·maxstiffstep − 1`` accepted Tsit5
            steps are stiff (a majority).
        maxnonstiffstep: consecutive non-stiff Rodas5P steps before switching back.
        stifftol: a Tsit5 step is stiff when ``S > stifftol · r_min / 3.5068``, a fraction of the stability
            boundary in the least stable direction with damping ratio ≥ 0.1, and the solution moves slowly
            on the step's scale (see the module docstring).
        nonstifftol: a Rodas5P step is non-stiff when ``S < nonstifftol`` (a fraction of Tsit5's real-axis
            boundary).
        jac: the Jacobian option of Rodas5P (see :func:`~sciml.solvers.ode.solve`).

    Raises:
        ValueError: non-positive counts or tolerances.
    """

    def __init__(
        self,
        maxstiffstep: int = 10,
        maxnonstiffstep: int = 3,
        stifftol: float = 0.9,
        nonstifftol: float = 0.9,
        jac: Any = None,
    ):
        if maxstiffstep < 1 or maxnonstiffstep < 1:
            raise ValueError("`maxstiffstep` and `maxnonstiffstep` must be positive integers")
        if not (stifftol > 0 and nonstifftol > 0):
            raise ValueError("`stifftol` and `nonstifftol` must be positive")
        self.settings = dict(
            maxstiffstep=maxstiffstep, maxnonstiffstep=maxnonstiffstep, stifftol=stifftol,
            nonstifftol=nonstifftol,
        )  # fmt: skip
        self.explicit = RungeKutta(TSIT5)
        self.stiff = Rosenbrock(RODAS5P).for_solve(jac)
        self.current: RungeKutta | Rosenbrock = self.explicit
        self.counters = self.stiff.counters
        self.tableau = _ModeTableau(self)
        self.switches: list[tuple[float, str]] = []
        self._count = 0  # consecutive non-stiff Rodas5P steps
        self._recent: collections.deque[bool] = collections.deque(maxlen=2 * maxstiffstep - 1)
        self._stiff_threshold = stifftol * sector_boundary() / TSIT5.stability_size
        self._zero: float | torch.Tensor | None = None  # atol / rtol: entries below it count as zero
        self._last_t: float | None = None
        self._last_S = 0.0
        self._last_stiff = False

    def __repr__(self) -> str:
        return "AutoSwitch(tsit5, rodas5p)"

    def for_solve(self, jac: Any = None) -> AutoSwitch:
        return AutoSwitch(**self.settings, jac=jac)

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None):
        return self.explicit.workspace(y, shape)

    def begin(self, rtol: float | torch.Tensor, atol: float | torch.Tensor) -> None:
        """Keep ``atol / rtol`` (per entry; inf where ``rtol`` is 0), the size below which an entry counts as
        zero in the relative change of :meth:`_slow`; Rodas5P starts the integration afresh (another field,
        e.g. the continuous adjoint's backward one, keeps nothing of the last: Jacobian, autonomy probe)."""
        if torch.is_tensor(rtol) or torch.is_tensor(atol):
            rtol, atol = (torch.as_tensor(v, dtype=torch.float64).detach() for v in (rtol, atol))
            self._zero = torch.where(rtol > 0, atol / rtol.clamp_min(torch.finfo(rtol.dtype).tiny), math.inf)
        else:
            self._zero = atol / rtol if rtol > 0 else math.inf
        self.stiff.begin(rtol, atol)

    @property
    def found_autonomous(self) -> bool:
        """Whether Rodas5P found the last integration's field autonomous (as :class:`Rosenbrock`: the
        continuous adjoint then skips the backward field's time derivative)."""
        return self.stiff.found_autonomous

    def _slow(self, y: torch.Tensor, y1: torch.Tensor, S: float) -> bool:
        """Whether the step from ``y`` to ``y1`` moves the solution slowly on the scale of the dominant mode:
        ``max_i |y1_i − y_i| / (|y_i| + atol_i/rtol_i) < |ρh| / 10``."""
        zero = self._zero
        if zero is None:
            return True
        if torch.is_tensor(zero):
            if zero.dtype != y.dtype or zero.device != y.device:
                zero = self._zero = zero.to(y)
            if zero.dim():  # tolerances of the first entries only (a seminorm): measure those
                y, y1 = y[: zero.numel()], y1[: zero.numel()]
        with torch.no_grad():
            change = float(((y1 - y).abs() / (y.abs() + zero)).max()) if y.numel() else 0.0
        return change < S * TSIT5.stability_size / _STIFFNESS_RATIO

    def _after_accepted(self, t: float) -> None:
        """The previous step was accepted (time moved on): update the hysteresis counter and maybe switch."""
        s = self.settings
        if self.current is self.explicit:
            self._recent.append(self._last_stiff)
            if sum(self._recent) >= s["maxstiffstep"]:  # a majority of the window
                self.current = self.stiff
                self._recent.clear()
                self.switches.append((t, "rodas5p"))
        else:
            self._count = self._count + 1 if self._last_S < s["nonstifftol"] else 0
            if self._count >= s["maxnonstiffstep"]:
                self.current, self._count = self.explicit, 0
                self.switches.append((t, "tsit5"))

    def step(self, f, t: float, y: torch.Tensor, h: float, k1: torch.Tensor, *, shape=None, stiffness=True,
             workspace=None) -> StepResult:  # fmt: skip
        """One step of the current method (the contract of :meth:`RungeKutta.step`)."""
        if not self.switches:
            self.switches.append((t, "tsit5"))
        if self._last_t is not None and t != self._last_t:
            self._after_accepted(t)
        self._last_t = t
        if self.current is self.explicit:
            res = self.explicit.step(f, t, y, h, k1, shape=shape, stiffness=True, workspace=workspace)
        else:
            res = self.stiff.step(f, t, y, h, k1, shape=shape, stiffness=True)
        self._last_S = float(self.stiffness_index(res.stiffness_norms.detach()))
        self._last_stiff = (
            self.current is self.explicit
            and self._last_S > self._stiff_threshold
            and self._slow(y, res.y1.detach(), self._last_S)
        )
        return res if stiffness else res._replace(stiffness_norms=None)

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        return self.current.interpolate(y0, stages, h, thetas)

    def dense_error(
        self, f: Any, t: float, y: torch.Tensor, h: float, res: StepResult, shape: Any, theta: float
    ) -> Any:
        """Rodas5P's interpolation error estimate in the stiff phase; None in the Tsit5 phase (explicit
        steps are not checked, as with ``method="tsit5"``)."""
        if self.current is self.explicit:
            return None
        return self.stiff.dense_error(f, t, y, h, res, shape, theta)

    def finish(self, solution: Solution) -> Solution:
        solution = super().finish(solution)
        return dataclasses.replace(solution, switches=tuple(self.switches))

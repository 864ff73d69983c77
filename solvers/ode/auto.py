"""``method="auto"``: Tsit5 where the problem is non-stiff, Rodas5P where it is stiff, switched by the
stiffness index every step already computes.

The composite owns the two steppers and a switching rule with hysteresis, as OrdinaryDiffEq's
``AutoSwitch`` (Rackauckas & Nie, *DifferentialEquations.jl*, JORS 2017): in Tsit5 mode, ``maxstiffstep``
consecutive accepted steps with stiffness index ``S > stifftol`` (the step is limited by Tsit5's stability,
Shampine's estimate ``|ρh| / 3.5068``) switch to Rodas5P; in Rodas5P mode, ``maxnonstiffstep`` consecutive
accepted steps with ``S = |h|‖J‖_∞ / 3.5068 < nonstifftol`` (a Tsit5 step of that size would be stable) switch
back. Both indices are measured against Tsit5's stability boundary, so they are comparable across modes.
Each switch is recorded as ``(t, method)`` in :attr:`Solution.switches`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from sciml.solvers.ode.implicit import ImplicitMethod
from sciml.solvers.ode.rk import RungeKutta, StepResult
from sciml.solvers.ode.rosenbrock import RODAS5P, Rosenbrock
from sciml.solvers.ode.tableau import TSIT5
from sciml.solvers.solution import Solution

__all__ = ["AutoSwitch"]


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
        maxstiffstep: consecutive stiff Tsit5 steps before switching to Rodas5P.
        maxnonstiffstep: consecutive non-stiff Rodas5P steps before switching back.
        stifftol, nonstifftol: thresholds on the stiffness index ``S``.
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
        self._count = 0
        self._last_t: float | None = None
        self._last_S = 0.0

    def __repr__(self) -> str:
        return "AutoSwitch(tsit5, rodas5p)"

    def for_solve(self, jac: Any = None) -> AutoSwitch:
        return AutoSwitch(**self.settings, jac=jac)

    def workspace(self, y: torch.Tensor, shape: torch.Size | None = None):
        return self.explicit.workspace(y, shape)

    def _after_accepted(self, t: float) -> None:
        """The previous step was accepted (time moved on): update the hysteresis counter and maybe switch."""
        s = self.settings
        if self.current is self.explicit:
            self._count = self._count + 1 if self._last_S > s["stifftol"] else 0
            if self._count >= s["maxstiffstep"]:
                self.current, self._count = self.stiff, 0
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
        return res if stiffness else res._replace(stiffness_norms=None)

    def interpolate(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, thetas: np.ndarray
    ) -> torch.Tensor:
        return self.current.interpolate(y0, stages, h, thetas)

    def finish(self, solution: Solution) -> Solution:
        solution = super().finish(solution)
        return dataclasses.replace(solution, switches=tuple(self.switches))

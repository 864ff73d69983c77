"""What every implicit (stiff) ODE method shares: per-solve work counters, the ``jac=`` binding, and the
registry of method names :func:`~sciml.solvers.ode.solve` accepts.

An implicit method honours the explicit methods' step contract (``step(f, t, y, h, k1, ...) ->
StepResult``, ``interpolate``, ``stiffness_index``, a ``tableau`` with ``order``/``error_order``/``fsal``),
so the same integration loop, controllers, ``saveat``, dense output, statuses and adjoints serve both. What
it adds is state that lives for one solve (the Jacobian and factorisation it reuses, its counters), so
:func:`solve` asks the registry for a fresh instance per solve, and a test of its dense output
(:meth:`ImplicitMethod.dense_error`: ``dense_point`` and ``iteration_solve`` per method), which the loop
applies where the solution is interpolated (``solve(..., dense_error=...)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from sciml.solvers.solution import Solution

__all__ = ["ImplicitCounters", "ImplicitMethod", "IMPLICIT_METHODS", "implicit_method"]


@dataclass
class ImplicitCounters:
    """Work of one solve beyond evaluations of ``f``.

    Attributes:
        njev: Jacobians computed.
        nlu: factorisations of ``W = I/(hγ) − J``.
        n_newton, n_newton_fail: Newton iterations and non-converged Newton solves (0 for the Rosenbrock
            methods, which solve linear systems only; kept so that Newton-based methods report the same).
        nfe_jacobian: calls of ``f`` made inside Jacobian evaluations (not counted in ``nfe``).
        njvp: Jacobian–vector products of matrix-free Newton–Krylov (``jac="krylov"``; no ``njev`` there).
    """

    njev: int = 0
    nlu: int = 0
    n_newton: int = 0
    n_newton_fail: int = 0
    nfe_jacobian: int = 0
    njvp: int = 0


class ImplicitMethod:
    """Base of the implicit steppers: :meth:`for_solve` returns a fresh copy bound to a Jacobian option."""

    implicit = True
    counters: ImplicitCounters
    #: where :meth:`dense_error` tests the dense output (fractions of the step; the larger estimate counts).
    #: The interpolants' errors along a step have zeros whose places depend on the method and on the phase
    #: of the slow solution (Rodas4's lies near θ = 1/2, where the midpoint alone underestimated the largest
    #: error 10⁴-fold); with both 1/2 and 7/8 the larger estimate came within a factor 2.2 of the largest
    #: error over the step for all six methods on Prothero–Robinson (λ = −10², −10⁴, −10⁶; h from 1/16 to 1;
    #: 13 phases of the forcing), where the best single abscissa per method left factors 3–10.
    dense_error_thetas: tuple[float, ...] = (0.5, 0.875)
    #: whether ``dense_error="auto"`` tests this method's dense output where the solution is interpolated
    #: (False where the step's own estimate already controls it: rosenbrock23, not stiffly accurate)
    dense_error_auto: bool = True

    def for_solve(self, jac: Any = None) -> ImplicitMethod:
        raise NotImplementedError

    def begin(self, rtol: float | torch.Tensor, atol: float | torch.Tensor) -> None:
        """Called by the integration loop before each integration (forward or adjoint) with its tolerances;
        methods whose Newton iteration needs them (``radau5``, ESDIRK) keep them. Default: nothing."""

    def default_controller(self) -> Any:
        """The controller :func:`~sciml.solvers.ode.solve` uses when none is given (default: the integral
        controller; ``radau5`` supplies RADAU5's predictive one)."""
        from sciml.solvers.controllers import IController

        return IController()

    def counted_jacobian(self, f: Any, t: float, y: torch.Tensor, shape: torch.Size, fy: torch.Tensor) -> Any:
        """``self.jacobian`` (the method's Jacobian provider) at ``(t, y)``, counted in ``njev``, its calls of
        ``f`` in ``nfe_jacobian``; a matrix-free one (products counted as they are made) not in ``njev``."""
        J = self.jacobian(f, t, y, shape, fy)
        if getattr(J, "matrix_free", False):
            J.counters = self.counters
        else:
            self.counters.njev += 1
        self.counters.nfe_jacobian += J.evaluations
        return J

    def finish(self, solution: Solution) -> Solution:
        """Add this solve's counters to ``solution.stats`` (``f`` calls inside Jacobians move from ``nfe``
        to ``njev``)."""
        c, st = self.counters, solution.stats
        st.nfe -= c.nfe_jacobian
        st.njev, st.nlu, st.n_newton, st.n_newton_fail = c.njev, c.nlu, c.n_newton, c.n_newton_fail
        st.njvp = c.njvp
        return solution

    # ------------------------------------------------------------------------ interpolation error test
    def dense_point(
        self, y0: torch.Tensor, stages: torch.Tensor, h: float, theta: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The dense output ``p(θ)`` of the last step and its derivative ``dp/dθ`` (flat states)."""
        raise NotImplementedError

    def iteration_solve(self, r: torch.Tensor) -> torch.Tensor:
        """``(I/(hγ) − J)⁻¹ r`` with the factorisation the last step used (``hγ`` its diagonal: RADAU5's
        ``h/γ_real``)."""
        raise NotImplementedError

    def dense_error(
        self, f: Any, t: float, y: torch.Tensor, h: float, res: Any, shape: torch.Size, theta: float
    ) -> Any:
        """An estimate of the error of the dense output at ``t + θh`` inside the step ``(t, y) → (t + h,
        res.y1)`` (flat), or None where there is none (``method="auto"`` in its Tsit5 phase).

        The defect of the interpolant ``p`` there, ``r = p'(t + θh) − f(t + θh, p(t + θh))`` (one evaluation
        of ``f``), filtered by the step's own iteration matrix: ``e = (I/(hγ) − J)⁻¹ r`` (one solve with the
        existing factorisation). The interpolant's error ``δ = p − y`` obeys ``δ' ≈ Jδ + r``, ``δ(t) = 0``. In
        a stiff mode (``|hγλ| ≫ 1``) it relaxes to ``δ ≈ −r/λ``, the limit of ``e`` (on Prothero–Robinson,
        λ = −10⁶, ``e`` equals the interpolant's error at ``θ`` to three digits); in a non-stiff mode
        ``δ(t + θh) = h ∫₀^θ r`` and ``e → hγ r`` (γ ≈ 0.21–0.29 here), an estimate of the same size. The
        stiff case is the one the end point's embedded estimate misses: a stiffly accurate method's ``y1``
        is slaved to the slow manifold whatever ``h``, so that estimate stays small while the interpolant in
        between (of lower stage order) errs by O(1) at large ``h``.

        Computed without autograd history: like the step-size decision it feeds, it is not differentiated.
        """
        with torch.no_grad():
            p, dp = self.dense_point(y, res.stages, h, theta)
            r = dp / h - f(t + theta * h, p.view(shape)).reshape(-1)
            return self.iteration_solve(r)

    def stiffness_index(self, norms: torch.Tensor) -> torch.Tensor:
        """``S = |h| ‖J‖_∞ / stability_size(Tsit5)`` from ``(|h|‖J‖_∞, 1)`` pairs: S ≥ 1 means an explicit
        Tsit5 step of this size would be unstable (what ``method="auto"`` switches on)."""
        from sciml.solvers.ode.tableau import TSIT5

        tiny = torch.finfo(norms.dtype).tiny
        return norms[..., 0] / norms[..., 1].clamp_min(tiny) / TSIT5.stability_size


def _registry() -> dict[str, Callable[[], ImplicitMethod]]:
    from sciml.solvers.ode.auto import AutoSwitch
    from sciml.solvers.ode.esdirk import ESDIRK, ESDIRK_TABLEAUS
    from sciml.solvers.ode.radau import Radau
    from sciml.solvers.ode.rosenbrock import ROSENBROCK_TABLEAUS, Rosenbrock

    methods: dict[str, Callable[[], ImplicitMethod]] = {
        name: (lambda t=tab: Rosenbrock(t)) for name, tab in ROSENBROCK_TABLEAUS.items()
    }
    methods["auto"] = AutoSwitch
    methods.update({name: (lambda t=tab: ESDIRK(t)) for name, tab in ESDIRK_TABLEAUS.items()})
    methods["radau5"] = Radau
    return methods


#: names of the implicit methods
IMPLICIT_METHODS: tuple[str, ...] = (
    "rosenbrock23",
    "rodas4",
    "rodas5p",
    "radau5",
    "kvaerno3",
    "kvaerno5",
    "auto",
)


def implicit_method(name: str) -> ImplicitMethod | None:
    """A fresh stepper for an implicit method's name, or None if ``name`` is not one."""
    if name not in IMPLICIT_METHODS:
        return None
    return _registry()[name]()

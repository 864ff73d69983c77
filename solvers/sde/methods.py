"""One step of each SDE method, with its embedded error estimate and stiffness index as tensors.

Every method declares what it supports (:attr:`SDEMethod.noise_types`, :attr:`SDEMethod.sde_types`),
whether it needs the space-time Lévy area ``I_(1,0)`` (:attr:`SDEMethod.levy_area`), and, if it has an
embedded error estimate, how that estimate scales with the step (:attr:`SDEMethod.error_exponent`: the
controller's ``k`` in ``h_next = h · safety · E^(−1/k)``).

Methods:

- ``"euler"``: Euler–Maruyama (Itô, any noise; strong order 0.5, 1.0 for additive noise). Fixed steps.
- ``"euler_heun"``: Euler–Heun (Stratonovich, any noise; strong order 0.5, 1.0 for commutative noise).
  Fixed steps.
- ``"milstein"``: derivative-free Milstein (Kloeden & Platen 1992, §11.1; Itô or Stratonovich;
  diagonal, scalar or additive noise; strong order 1.0) with the embedded estimate
  ``ẽ = h (f(t+h, y1) − f(t, y))/2 + M``: Heun-minus-Euler for the drift plus the Milstein correction ``M``
  itself (the local error of the embedded Euler–Maruyama step, ``O(h)``); ``f(t+h, y1)`` is reused as the
  next step's first evaluation, so the estimate costs nothing on accepted steps.
- ``"midpoint"``, ``"heun"``, ``"reversible_heun"`` (Kidger et al. 2021), ``"log_ode"``: Stratonovich, any
  noise, fixed steps (torchsde's methods; strong order 1.0 for commutative noise, 0.5 in general).
- ``"sra1"``, ``"sra3"``, ``"sosra"``, ``"sosra2"``: SRA methods (additive noise, Itô = Stratonovich;
  strong order 1.5).
- ``"sriw1"``, ``"sriw2"``, ``"sosri"``, ``"sosri2"``: SRI methods (Itô; scalar or diagonal noise; strong
  order 1.5).

The SRA/SRI estimates are the natural embeddings described in :mod:`sciml.solvers.sde.tableau` (``O(h^1.5)``).
Stiffness index (Shampine's estimate, as in the ODE core): ``S = |h| ρ / stability_size`` with
``ρ = ‖f_j − f_i‖ / ‖H0_j − H0_i‖`` from the two drift stages ``tableau.stiffness_stages`` (for Milstein:
``f(t, y)`` and ``f(t + h, y1)``, Euler's stability interval 2).

Work is counted where it happens: evaluations of ``f`` and of ``g`` separately (:class:`SDESolverStats`).
Stage values that coincide (SRIW1's stages 3 and 4 evaluate ``f`` at ``y``; an SRA's ``g`` at a time that
another stage already used) are evaluated once, and ``f(t, y)``, ``g(t, y)`` of a step are kept for the
retry after a rejection.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import torch
from sciml.problems.sde import NOISE_TYPES, SDE_TYPES
from sciml.solvers.sde.tableau import SRA_TABLEAUS, SRI_TABLEAUS, SRATableau, SRITableau
from sciml.solvers.solution import SolverStats

__all__ = ["SDEMethod", "SDEStepResult", "SDESolverStats", "Terms", "METHODS", "get_method"]


@dataclass
class SDESolverStats(SolverStats):
    """:class:`~sciml.solvers.solution.SolverStats` with the drift and diffusion evaluations counted apart;
    ``nfe = nfe_drift + nfe_diffusion`` (every evaluation of ``f`` or ``g``)."""

    nfe_drift: int = 0
    nfe_diffusion: int = 0


class Terms:
    """Drift and diffusion on host times, counted, with the product ``g · v`` for the noise type.

    ``g`` is returned as ``(batch, d)`` for diagonal and scalar noise (the scalar channel squeezed, so
    ``g * v`` with ``v`` of shape ``(batch, 1)`` broadcasts) and ``(batch, d, m)`` otherwise.
    """

    def __init__(
        self,
        drift: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        diffusion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        noise_type: str,
        stats: SDESolverStats,
        like: torch.Tensor,
        g_prod: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        sde_type: str = "ito",
    ):
        self._f, self._g, self._g_prod = drift, diffusion, g_prod
        self.noise_type, self.sde_type = noise_type, sde_type
        self.stats = stats
        self.dtype, self.device = like.dtype, like.device
        self.elementwise = noise_type in ("diagonal", "scalar")

    def _time(self, t: float) -> torch.Tensor:
        return torch.full((), t, dtype=self.dtype, device=self.device)

    def f(self, t: float, y: torch.Tensor) -> torch.Tensor:
        self.stats.nfe_drift += 1
        self.stats.nfe += 1
        return self._f(self._time(t), y)

    def g(self, t: float, y: torch.Tensor) -> torch.Tensor:
        if self._g is None:  # the methods that use only g_prod: Euler–Maruyama, midpoint, Heun, log-ODE
            works = ["euler"] if self.sde_type == "ito" else ["midpoint", "heun"]
            if self.sde_type != "ito" and self.noise_type != "general":  # no Lévy-area term, which needs g
                works.append("log_ode")
            raise ValueError(
                "this method needs the diffusion matrix `g(t, y)` but the SDE defines only the product "
                f"`g_prod(t, y, v)`; define `g` (or `f_and_g`), or choose {' or '.join(works)} (the "
                f"{self.sde_type} methods that need only g_prod for {self.noise_type} noise)"
            )
        self.stats.nfe_diffusion += 1
        self.stats.nfe += 1
        out = self._g(self._time(t), y)
        return out.squeeze(-1) if self.noise_type == "scalar" else out

    def gprod(self, t: float, y: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``g(t, y) · v``, by the SDE's own ``g_prod`` when it has one (torchsde's contract)."""
        if self._g_prod is None:
            return self.prod(self.g(t, y), v)
        self.stats.nfe_diffusion += 1
        self.stats.nfe += 1
        return self._g_prod(self._time(t), y, v)

    def prod(self, G: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """``g · v``: elementwise for diagonal/scalar noise, a batched matrix-vector product otherwise."""
        if self.elementwise:
            return G * v
        return torch.bmm(G, v.unsqueeze(-1)).squeeze(-1)


class SDEStepResult(NamedTuple):
    """What one step produced.

    Attributes:
        y1: the proposed state at ``t + h``.
        y_error: the embedded error vector ``ẽ`` (None for methods without an estimate).
        stiffness: the stiffness index ``S = |h| ρ / stability_size`` (0-d tensor; None if the method has
            no stiffness stages or it was not asked for).
        end: values at ``(t + h, y1)`` the next step may reuse if this one is accepted (``"f"``, ``"g"``).
    """

    y1: torch.Tensor
    y_error: torch.Tensor | None
    stiffness: torch.Tensor | None
    end: dict[str, torch.Tensor]


def _weighted_sum(terms: list[tuple[float, torch.Tensor | None]]) -> torch.Tensor | None:
    """``Σ c_j x_j`` over the terms with ``c_j ≠ 0`` (fused multiply-adds; None if there are none)."""
    acc = None
    for c, x in terms:
        if c != 0.0:
            acc = x * c if acc is None else torch.add(acc, x, alpha=c)
    return acc


def _combine(base: torch.Tensor, terms: list[tuple[float, torch.Tensor | None]], scale=1.0) -> torch.Tensor:
    """``base + scale · Σ c_j x_j`` over the terms with ``c_j ≠ 0`` (``scale`` a number or a tensor)."""
    acc = _weighted_sum(terms)
    if acc is None:
        return base
    return torch.add(base, acc, alpha=scale) if isinstance(scale, float) else torch.addcmul(base, acc, scale)


def _stiffness_index(fi, fj, Hi, Hj, h: float, stability_size: float) -> torch.Tensor:
    num = torch.linalg.vector_norm(fj - fi)
    den = torch.linalg.vector_norm(Hj - Hi).clamp_min(torch.finfo(num.dtype).tiny)
    return num * abs(h) / den / stability_size


class SDEMethod:
    """Base class: a method's capabilities as data, and ``step``.

    Attributes:
        name: the method's name (``"sosri"``).
        noise_types, sde_types: what it supports (torchsde's names).
        strong_order: its strong order (on the noise types it supports; see the method's docstring).
        adaptive: True if it has an embedded error estimate.
        error_exponent: the estimate scales like ``h^error_exponent`` (the controller's ``k``).
        levy_area: True if it needs ``I_(1,0)`` from the Brownian motion (``levy_area_approximation``).
        stability_size: real stability interval of the drift part (scales the stiffness index).
    """

    name: str = ""
    noise_types: tuple[str, ...] = ()
    sde_types: tuple[str, ...] = ()
    strong_order: float = 0.5
    adaptive: bool = False
    error_exponent: float = 1.0
    levy_area: bool = False
    stability_size: float | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def step(
        self,
        terms: Terms,
        t: float,
        y: torch.Tensor,
        h: float,
        dW: torch.Tensor,
        U: torch.Tensor | None,
        start: dict[str, torch.Tensor],
        stiffness: bool = True,
    ) -> SDEStepResult:
        """Take one step of size ``h`` from ``(t, y)``.

        Args:
            terms: drift and diffusion (:class:`Terms`).
            t, h: step start and size (host floats: step-size decisions are not differentiated).
            y: state ``(batch, d)``.
            dW: ``W(t + h) − W(t)``, ``(batch, m)``.
            U: ``I_(1,0) = ∫_t^{t+h} (W_s − W_t) ds`` (methods with ``levy_area``; else None).
            start: values already known at ``(t, y)`` (``"f"``, ``"g"``); the step adds the ones it computes,
                so a retry after a rejection reuses them.
            stiffness: compute the stiffness index.

        Returns:
            An :class:`SDEStepResult`.
        """
        raise NotImplementedError

    @staticmethod
    def _start(terms: Terms, t: float, y: torch.Tensor, start: dict, need_g: bool = True):
        if "f" not in start:
            start["f"] = terms.f(t, y)
        if need_g and "g" not in start:
            start["g"] = terms.g(t, y)
        return start["f"], start.get("g")


class EulerMaruyama(SDEMethod):
    """Euler–Maruyama ``y1 = y + h f + g ΔW`` (Maruyama 1955). Itô; strong order 0.5 (1.0 for additive
    noise); no error estimate (fixed steps)."""

    name = "euler"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("ito",)
    stability_size = 2.0

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, _ = self._start(terms, t, y, start, need_g=False)
        noise = terms.prod(start["g"], dW) if "g" in start else terms.gprod(t, y, dW)
        y1 = y + h * f0 + noise
        return SDEStepResult(y1, None, None, {})


class EulerHeun(SDEMethod):
    """Euler–Heun ``y1 = y + h f + ½ (g(t, y) + g(t + h, y + g ΔW)) ΔW``. Stratonovich; strong order 0.5
    (1.0 for commutative noise); no error estimate (fixed steps)."""

    name = "euler_heun"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("stratonovich",)
    strong_order = 0.5
    stability_size = 2.0

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, g0 = self._start(terms, t, y, start)
        noise0 = terms.prod(g0, dW)
        g1 = terms.g(t + h, y + noise0)
        y1 = y + h * f0 + 0.5 * (noise0 + terms.prod(g1, dW))
        return SDEStepResult(y1, None, None, {})


class Milstein(SDEMethod):
    """Derivative-free Milstein (Kloeden & Platen, *Numerical Solution of SDEs*, 1992, §11.1):

    Itô: ``ȳ = y + h f + √h g``, ``M = (g(t, ȳ) − g(t, y)) (ΔW² − h) / (2√h)``; Stratonovich: the central
    difference ``M = (g(t, y + √h g) − g(t, y − √h g)) ΔW² / (4√h)`` (the one-sided difference leaves a term
    ``g'' g² √h ΔW²/4`` whose nonzero mean, summed over the steps, caps the strong order at 0.5: measured);
    ``y1 = y + h f + g ΔW + M``. Diagonal, scalar or additive noise (for additive noise ``M = 0`` and the
    extra evaluations are skipped); strong order 1.0. Embedded estimate ``h (f(t+h, y1) − f)/2 + M``
    (``O(h)``, see the module docstring).
    """

    name = "milstein"
    noise_types = ("diagonal", "scalar", "additive")
    sde_types = ("ito", "stratonovich")
    strong_order = 1.0
    adaptive = True
    error_exponent = 1.0
    stability_size = 2.0

    def __init__(self, sde_type: str = "ito", grad_free: bool = True):
        self.sde_type = sde_type
        self.grad_free = grad_free

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, g0 = self._start(terms, t, y, start)
        y1 = y + h * f0 + terms.prod(g0, dW)
        correction = None
        if terms.noise_type != "additive":
            sqrt_h = math.sqrt(abs(h))
            if not self.grad_free:  # g ∂g by autograd
                correction = _g_dg(terms, t, y) * ((dW**2 - h) if self.sde_type == "ito" else dW**2) * 0.5
            elif self.sde_type == "ito":
                gg = terms.g(t, y + h * f0 + sqrt_h * g0) - g0  # ≈ √h g ∂g
                correction = gg * ((dW**2 - h) / (2 * sqrt_h))
            else:  # central difference: a one-sided one leaves ½ g'' g² √h · ΔW²/2, whose mean accumulates
                gg = 0.5 * (terms.g(t, y + sqrt_h * g0) - terms.g(t, y - sqrt_h * g0))
                correction = gg * (dW**2 / (2 * sqrt_h))
            y1 = y1 + correction
        f1 = terms.f(t + h, y1)
        error = 0.5 * h * (f1 - f0)
        if correction is not None:
            error = error + correction
        S = _stiffness_index(f0, f1, y, y1, h, self.stability_size) if stiffness else None
        return SDEStepResult(y1, error, S, {"f": f1})


def _g_dg(terms: Terms, t: float, y: torch.Tensor) -> torch.Tensor:
    """``L¹g = (∂g/∂y) g`` for diagonal/scalar noise by autograd (torchsde's Milstein without ``grad_free``).

    Scalar noise needs the Jacobian-vector product ``(∂g) g``; for diagonal noise ``∂g`` is diagonal and one
    vector-Jacobian product ``(∂g)ᵀ g`` gives the same (torchsde 0.2.6 uses that product for scalar noise
    too, which caps the strong order at 0.5 when ``d > 1``).
    """
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        y_in = y if y.requires_grad else y.detach().requires_grad_(True)
        G = terms.g(t, y_in)
        if not G.requires_grad:  # g does not depend on y (nor on anything that needs a gradient)
            return torch.zeros_like(y)
        if terms.noise_type == "scalar":
            out = _jvp(G, y_in, G, outer)
        else:
            (out,) = torch.autograd.grad(G, y_in, G, create_graph=outer, allow_unused=True)
    return torch.zeros_like(y) if out is None else out


def _jvp(out: torch.Tensor, y: torch.Tensor, v: torch.Tensor, create_graph: bool) -> torch.Tensor | None:
    """``(∂out/∂y) v`` by two vector-Jacobian products (None where ``out`` does not depend on ``y``)."""
    u = torch.zeros_like(out, requires_grad=True)
    (vjp,) = torch.autograd.grad(out, y, u, create_graph=True, allow_unused=True)
    if vjp is None or not vjp.requires_grad:
        return None
    return torch.autograd.grad(vjp, u, v, create_graph=create_graph, allow_unused=True)[0]


class Midpoint(SDEMethod):
    """Stratonovich midpoint ``y' = y + ½ h f + ½ g ΔW``, ``y1 = y + h f(t + h/2, y') + g(t + h/2, y') ΔW``
    (any noise; strong order 0.5, 1.0 for additive noise). Fixed steps; uses the SDE's ``g_prod`` if any."""

    name = "midpoint"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("stratonovich",)
    stability_size = 2.0

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, _ = self._start(terms, t, y, start, need_g=False)
        half = 0.5 * h
        y_mid = y + half * f0 + 0.5 * terms.gprod(t, y, dW)
        y1 = y + h * terms.f(t + half, y_mid) + terms.gprod(t + half, y_mid, dW)
        return SDEStepResult(y1, None, None, {})


class Heun(SDEMethod):
    """Stratonovich Heun ``y' = y + h f + g ΔW``, ``y1 = y + ½ (h (f + f') + (g + g') ΔW)`` with ``f', g'`` at
    ``(t + h, y')`` (any noise; strong order 0.5, 1.0 for additive noise). Fixed steps."""

    name = "heun"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("stratonovich",)
    stability_size = 2.0

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, _ = self._start(terms, t, y, start, need_g=False)
        n0 = terms.gprod(t, y, dW)
        y_pred = y + h * f0 + n0
        y1 = y + 0.5 * (h * (f0 + terms.f(t + h, y_pred)) + n0 + terms.gprod(t + h, y_pred, dW))
        return SDEStepResult(y1, None, None, {})


class ReversibleHeun(SDEMethod):
    """Reversible Heun (Kidger, Foster, Li & Lyons, ICML 2021): with the extra state ``(f, g, z)`` at ``t``,
    ``z1 = 2y − z + h f + g ΔW``, ``f1, g1`` at ``(t + h, z1)``, ``y1 = y + ½ h (f + f1) + ½ (g + g1) ΔW``.
    Stratonovich, any noise; one ``f`` and one ``g`` per step; algebraically reversible (running it backward
    in time from ``(y1, f1, g1, z1)`` recovers ``y``). Fixed steps. The extra state travels in ``start``."""

    name = "reversible_heun"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("stratonovich",)
    stability_size = 2.0

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, g0 = self._start(terms, t, y, start)
        z0 = start.setdefault("z", y)
        z1 = 2 * y - z0 + h * f0 + terms.prod(g0, dW)
        f1, g1 = terms.f(t + h, z1), terms.g(t + h, z1)
        y1 = y + (0.5 * h) * (f0 + f1) + terms.prod(g0 + g1, 0.5 * dW)
        return SDEStepResult(y1, None, None, {"f": f1, "g": g1, "z": z1})


class LogODE(SDEMethod):
    """Log-ODE midpoint (Stratonovich, any noise; strong order 0.5, 1.0 for additive noise): the midpoint
    step plus the Lévy-area term ``Σ_jk A_jk (∂g_j/∂y) g_k`` at the midpoint (zero unless the noise is
    general), with ``A`` from a Brownian motion with ``levy_area_approximation`` ``'davie'``/``'foster'``.
    The derivative is taken by autograd (one Jacobian-vector product per Brownian channel). Fixed steps."""

    name = "log_ode"
    noise_types = ("diagonal", "additive", "scalar", "general")
    sde_types = ("stratonovich",)
    stability_size = 2.0
    levy_area = True
    brownian_query = "A"

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        f0, _ = self._start(terms, t, y, start, need_g=False)
        half = 0.5 * h
        y_mid = y + half * f0 + 0.5 * terms.gprod(t, y, dW)
        y1 = y + h * terms.f(t + half, y_mid) + terms.gprod(t + half, y_mid, dW)
        if terms.noise_type == "general":
            y1 = y1 + _levy_area_term(terms, t + half, y_mid, U)
        return SDEStepResult(y1, None, None, {})


def _levy_area_term(terms: Terms, t: float, y: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """``Σ_jk A_jk (∂g_j/∂y) g_k = Σ_j (∂g_j/∂y) w_j`` with ``w = g Aᵀ`` (double-vjp JVPs)."""
    outer = torch.is_grad_enabled()
    with torch.enable_grad():
        y_in = y if y.requires_grad else y.detach().requires_grad_(True)
        G = terms.g(t, y_in)
        total = torch.zeros_like(y)
        if not G.requires_grad:
            return total
        W = torch.bmm(G, A.transpose(1, 2))
        for j in range(G.shape[-1]):
            jvp = _jvp(G[..., j], y_in, W[..., j], outer)
            if jvp is not None:
                total = total + jvp
    return total


class StepDoubling(SDEMethod):
    """Any fixed-step method made adaptive by step doubling (as torchsde's ``adaptive=True``): one step of
    ``h`` against two of ``h/2`` on the same Brownian path; ``ẽ`` is their difference and the two half steps
    are kept. Costs three steps per step; ``error_exponent`` = strong order + ½."""

    adaptive = True

    def __init__(self, method: SDEMethod, bm):
        self.method, self.bm = method, bm
        self.name = method.name
        self.noise_types, self.sde_types = method.noise_types, method.sde_types
        self.levy_area = method.levy_area
        self.brownian_query = getattr(method, "brownian_query", "U")
        self.strong_order = method.strong_order
        self.error_exponent = method.strong_order + 0.5
        self.stability_size = method.stability_size

    def _query(self, ta, tb):
        if self.method.levy_area:
            return self.bm(ta, tb, **{f"return_{getattr(self.method, 'brownian_query', 'U')}": True})
        return self.bm(ta, tb), None

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        full = self.method.step(terms, t, y, h, dW, U, dict(start), False)
        half = 0.5 * h
        first = self.method.step(terms, t, y, half, *self._query(t, t + half), start, False)
        second = self.method.step(terms, t + half, first.y1, half, *self._query(t + half, t + h),
                                  dict(first.end), False)  # fmt: skip
        return SDEStepResult(second.y1, second.y1 - full.y1, None, dict(second.end))


class _Stages:
    """Which stage values a tableau needs, and which coincide with an earlier stage's (evaluated once)."""

    def __init__(
        self, s: int, c: tuple[float, ...], rows: list[tuple[tuple[float, ...], ...]], needed: list[bool]
    ):
        self.needed = needed
        self.alias: list[int | None] = [None] * s
        for i in range(s):
            for j in range(i):
                same = c[i] == c[j] and all(_padded(m[i], s) == _padded(m[j], s) for m in rows)
                if same and needed[j] and self.alias[j] is None:
                    self.alias[i] = j
                    break


def _padded(row: tuple[float, ...], s: int) -> tuple[float, ...]:
    return tuple(row) + (0.0,) * (s - len(row))


def _column_used(matrices, i: int) -> bool:
    return any(row[i] != 0.0 for m in matrices for row in m[i + 1 :])


class SRA(SDEMethod):
    """An SRA method from an :class:`~sciml.solvers.sde.tableau.SRATableau` (additive noise: ``g`` depends
    on ``t``
    only; any number of Brownian channels; Itô and Stratonovich coincide). Strong order 1.5."""

    noise_types = ("additive",)
    sde_types = ("ito", "stratonovich")
    strong_order = 1.5
    adaptive = True
    error_exponent = 1.5
    levy_area = True

    def __init__(self, tableau: SRATableau):
        self.tableau = tableau
        self.name = tableau.name
        self.stability_size = tableau.stability_size
        s, tab = tableau.n_stages, tableau
        f_needed = [tab.alpha[i] != 0.0 or _column_used([tab.a0], i) or i == 0 or i in tab.stiffness_stages
                    for i in range(s)]  # fmt: skip
        self.f_stages = _Stages(s, tab.c0, [tab.a0, tab.b0], f_needed)
        self.g_times = sorted(set(tab.c1))

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        tab = self.tableau
        s = tab.n_stages
        chi2 = U / h  # I_(1,0) / h
        # g depends on t only: one evaluation per distinct time; g(t) may come from the previous step
        G = {}
        for c in self.g_times:
            G[c] = start["g"] if c == 0.0 and "g" in start else terms.g(t + c * h, y)
        if 0.0 in G:
            start["g"] = G[0.0]
        gchi = {c: terms.prod(Gc, chi2) for c, Gc in G.items()}  # g(t + c h) I_(1,0)/h
        fs: list[torch.Tensor | None] = [None] * s
        H: list[torch.Tensor] = [y] * s
        for i in range(s):
            if i > 0:
                H[i] = _combine(y, list(zip(tab.a0[i], fs[:i])), h)
                H[i] = _combine(H[i], [(b, gchi[tab.c1[j]]) for j, b in enumerate(tab.b0[i])])
            if not self.f_stages.needed[i]:
                continue
            alias = self.f_stages.alias[i]
            if alias is not None:
                fs[i] = fs[alias]
            elif i == 0:
                fs[0] = start["f"] if "f" in start else terms.f(t, y)
                start["f"] = fs[0]
            else:
                fs[i] = terms.f(t + tab.c0[i] * h, H[i])
        drift = _combine(torch.zeros_like(y), list(zip(tab.alpha, fs)), h)
        noise_n = _combine(torch.zeros_like(y), [(b, gchi[tab.c1[i]]) for i, b in enumerate(tab.beta2)])
        by_time: dict[float, float] = {}
        for i, b in enumerate(tab.beta1):
            by_time[tab.c1[i]] = by_time.get(tab.c1[i], 0.0) + b
        noise_1 = _combine(torch.zeros_like(y), [(w, terms.prod(G[c], dW)) for c, w in by_time.items()])
        y1 = y + drift + noise_1 + noise_n
        error = (drift - h * fs[0]) + noise_n
        S = None
        if stiffness:
            i, j = tab.stiffness_stages
            S = _stiffness_index(fs[i], fs[j], H[i], H[j], h, self.stability_size)
        end = {"g": G[1.0]} if 1.0 in G else {}
        return SDEStepResult(y1, error, S, end)


class SRI(SDEMethod):
    """An SRI method from an :class:`~sciml.solvers.sde.tableau.SRITableau` (Itô; scalar or diagonal noise,
    i.e.
    ``g_i`` depends on ``y_i`` only, so the noise is commutative). Strong order 1.5."""

    noise_types = ("diagonal", "scalar")
    sde_types = ("ito",)
    strong_order = 1.5
    adaptive = True
    error_exponent = 1.5
    levy_area = True

    def __init__(self, tableau: SRITableau):
        self.tableau = tableau
        self.name = tableau.name
        self.stability_size = tableau.stability_size
        s, tab = tableau.n_stages, tableau
        f_needed = [tab.alpha[i] != 0.0 or _column_used([tab.a0, tab.a1], i) or i == 0
                    or i in tab.stiffness_stages for i in range(s)]  # fmt: skip
        betas = (tab.beta1, tab.beta2, tab.beta3, tab.beta4)
        g_needed = [any(b[i] != 0.0 for b in betas) or _column_used([tab.b0, tab.b1], i) for i in range(s)]
        self.f_stages = _Stages(s, tab.c0, [tab.a0, tab.b0], f_needed)
        self.g_stages = _Stages(s, tab.c1, [tab.a1, tab.b1], g_needed)

    def step(self, terms, t, y, h, dW, U, start, stiffness=True):
        tab = self.tableau
        s = tab.n_stages
        sqrt_h = math.sqrt(abs(h))
        chi1 = (dW**2 - h) / (2 * sqrt_h)  # I_(1,1)/√h
        chi2 = U / h  # I_(1,0)/h
        chi3 = (dW**3 - 3 * h * dW) / (6 * h)  # I_(1,1,1)/h
        fs: list[torch.Tensor | None] = [None] * s
        gs: list[torch.Tensor | None] = [None] * s
        H0: list[torch.Tensor] = [y] * s
        for i in range(s):
            if i > 0:
                H0[i] = _combine(y, list(zip(tab.a0[i], fs[:i])), h)
                H0[i] = _combine(H0[i], list(zip(tab.b0[i], gs[:i])), chi2)
            if self.f_stages.needed[i]:
                alias = self.f_stages.alias[i]
                if alias is not None:
                    fs[i] = fs[alias]
                elif i == 0:
                    fs[0] = start["f"] if "f" in start else terms.f(t, y)
                    start["f"] = fs[0]
                else:
                    fs[i] = terms.f(t + tab.c0[i] * h, H0[i])
            if self.g_stages.needed[i]:
                alias = self.g_stages.alias[i]
                if alias is not None:
                    gs[i] = gs[alias]
                elif i == 0:
                    gs[0] = start["g"] if "g" in start else terms.g(t, y)
                    start["g"] = gs[0]
                else:
                    H1 = _combine(y, list(zip(tab.a1[i], fs[:i])), h)
                    H1 = _combine(H1, list(zip(tab.b1[i], gs[:i])), sqrt_h)
                    gs[i] = terms.g(t + tab.c1[i] * h, H1)
        drift = _weighted_sum(list(zip(tab.alpha, fs))) * h
        # diagonal/scalar noise: Σ_i g_i (β1_i ΔW + β2_i χ1 + β3_i χ2 + β4_i χ3) = ΔW Σβ1 g + ... + χ3 Σβ4 g
        betas = (tab.beta1, tab.beta2, tab.beta3, tab.beta4)
        G1, G2, G3, G4 = (_weighted_sum(list(zip(beta, gs))) for beta in betas)
        noise_n = torch.addcmul(G3 * chi2, G4, chi3)
        y1 = torch.addcmul(torch.addcmul(y + drift, G1, dW), G2, chi1) + noise_n
        error = torch.add(drift, fs[0], alpha=-h) + noise_n
        S = None
        if stiffness:
            i, j = tab.stiffness_stages
            S = _stiffness_index(fs[i], fs[j], H0[i], H0[j], h, self.stability_size)
        return SDEStepResult(y1, error, S, {})


_SIMPLE = {"euler": EulerMaruyama, "euler_heun": EulerHeun, "midpoint": Midpoint, "heun": Heun,
           "reversible_heun": ReversibleHeun, "log_ode": LogODE}  # fmt: skip


def _make(name: str, sde_type: str, grad_free: bool = True) -> SDEMethod:
    if name in _SIMPLE:
        return _SIMPLE[name]()
    if name == "milstein":
        return Milstein(sde_type, grad_free)
    if name in SRA_TABLEAUS:
        return SRA(SRA_TABLEAUS[name])
    return SRI(SRI_TABLEAUS[name])


#: every method name
METHODS: tuple[str, ...] = (*_SIMPLE, "milstein", *SRA_TABLEAUS, *SRI_TABLEAUS)
#: torchsde's name for a stochastic Runge–Kutta method, resolved by noise type
TORCHSDE_ALIASES = {"srk": {"additive": "sosra", "diagonal": "sosri", "scalar": "sosri"}}
_CACHE: dict[tuple[str, str, bool], SDEMethod] = {}


def default_method(noise_type: str, sde_type: str) -> str:
    """The default method for a noise/SDE type: SOSRA (additive), SOSRI (Itô diagonal/scalar), Milstein
    (Stratonovich diagonal/scalar), Euler–Maruyama / Euler–Heun (general noise, fixed steps)."""
    if noise_type == "additive":
        return "sosra"
    if noise_type == "general":
        return "euler" if sde_type == "ito" else "euler_heun"
    return "sosri" if sde_type == "ito" else "milstein"


def get_method(method: str | SDEMethod, noise_type: str, sde_type: str, grad_free: bool = True) -> SDEMethod:
    """The stepper for ``method`` after checking it supports the noise and SDE type.

    Raises:
        ValueError: an unknown ``noise_type``/``sde_type`` or method, or a method that does not support them
            (the message names the methods that do).
    """
    for arg, value, valid in (("noise_type", noise_type, NOISE_TYPES), ("sde_type", sde_type, SDE_TYPES)):
        if value not in valid:
            raise ValueError(f"`{arg}` must be one of {valid} (torchsde's names), got {value!r}")
    if isinstance(method, SDEMethod):
        stepper = method
    else:
        name = TORCHSDE_ALIASES.get(method, {}).get(noise_type, method)
        if name not in METHODS:
            raise ValueError(f"unknown SDE method {method!r}; choose one of {list(METHODS)} (or 'srk')")
        key = (name, sde_type, grad_free)
        if key not in _CACHE:
            _CACHE[key] = _make(name, sde_type, grad_free)
        stepper = _CACHE[key]
    if noise_type not in stepper.noise_types or sde_type not in stepper.sde_types:
        fits = [m for m in METHODS if noise_type in _make(m, sde_type).noise_types
                and sde_type in _make(m, sde_type).sde_types]  # fmt: skip
        raise ValueError(
            f"method {stepper.name!r} supports noise types {list(stepper.noise_types)} and SDE types "
            f"{list(stepper.sde_types)}, not {noise_type!r} noise with sde_type={sde_type!r}; methods for "
            f"this SDE: {fits}"
        )
    return stepper

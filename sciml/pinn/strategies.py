"""Training strategies of the trainer: causal weighting, residual-based adaptive resampling, loss balancing,
time-marching, a preconditioned residual, tail averaging.

The first four are from the list in Wang, Sankaran, Wang & Perdikaris, *An expert's guide to training
physics-informed neural networks* (2023); all six apply to PINNs and PIGs alike (they act on the loss, the
collocation points or the iterates, not on the model):

* :func:`causal_residual` — Wang, Sankaran & Perdikaris, *Respecting causality is all you need for
  training physics-informed neural networks* (CMAME 2024): the time interval is cut into ``M`` chunks with
  mean squared residuals ``L_1..L_M`` (averaged over equations, as the plain loss is); chunk ``i`` is
  weighted by ``w_i = exp(−ε Σ_{k<i} L_k)`` (held constant in the gradient), so later times are trained only
  once earlier ones are resolved. The trainer's L-BFGS holds the weights fixed for each of its steps (from
  the step's first evaluation), so that its line search sees one objective.
* :func:`rad_points` — Wu, Zhu, Tan, Kartha & Lu, *A comprehensive study of non-adaptive and
  residual-based adaptive sampling for PINNs* (CMAME 2023), RAD: from a pool of candidates (drawn as the
  trainer's ``sampling`` says; uniform by default), draw collocation points with probability
  ``∝ |r|^k / mean(|r|^k) + c``.
* :class:`GradNormBalance` — the guide's gradient-norm weighting (Wang, Teng & Perdikaris, SIAM J. Sci.
  Comput. 2021, in the guide's form): ``λ_j = Σ_i ‖∇L_i‖ / ‖∇L_j‖`` of the unweighted terms ``L_i``,
  smoothed by ``λ ← α λ + (1 − α) λ_new``, recomputed every ``every`` iterations; the loss weights are the
  configured weights times ``λ``. A term whose gradient norm is below the floating-point resolution
  (machine ε of its dtype) of the largest one's is left out: its gradient is rounding noise (a condition the
  architecture satisfies exactly, e.g. periodicity built into the network), which ``λ_j`` would scale up by
  ~1/ε.
* :class:`TimeWindows` and :func:`window_problems` — the guide's time-marching (also Wight & Zhao,
  *Solving Allen–Cahn and Cahn–Hilliard equations using the adaptive physics informed neural networks*,
  2020): ``[t0, T]`` is cut into ``K`` windows trained one after the other; the initial condition of window
  ``k`` is window ``k − 1``'s prediction at their shared time (its value, and its time derivative where the
  problem has an initial velocity), and window ``k``'s network starts from window ``k − 1``'s weights. The
  trained model is one :class:`TimeWindows` module that dispatches each point on its time.
* :class:`PreconditionedResidual` — the residual's inverse-Laplacian norm ``mean(((−Δ)⁻¹ r)²)`` on a grid,
  operator preconditioning in the sense of De Ryck, Bonnet, Mishra & de Bézenac, *An operator
  preconditioning perspective on training in physics-informed machine learning* (ICLR 2024): the pointwise
  loss ``mean(r²)`` of a second-order problem weighs an error component of wavenumber ``κ`` by about
  ``κ⁴``, so smooth errors cost it almost nothing; ``(−Δ)⁻¹`` weighs them about equally.
* :class:`TailAverage` — iterate averaging (Polyak & Juditsky 1992): the mean of the parameters at the ends
  of the last resampling periods, each of which ends fitted to its own collocation points.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from sciml.pinn.models import Constrained
from sciml.problems.pde.conditions import (
    Condition,
    InitialValue,
    InitialVelocity,
    Observations,
    Periodic,
    PointCondition,
    _OnFaces,
)
from sciml.problems.pde.domain import Box
from sciml.problems.pde.geometry import Geometry, SpaceTime
from sciml.problems.pde.problem import HardConstraint, PDEProblem

__all__ = [
    "causal_residual",
    "rad_points",
    "GradNormBalance",
    "TimeWindows",
    "window_edges",
    "window_problems",
    "constrained_initial_values",
    "PreconditionedResidual",
]


def causal_residual(
    squares: torch.Tensor,
    t: torch.Tensor,
    t0: float,
    t1: float,
    chunks: int,
    eps: float,
    *,
    weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The causally weighted mean squared residual.

    Args:
        squares: squared residuals ``(n,)`` (or ``(n, m)``, averaged over equations first, as the plain
            loss ``mean(r²)`` does: one chunk with ``ε = 0`` gives that mean).
        t: the time coordinate of the same points ``(n,)``.
        t0, t1: the time interval.
        chunks: number of time chunks ``M`` (≥ 1).
        eps: causality parameter ``ε`` (≥ 0; 0 gives equal weights, i.e. the plain mean over chunks).
        weights: use these chunk weights ``(M,)`` instead of computing them (the trainer's L-BFGS holds the
            weights of a step's first evaluation fixed through its line search).

    Returns:
        ``(loss, weights)``: ``mean_i w_i L_i`` and the weights ``(M,)`` (detached). Empty chunks count 0.
    """
    if squares.ndim > 1:
        squares = squares.mean(dim=tuple(range(1, squares.ndim)))
    index = ((t.detach() - t0) / (t1 - t0) * chunks).long().clamp_(0, chunks - 1)
    sums = squares.new_zeros(chunks).index_add(0, index, squares)
    counts = squares.new_zeros(chunks).index_add(0, index, torch.ones_like(squares)).clamp_(min=1)
    means = sums / counts
    if weights is None:
        with torch.no_grad():
            before = torch.cumsum(means, 0) - means
            weights = torch.exp(-eps * before)
    else:
        weights = weights.detach()
    return (weights * means).mean(), weights


def rad_points(
    pool: torch.Tensor,
    residual: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    generator: torch.Generator,
    *,
    k: float = 1.0,
    c: float = 1.0,
) -> torch.Tensor:
    """``n`` of the ``pool`` points drawn without replacement with probability ``∝ |r|^k / mean|r|^k + c``.

    Args:
        pool: candidate points ``(m, d)``, ``m ≥ n`` (uniform or low-discrepancy in the domain).
        residual: maps points to residuals (``(m,)`` or ``(m, e)``); called once.
        n: points to keep.
        generator: the trainer's random stream.
        k, c: RAD's exponent and offset (k = 1, c = 1 in Wu et al.'s recommendation; c → ∞ is uniform).

    Returns:
        The chosen points ``(n, d)``.
    """
    r = residual(pool).detach()
    if r.ndim > 1:
        r = r.abs().sum(dim=tuple(range(1, r.ndim)))
    density = r.abs().double() ** k
    mean = density.mean()
    if not torch.isfinite(mean) or mean <= 0:  # nothing to adapt to: uniform
        density = torch.ones_like(density)
    else:
        density = density / mean + c
    chosen = torch.multinomial(density, n, replacement=False, generator=generator)
    return pool[chosen]


class GradNormBalance:
    """Loss weights from the gradient norms of the terms (see the module docstring).

    Args:
        terms: names of the loss terms.
        base: the configured weights (the balance multiplies them; a term of weight 0 is not balanced).
        every: iterations between updates.
        alpha: smoothing factor in [0, 1).
    """

    def __init__(self, terms: Sequence[str], base: Mapping[str, float], every: int, alpha: float) -> None:
        self.terms = list(terms)
        self.base = dict(base)
        self.every = int(every)
        self.alpha = float(alpha)
        self.factors = {t: 1.0 for t in self.terms}

    def weights(self) -> dict[str, float]:
        """The weights to use now: the configured ones times the balance factors."""
        return {t: self.base[t] * self.factors[t] for t in self.terms}

    def due(self, iteration: int) -> bool:
        return iteration % self.every == 0

    def update(self, terms: Mapping[str, torch.Tensor], params: Sequence[torch.nn.Parameter]) -> None:
        """Recompute the factors from the gradient norms of the unweighted ``terms`` (so the factors multiply
        the configured weights rather than cancel them).

        Left out (their factors stay as they are, 1 unless balanced before): terms of weight 0, terms that do
        not depend on ``params``, and terms whose gradient norm is at most machine ε (of the term's dtype)
        times the largest one's — at that level the gradient is rounding noise, not a signal to balance.
        """
        norms = {}
        for name in self.terms:
            value = terms[name]
            if not value.requires_grad or self.base[name] == 0:
                continue
            grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
            squared = sum(float((g.detach() ** 2).sum()) for g in grads if g is not None)
            if 0 < squared < math.inf:
                norms[name] = (squared**0.5, torch.finfo(value.dtype).eps)
        if not norms:
            return
        largest = max(norm for norm, _ in norms.values())
        valid = {k: norm for k, (norm, eps) in norms.items() if norm > eps * largest}
        total = sum(valid.values())
        for name, norm in valid.items():
            new = total / norm
            self.factors[name] = self.alpha * self.factors[name] + (1 - self.alpha) * new


class TailAverage:
    """Running mean of the trainable parameters at the ends of the resampling periods from ``start`` on.

    Iterate averaging (Polyak & Juditsky, *Acceleration of stochastic approximation by averaging*, SIAM J.
    Control Optim. 1992; as stochastic weight averaging, Izmailov et al., UAI 2018) for training on
    collocation points that are redrawn every period: each period ends fitted to its own points, and the
    mean of those ends cancels much of that scatter. Training itself is unchanged; :meth:`apply` puts the
    mean into the parameters at the end.

    Args:
        params: the trainable parameters.
        start: the first iteration whose iterate counts.
    """

    def __init__(self, params: list[torch.Tensor], start: int) -> None:
        self.params, self.start = params, int(start)
        self.mean: list[torch.Tensor] | None = None
        self.count, self.last = 0, -1

    def add(self, iteration: int) -> None:
        """Count the current parameters as the iterate of ``iteration`` (once; none before ``start``)."""
        if iteration < self.start or iteration == self.last or iteration == 0:
            return
        self.count, self.last = self.count + 1, iteration
        with torch.no_grad():
            if self.mean is None:
                self.mean = [p.detach().clone() for p in self.params]
            else:
                for m, p in zip(self.mean, self.params):
                    m.add_(p.detach() - m, alpha=1.0 / self.count)

    def apply(self) -> None:
        """Put the mean into the parameters (nothing if no iterate was counted)."""
        if self.mean is not None:
            with torch.no_grad():
                for m, p in zip(self.mean, self.params):
                    p.copy_(m)

    def state_dict(self) -> dict[str, Any]:
        return {"count": self.count, "last": self.last, "mean": self.mean}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.count, self.last = int(state["count"]), int(state["last"])
        mean = state["mean"]
        self.mean = None if mean is None else [m.to(p) for m, p in zip(mean, self.params)]


def _orthonormal_dst(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Orthonormal type-I discrete sine transform of ``x`` along ``dim`` (through a real FFT, so autograd
    and any dtype work): ``X_k = √(2/(n+1)) Σ_j x_j sin(π j k / (n + 1))``, ``j, k = 1..n``."""
    n = x.shape[dim]
    shape = list(x.shape)
    shape[dim] = 1
    zero = x.new_zeros(shape)
    odd = torch.cat([zero, x, zero, -torch.flip(x, (dim,))], dim=dim)  # length 2n + 2, odd about 0
    spectrum = torch.fft.rfft(odd, dim=dim)
    return -spectrum.imag.narrow(dim, 1, n) * (0.5 * (2.0 / (n + 1)) ** 0.5)


class PreconditionedResidual:
    """``mean(((−Δ)⁻¹ r)²)``: the residual's inverse-Laplacian norm on a grid of the domain's bounding box.

    The residual is evaluated on the interior grid of ``n`` points per axis of the bounding box
    (``lower + (upper − lower) j / (n + 1)``, ``j = 1..n``; points outside the domain count as ``r = 0``),
    transformed by an orthonormal discrete sine transform per axis, divided by the Laplacian's eigenvalue
    ``Σ_a (π m_a / L_a)²`` of each mode (Dirichlet on the box; every coordinate counts, time too) and summed
    in squares (Parseval), over the grid's ``n^d`` points and the equations. For ``−Δu = f`` it is the
    squared L2 error of the grid modes; for another second-order operator it weighs every error component
    about equally instead of by its eigenvalue squared, as ``mean(r²)`` does. Added to the pointwise loss
    (which still sees the frequencies above the grid's), not instead of it. Residual content above the grid's
    ``n`` modes per axis aliases onto lower modes, whose smaller eigenvalues amplify it: choose ``n`` so that
    the grid resolves the solution (more than two points per wavelength along each axis).

    Args:
        domain: the problem's domain.
        points: grid points per axis (≥ 2); ``points ** ndim`` residual evaluations per loss.
        dtype, device: of the grid and the result.

    Raises:
        ValueError: fewer than 2 points per axis, or no grid point inside the domain.
    """

    def __init__(
        self, domain: Geometry, points: int, *, dtype: torch.dtype, device: torch.device | str = "cpu"
    ) -> None:
        if not isinstance(points, int) or isinstance(points, bool) or points < 2:
            raise ValueError(f"`preconditioned_points` must be an integer ≥ 2, got {points!r}")
        n, d = points, domain.ndim
        steps = torch.arange(1, n + 1, dtype=torch.float64) / (n + 1)
        axes = [lo + (hi - lo) * steps for lo, hi in zip(domain.lower, domain.upper)]
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, d)
        inside = domain.inside(grid)
        if not bool(inside.any()):
            raise ValueError(
                f"no point of the {n}^{d} preconditioning grid lies inside the domain; raise "
                "`preconditioned_points`"
            )
        modes = torch.arange(1, n + 1, dtype=torch.float64)
        eigenvalue = torch.zeros((n,) * d, dtype=torch.float64)
        for a, (lo, hi) in enumerate(zip(domain.lower, domain.upper)):
            view = [1] * d
            view[a] = n
            eigenvalue = eigenvalue + ((torch.pi * modes / (hi - lo)) ** 2).reshape(view)
        self.shape = (n,) * d
        #: the grid points inside the domain, where the trainer evaluates the residual ``(m, d)``
        self.points = grid[inside].to(device=device, dtype=dtype)
        self._index = inside.nonzero().squeeze(1).to(device)
        self._inverse = (1.0 / eigenvalue).to(device=device, dtype=dtype)

    def __call__(self, residual: torch.Tensor) -> torch.Tensor:
        """The norm of ``residual`` (at :attr:`points`: ``(m,)`` or ``(m, e)``), a scalar."""
        r = residual.reshape(len(self.points), -1)
        field = r.new_zeros((self._inverse.numel(), r.shape[1])).index_copy(0, self._index, r)
        field = field.reshape(*self.shape, r.shape[1])
        for dim in range(len(self.shape)):
            field = _orthonormal_dst(field, dim)
        return ((field * self._inverse.unsqueeze(-1)) ** 2).sum() / self._inverse.numel()


# --------------------------------------------------------------------------------------------- time-marching
def window_edges(domain: Geometry, windows: int) -> list[float]:
    """The ``windows + 1`` times that cut the domain's time interval into equal windows (ends exact).

    Raises:
        ValueError: ``windows < 1`` or a domain without a time coordinate.
    """
    if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
        raise ValueError(f"`time_windows` must be an integer ≥ 1, got {windows!r}")
    ti = domain.time_index
    if ti is None:
        raise ValueError(
            f"`time_windows` cuts the time interval into windows, but the domain {domain!r} has no time "
            "coordinate; set time_windows=1"
        )
    t0, t1 = float(domain.lower[ti]), float(domain.upper[ti])
    return [t0 + (t1 - t0) * k / windows for k in range(windows)] + [t1]


def _window_domain(domain: Geometry, t0: float, t1: float) -> Geometry:
    """``domain`` with its time interval replaced by ``[t0, t1]``."""
    ti = domain.time_index
    if isinstance(domain, Box):
        lower, upper = list(domain.lower), list(domain.upper)
        lower[ti], upper[ti] = t0, t1
        return dataclasses.replace(domain, lower=tuple(lower), upper=tuple(upper))
    if isinstance(domain, SpaceTime):
        return SpaceTime(domain.space, t0, t1, domain.time)
    raise ValueError(
        f"time-marching needs a Box with a time coordinate or a SpaceTime domain (shape.times(t0, t1)), "
        f"got {type(domain).__name__}"
    )


class _PreviousWindow:
    """The previous window's field ``column`` (or its time derivative) at points on the shared time: the
    initial data of the next window. Detached; the last result is reused while the points are unchanged
    (collocation points stay fixed between resamplings)."""

    def __init__(self, model: nn.Module, column: int, time_index: int, velocity: bool) -> None:
        self.model, self.column, self.time_index, self.velocity = model, column, time_index, velocity
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.detach()
        last = self._last
        if (
            last is not None
            and last[0].shape == x.shape
            and last[0].device == x.device
            and torch.equal(last[0], x)
        ):
            return last[1]
        if self.velocity:
            with torch.enable_grad():
                xr = x.clone().requires_grad_(True)
                u = self.model(xr)[:, self.column]
                (g,) = torch.autograd.grad(u.sum(), xr)
            out = g[:, self.time_index].detach()
        else:
            with torch.no_grad():
                out = self.model(x)[:, self.column]
        self._last = (x.clone(), out)
        return out


def _columns(v: torch.Tensor | float, x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(v):
        v = x.new_full((x.shape[0],), float(v))
    return v[:, None] if v.ndim == 1 else v


def _window_constraint(
    constraint: HardConstraint,
    previous: nn.Module,
    mask: torch.Tensor,
    edges: Sequence[float],
    k: int,
    ti: int,
) -> HardConstraint:
    """The hard constraint of window ``k ≥ 1``: the initial value moves from ``t₀ = edges[0]`` to
    ``t_s = edges[k]``.

    With the problem's ``u = P + F · N`` and the previous window's model ``U``, on fields whose initial
    value the constraint enforces (``mask``): ``P' = P(x, t) − P(x, t_s) + U(x, t_s)`` and
    ``F' = F(x, t) · (t − t_s)/(t − t₀) · (t₁ − t₀)/(t_e − t_s)`` (smooth on the window, where
    ``t ≥ t_s > t₀``; ``t_e = edges[k + 1]``, ``t₁ = edges[-1]``): ``P'`` is ``U`` at ``t_s`` and keeps the
    Dirichlet data (``U`` satisfies them exactly), ``F'`` vanishes at ``t_s`` and wherever ``F`` does.
    For ``F = φ · (t − t₀)/(t₁ − t₀)`` (:meth:`HardConstraint.from_conditions`),
    ``F' = φ · (t − t_s)/(t_e − t_s)``, the factor of the window posed as a problem of its own; without the
    last ratio the network would have to output values ``(t₁ − t₀)/(t_e − t_s)`` times larger to change the
    solution as much within the window (measured: on a disk heat equation whose Dirichlet extension varies
    in time, 2 windows left the second at 0.20 relative L2 error on 2 of 3 seeds, and 7e-4 – 9e-4 with it;
    README, time-marching).
    """
    t_start, t_origin = edges[k], edges[0]
    stretch = (edges[-1] - t_origin) / (edges[k + 1] - t_start)

    def at_start(x: torch.Tensor) -> torch.Tensor:
        xs = x.clone()
        xs[:, ti] = t_start
        return xs

    def particular(x: torch.Tensor) -> torch.Tensor:
        p = _columns(constraint.particular(x), x)
        xs = at_start(x)
        jump = previous(xs) - _columns(constraint.particular(xs), x)
        return p + jump * mask.to(dtype=x.dtype, device=x.device)

    def scale(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
        def scaled(x: torch.Tensor) -> torch.Tensor:
            t = x[:, ti]
            s = ((t - t_start) / (t - t_origin) * stretch)[:, None]
            m = mask.to(dtype=x.dtype, device=x.device)
            return _columns(fn(x), x) * (1 + m * (s - 1))

        return scaled

    return HardConstraint(
        particular=particular,
        factor=scale(constraint.factor),
        enforces=constraint.enforces,
        corner=None if constraint.corner is None else scale(constraint.corner),
    )


class _WindowConstrained(Constrained):
    """:class:`~sciml.pinn.Constrained` for a later window, whose fixed functions evaluate the earlier windows
    (a network each): their jets are kept for the last few point sets (the residual's and each condition's
    points, fixed between resamplings) instead of the last one only."""

    _KEEP = 8

    def _fixed_jets(self, x: torch.Tensor, spec):
        store = self.__dict__.setdefault("_store", {})
        hit = store.get(id(x))
        if hit is not None and hit[0] is x and hit[1] == x._version and hit[2] == spec:
            return hit[3]
        self._cache = None
        jets = super()._fixed_jets(x, spec)
        if len(store) >= self._KEEP:
            store.pop(next(iter(store)))
        store[id(x)] = (x, x._version, spec, jets)
        return jets


class TimeWindows(nn.Module):
    """A model made of one model per time window: each point goes to the window that holds its time.

    Window ``k`` covers ``[edges[k], edges[k+1])`` (the last one also its end time), so a point on a shared
    time goes to the later window, whose initial value there is the earlier window's prediction. Built by
    the trainer for ``TrainConfig(time_windows=K)``; saved and loaded like any module (``state_dict``).

    Args:
        windows: the ``K`` window models (each maps ``(n, ndim)`` points to ``(n, n_fields)``).
        edges: ``K + 1`` increasing times.
        time_index: the column of the time coordinate.

    Raises:
        ValueError: ``len(edges) != len(windows) + 1`` or edges that do not increase.
    """

    def __init__(self, windows: Sequence[nn.Module], edges: Sequence[float], time_index: int) -> None:
        super().__init__()
        edges = [float(e) for e in edges]
        if len(edges) != len(windows) + 1 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(
                f"`edges` must be {len(windows) + 1} increasing times for {len(windows)} windows, got {edges}"
            )
        self.windows = nn.ModuleList(windows)
        self.edges = tuple(edges)
        self.time_index = int(time_index)
        self.in_features = getattr(windows[0], "in_features", None)
        self.out_features = getattr(windows[0], "out_features", None)

    def window_of(self, t: torch.Tensor) -> torch.Tensor:
        """The window index of each time in ``t`` (``(n,)`` long)."""
        inner = torch.tensor(self.edges[1:-1], dtype=t.dtype, device=t.device)
        return torch.bucketize(t.detach().contiguous(), inner, right=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = self.window_of(x[:, self.time_index])
        order = torch.argsort(index, stable=True)
        counts = torch.bincount(index, minlength=len(self.windows)).tolist()
        pieces, start = [], 0
        for model, count in zip(self.windows, counts):
            if count:
                pieces.append(model(x[order[start : start + count]]))
                start += count
        out = torch.cat(pieces)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
        return out[inverse]


def _supported(problem: PDEProblem) -> None:
    for c in problem.conditions:
        if isinstance(c, (InitialValue, InitialVelocity, _OnFaces, Periodic)):
            continue
        why = (
            " (the fixed points of Observations and PointCondition are not divided among the windows)"
            if isinstance(c, (Observations, PointCondition))
            else ""
        )
        raise ValueError(
            f"time-marching supports Dirichlet, Neumann, Robin, periodic, initial value and initial velocity "
            f"conditions; {problem.name}'s condition {c.name!r} is of type {type(c).__name__}, which it "
            f"cannot restrict to a window{why}; set time_windows=1"
        )


def constrained_initial_values(problem: PDEProblem, model: nn.Module) -> torch.Tensor:
    """Per field of ``problem``, 1 where the hard constraint of ``model`` (a :class:`Constrained`) builds in
    the field's ``InitialValue`` — the fields whose initial value later time windows move (see
    :func:`_window_constraint`) — else 0; all 0 for a model without a constraint."""
    mask = torch.zeros(len(problem.fields))
    if isinstance(model, Constrained):
        for name in model.constraint.enforces:
            c = problem.condition(name)
            if isinstance(c, InitialValue):
                mask[problem.fields.index(c.field) if c.field is not None else 0] = 1.0
    return mask


def window_problems(
    problem: PDEProblem, model: nn.Module, windows: int
) -> tuple[TimeWindows, list[PDEProblem]]:
    """The piecewise model and one problem per window for time-marching over ``windows`` windows.

    Window 0 is ``model`` itself on ``problem`` restricted to the first window. Window ``k ≥ 1`` is a copy
    of ``model`` (the trainer loads window ``k − 1``'s weights into it before training it) on the problem
    restricted to ``[t_k, t_{k+1}]``, whose initial conditions are window ``k − 1``'s prediction at ``t_k``:
    each :class:`InitialValue` takes its value, each :class:`InitialVelocity` its time derivative, and a hard
    constraint (``model`` a :class:`~sciml.pinn.Constrained`) that enforces an initial value is moved to
    ``t_k`` (see :func:`_window_constraint`). A boundary condition whose predicate ``on`` selects no point
    of a window (a wall that is Dirichlet for ``t < 0.5`` and Neumann after) is left out of that window's
    problem, with its loss weight. The window problems have no exact solution or reference: errors are
    measured with the whole :class:`TimeWindows` model on the original problem's reference.

    Args:
        problem: a time-dependent problem on a Box or SpaceTime domain.
        model: the (untrained) model for the first window.
        windows: ``K ≥ 1``.

    Returns:
        ``(TimeWindows model, [K problems])``.

    Raises:
        ValueError: no time coordinate, another kind of domain, a condition that cannot be handed
            between windows (observations, custom condition classes), or a predicate ``on`` that selects no
            boundary point in any window (the condition's own message).
    """
    edges = window_edges(problem.domain, windows)
    _supported(problem)
    domain, ti = problem.domain, problem.domain.time_index
    fields = problem.fields

    def column(c: Condition) -> int:
        return fields.index(c.field) if c.field is not None else 0

    constraint = model.constraint if isinstance(model, Constrained) else None
    enforced = set(constraint.enforces) if constraint is not None else set()
    mask = constrained_initial_values(problem, model)
    domains = [_window_domain(domain, edges[k], edges[k + 1]) for k in range(windows)]
    # a condition whose predicate selects no boundary point of a window is left out of that window
    reach = {
        c.name: [c.name in enforced or not isinstance(c, _OnFaces) or c.reaches(d) for d in domains]
        if windows > 1
        else [True]
        for c in problem.conditions
    }
    for c in problem.conditions:
        if not any(reach[c.name]):
            c.validate(domains[0], fields)  # the condition's own error (it selects no point anywhere)
    models: list[nn.Module] = [model]
    problems = []
    for k in range(windows):
        label = f"{problem.name} (window {k + 1}/{windows})" if windows > 1 else problem.name
        changes = dict(
            name=label,
            domain=domains[k],
            exact=None,
            reference=None,
            test_shape=None,
            constraint=problem.constraint,  # the first window keeps it as it is; later ones move it (below)
        )
        kept = [c for c in problem.conditions if reach[c.name][k]]
        if len(kept) < len(problem.conditions):
            terms = {"residual", *(c.name for c in kept)}
            changes["conditions"] = tuple(kept)
            changes["loss_weights"] = {t: w for t, w in problem.loss_weights.items() if t in terms}
        if k > 0:
            previous = models[k - 1]
            conditions = []
            for c in kept:
                if isinstance(c, (InitialValue, InitialVelocity)):
                    velocity = isinstance(c, InitialVelocity)
                    c = dataclasses.replace(c, value=_PreviousWindow(previous, column(c), ti, velocity))
                conditions.append(c)
            changes["conditions"] = tuple(conditions)
            window_constraint = None
            if constraint is not None:
                window_constraint = constraint
                if mask.any():
                    window_constraint = _window_constraint(constraint, previous, mask, edges, k, ti)
                net = _WindowConstrained(copy.deepcopy(model.net), window_constraint)
            else:
                net = copy.deepcopy(model)
            changes["constraint"] = window_constraint
            models.append(net)
        problems.append(problem.replace(**changes))
    return TimeWindows(models, edges, ti), problems

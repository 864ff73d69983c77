"""Regularizers that make a neural ODE cheap to solve, and the baselines they are compared with.

Each is a small object; :class:`~sciml.neural_de.model.NeuralODE` calls its hooks during a training
forward pass and returns its scalar value. The training loss is ``task_loss + weight(epoch) · value`` with a
schedule from this module.

* :class:`ErrorEstimateRegularizer` — ``R_E = Σ_j E_j |h_j|`` over the accepted steps (or the mean, or
  ``Σ E_j²``): Pal, Ma, Shah & Rackauckas, *Opening the Blackbox: Accelerating Neural Differential
  Equations by Regularizing Internal Solver Heuristics*, ICML 2021 (ERNODE). Needs backprop through the
  solver.
* :class:`StiffnessRegularizer` — ``R_S = Σ_j S_j`` (or ``max_j``) of the stiffness indices (SRNODE, same
  paper).
* :class:`LocalErrorRegularizer` — ``E · h`` of one differentiable step at a sampled time, unbiased
  (``t_r ~ U[t0, t1)``) or biased (``t_r`` drawn from the accepted step starts): Pal, Edelman & Rackauckas,
  *Locally Regularized Neural Differential Equations*, ICML 2023. Works with any adjoint, including
  ``torchdiffeq.odeint_adjoint`` as the main solver (unbiased sampling).
* Baselines: :class:`Steer` (Ghosh et al., NeurIPS 2020: random end time), :class:`RNODE` (Finlay et al.,
  ICML 2020: kinetic energy + Hutchinson Jacobian Frobenius norm, integrated as extra states) and
  :class:`TayNODE` (Kelly et al., NeurIPS 2020: ``∫ ‖d^K y/dt^K‖²`` by nested forward-mode AD, as an extra
  state — expensive by design).
"""

from __future__ import annotations

import inspect
import math
import numbers
from typing import TYPE_CHECKING

import torch
from torch import nn

from sciml.solvers.solution import Solution

if TYPE_CHECKING:
    from sciml.neural_de.model import NeuralODE

__all__ = [
    "Regularizer", "ErrorEstimateRegularizer", "StiffnessRegularizer", "LocalErrorRegularizer", "Steer",
    "RNODE", "TayNODE", "ConstantSchedule", "ExponentialSchedule", "DelayedSchedule",
]  # fmt: skip


class Regularizer:
    """Base class: every hook defaults to "no effect". Hooks run only in training mode."""

    #: save every accepted step (biased local sampling needs the states at step starts)
    needs_steps = False

    def end_time(self, t_span: tuple[float, float]) -> float:
        """The end time of this training solve (STEER samples it)."""
        return t_span[1]

    def save_time(self, t_span: tuple[float, float]) -> float | None:
        """An extra time at which the main solve must save the state (unbiased local sampling)."""
        return None

    def augment(self, field: nn.Module) -> AugmentedField | None:
        """A field with extra integrated states (RNODE, TayNODE), or None."""
        return None

    def __call__(
        self,
        model: NeuralODE,
        solution: Solution,
        ys: torch.Tensor,
        index: dict[float, int],
        sample: float | None,
    ) -> torch.Tensor | None:
        """The regularizer's value from a training solve (``ys[index[t]]`` is the state at save time t)."""
        return None


def check_regularizer(regularizer: object) -> None:
    """Refuse a ``regularizer`` argument that is neither None nor a :class:`Regularizer` instance (a class, a
    variant's name), naming the fix.

    Raises:
        TypeError: any other ``regularizer``.
    """
    if regularizer is None or isinstance(regularizer, Regularizer):
        return
    if isinstance(regularizer, type) and issubclass(regularizer, Regularizer):
        name = regularizer.__name__
        raise TypeError(
            f"`regularizer` must be None or a Regularizer instance, got the class {name}: pass an instance, "
            f"{name}()"
        )
    hint = (
        f" ({regularizer!r} is a name of the training command's --reg; make_variant in "
        "sciml.neural_de.training builds the regularizer of a name)"
        if isinstance(regularizer, str)
        else ""
    )
    raise TypeError(
        "`regularizer` must be None or a Regularizer instance, e.g. ErrorEstimateRegularizer() or "
        f"LocalErrorRegularizer() (from sciml.neural_de), got {type(regularizer).__name__} "
        f"{regularizer!r:.60}{hint}"
    )


def _empty_value(ys: torch.Tensor | None) -> torch.Tensor | None:
    """For a state with no entries (an empty batch), the regularizer's value: 0, as the sum over no entries of
    the saved states, so that it keeps their graph (zero gradients, as a solve without a regularizer gives);
    None otherwise."""
    return ys.sum() if ys is not None and ys.numel() == 0 else None


def _require_differentiable(solution: Solution, name: str) -> None:
    """Refuse per-step estimates that a loss could not differentiate. Under ``torch.no_grad()`` (e.g. a
    validation pass in training mode) nothing is differentiated, so the value of any solve that recorded
    its steps' estimates is returned as it is."""
    if solution.differentiable_estimates or (not torch.is_grad_enabled() and solution.step_ts.numel() > 0):
        return
    raise ValueError(
        f"the {name} regularizer sums the error/stiffness estimates of every step, which are only "
        "differentiable when backpropagating through the solver (backend='backprop'); with a continuous "
        "adjoint the steps are not part of the graph: use LocalErrorRegularizer (local-unbiased) instead"
    )


class ErrorEstimateRegularizer(Regularizer):
    """Global error-estimate regularizer ``R_E`` (ERNODE).

    Args:
        reduction: ``"sum"`` — ``Σ E_j |h_j|`` (the paper's formula); ``"mean"`` — the mean of ``E_j |h_j|``
            (RegNeuralDE.jl's choice); ``"squared"`` — ``Σ E_j²``.

    An empty state (a batch of no samples) gives 0 (with a graph).

    Raises:
        ValueError: unknown reduction; at call time with grad enabled, a solve without differentiable
            estimates (a continuous adjoint), or a solve that recorded no error estimates (a fixed-step
            method without one, e.g. ``"rk4"`` with ``dt``).
    """

    def __init__(self, reduction: str = "sum"):
        if reduction not in ("sum", "mean", "squared"):
            raise ValueError(f"`reduction` must be 'sum', 'mean' or 'squared', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, model, solution, ys, index, sample):
        empty = _empty_value(solution.ys)
        if empty is not None:
            return empty
        _require_differentiable(solution, "global error")
        E = solution.error_estimates
        if E.shape[0] != solution.step_sizes.shape[0]:
            raise ValueError(
                f"the solve recorded {E.shape[0]} error estimates for its {solution.step_sizes.shape[0]} "
                "steps: its method has no embedded error estimate (e.g. 'rk4', 'midpoint' or 'euler' with "
                "fixed steps `dt`); solve with a method that has one ('tsit5', 'dp5' or 'bs3', also with "
                "fixed steps)"
            )
        if self.reduction == "squared":
            return E.pow(2).sum()
        weighted = E * solution.step_sizes.abs().to(E.dtype)
        return weighted.sum() if self.reduction == "sum" else weighted.mean()


class StiffnessRegularizer(Regularizer):
    """Global stiffness regularizer ``R_S`` (SRNODE).

    Args:
        reduction: ``"sum"`` (``Σ_j S_j``) or ``"max"`` (``max_j S_j``, the paper's experiments).

    An empty state (a batch of no samples) gives 0 (with a graph).

    Raises:
        ValueError: unknown reduction; at call time, a solve without differentiable estimates (as
            :class:`ErrorEstimateRegularizer`) or without stiffness estimates.
    """

    def __init__(self, reduction: str = "sum"):
        if reduction not in ("sum", "max"):
            raise ValueError(f"`reduction` must be 'sum' or 'max', got {reduction!r}")
        self.reduction = reduction

    def __call__(self, model, solution, ys, index, sample):
        empty = _empty_value(solution.ys)
        if empty is not None:
            return empty
        _require_differentiable(solution, "stiffness")
        S = solution.stiffness_estimates
        if S.numel() == 0:
            raise ValueError("the solve recorded no stiffness estimates; use method 'tsit5', 'dp5' or 'bs3'")
        return S.sum() if self.reduction == "sum" else S.max()


def _takes_exact(local_error) -> bool:
    """Whether a model's ``local_error`` accepts ``exact`` (NeuralODE's does, NeuralSDE's does not)."""
    try:
        parameters = inspect.signature(local_error).parameters.values()
    except (TypeError, ValueError):  # no signature to inspect: trust the model
        return True
    return any(p.name == "exact" or p.kind == p.VAR_KEYWORD for p in parameters)


class LocalErrorRegularizer(Regularizer):
    """Local regularization: ``E · h`` of one differentiable step at a sampled time.

    Args:
        sampling: ``"unbiased"`` — ``t_r ~ U[t0, t1)``, the state there saved by the main solve;
            ``"biased"`` — ``t_r`` uniform over the accepted step starts (the main solve saves every step).
        generator: a ``torch.Generator`` for the sampling (default: the global RNG).
        exact: differentiate the step's value itself, its first stage included, in float64 (neural ODE
            models only; see :meth:`NeuralODE.local_error`). Default False: the paper's gradient, with no
            gradient through the first stage.

    No gradient flows through the state at ``t_r`` or the step size, nor (unless ``exact``) through the
    step's first stage (see :meth:`NeuralODE.local_error`). The step is of the model's ``method`` on every
    backend. An empty state (a batch of no samples) gives 0 (with a graph).

    Raises:
        ValueError: unknown sampling; at call time, ``exact=True`` with a model whose ``local_error`` has no
            exact form (:class:`~sciml.neural_de.sde.NeuralSDE`), or biased sampling of a solve that reports
            no steps.
    """

    def __init__(
        self, sampling: str = "unbiased", generator: torch.Generator | None = None, exact: bool = False
    ):
        if sampling not in ("unbiased", "biased"):
            raise ValueError(f"`sampling` must be 'unbiased' or 'biased', got {sampling!r}")
        self.sampling, self.generator, self.exact = sampling, generator, bool(exact)
        self.needs_steps = sampling == "biased"

    def save_time(self, t_span):
        if self.sampling != "unbiased":
            return None
        u = torch.rand((), generator=self.generator).item()
        return t_span[0] + u * (t_span[1] - t_span[0])

    def __call__(self, model, solution, ys, index, sample):
        if self.exact and not _takes_exact(model.local_error):
            raise ValueError(
                f"LocalErrorRegularizer(exact=True) differentiates a neural ODE's local step with its first "
                f"stage, and {type(model).__name__}.local_error has no such form (a neural SDE's step is "
                "another solver's): use LocalErrorRegularizer(exact=False) with this model"
            )
        empty = _empty_value(ys)
        if empty is not None:
            return empty
        if self.sampling == "unbiased":
            t_r = sample
        else:
            if solution.step_ts.numel() == 0:
                raise ValueError(
                    "biased local sampling draws from the solver's accepted steps, which this backend does "
                    "not report; use sampling='unbiased'"
                )
            j = int(torch.randint(solution.step_ts.numel(), (), generator=self.generator))
            t_r = float(solution.step_ts[j])
        if self.exact:
            return model.local_error(t_r, ys[index[t_r]], exact=True)
        return model.local_error(t_r, ys[index[t_r]])


class Steer(Regularizer):
    """STEER baseline: the end time of each training solve is drawn from ``U(T − b, T + b)``.

    Args:
        b: half-width of the interval (must be below ``T − t0``).
    """

    def __init__(self, b: float = 0.5, generator: torch.Generator | None = None):
        if not b > 0:
            raise ValueError(f"`b` must be positive, got {b}")
        self.b, self.generator = b, generator

    def end_time(self, t_span):
        t0, t1 = t_span
        if self.b >= t1 - t0:
            raise ValueError(f"STEER's b={self.b} must be smaller than the interval length {t1 - t0}")
        u = torch.rand((), generator=self.generator).item()
        return t1 + (2 * u - 1) * self.b


class AugmentedField(nn.Module):
    """A field integrated together with ``m`` extra scalars per sample (states ``(B, D + m)``).

    ``y0`` of shape ``(B, ...)`` is a batch of ``B`` samples; a 1-d ``y0`` is one sample (``B = 1``), and the
    field then sees states of ``y0``'s shape.
    """

    n_extra = 0

    def __init__(self, field: nn.Module):
        super().__init__()
        self.field = field
        self.shape: tuple[int, ...] = ()  # the shape of the states the field sees

    def initial_state(self, y0: torch.Tensor) -> torch.Tensor:
        batch = y0 if y0.dim() >= 2 else y0.reshape(1, -1)
        self.shape = tuple(y0.shape)
        return torch.cat([batch.flatten(1), y0.new_zeros(batch.shape[0], self.n_extra)], dim=1)

    def split(self, ys: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Saved states ``(m, B, D + n_extra)`` -> states ``(m, *y0.shape)``, extras ``(m, B, n_extra)``."""
        return ys[..., : -self.n_extra].reshape(ys.shape[0], *self.shape), ys[..., -self.n_extra :]

    def value(self, extra: torch.Tensor) -> torch.Tensor:
        """The regularizer from the extras at the final time ``(B, n_extra)``: their batch mean, summed (0,
        with a graph, for a batch of no samples)."""
        return extra.sum() if extra.shape[0] == 0 else extra.mean(0).sum()

    def _state(self, s: torch.Tensor) -> torch.Tensor:
        return s[:, : -self.n_extra].reshape(self.shape)

    def _rows(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """``x`` (a field-shaped tensor) as one row per sample of the augmented state ``s`` (also of none)."""
        return x.reshape(s.shape[0], s.shape[1] - self.n_extra)


class _RNODEField(AugmentedField):
    n_extra = 2

    def __init__(self, field: nn.Module, kinetic: float, jacobian: float):
        super().__init__(field)
        self.kinetic, self.jacobian = kinetic, jacobian
        self.noise: torch.Tensor | None = None

    def initial_state(self, y0):
        self.noise = torch.randn_like(y0)  # one Hutchinson probe per solve, as in Finlay et al.
        return super().initial_state(y0)

    def forward(self, t, s):
        y = self._state(s)
        with torch.enable_grad():
            if not y.requires_grad:
                y = y.detach().requires_grad_(True)
            dy = self.field(t, y)
            (vjp,) = torch.autograd.grad(dy, y, self.noise, create_graph=True)
        kinetic = self.kinetic * self._rows(dy, s).pow(2).sum(1, keepdim=True)
        frobenius = self.jacobian * self._rows(vjp, s).pow(2).sum(1, keepdim=True)
        return torch.cat([self._rows(dy, s), kinetic, frobenius], dim=1)


class RNODE(Regularizer):
    """RNODE baseline: ``λ_K ∫‖f‖² dt + λ_J ∫‖εᵀ ∂f/∂y‖² dt`` (Hutchinson, one probe per solve), integrated
    as two extra states (Finlay, Jacobsen, Nurbekyan & Oberman, *How to train your neural ODE*, ICML 2020).

    Args:
        kinetic, jacobian: the weights λ_K and λ_J inside the integral.
    """

    def __init__(self, kinetic: float = 1.0, jacobian: float = 1.0):
        self.kinetic, self.jacobian = kinetic, jacobian

    def augment(self, field):
        return _RNODEField(field, self.kinetic, self.jacobian)


class _TaylorField(AugmentedField):
    n_extra = 1

    def __init__(self, field: nn.Module, order: int):
        super().__init__(field)
        self.order = order

    def forward(self, t, s):
        from torch.func import jvp

        y = self._state(s)
        field = self.field

        def derivative(k):
            """The k-th total time derivative of y along the flow, as a function of (t, y)."""
            if k == 1:
                return field

            lower = derivative(k - 1)

            def d(tt, yy):
                return jvp(lower, (tt, yy), (torch.ones_like(tt), field(tt, yy)))[1]

            return d

        dy = field(t, y)
        high = derivative(self.order)(t, y)
        return torch.cat([self._rows(dy, s), self._rows(high, s).pow(2).sum(1, keepdim=True)], dim=1)


class TayNODE(Regularizer):
    """TayNODE baseline: ``∫ ‖d^K y/dt^K‖² dt`` by nested forward-mode AD (``torch.func.jvp``), integrated as
    an extra state (Kelly, Bettencourt, Johnson & Duvenaud, *Learning differential equations that are easy
    to solve*, NeurIPS 2020, which uses Taylor-mode AD in JAX; nested jvp costs more: that is the point of
    the comparison).

    Args:
        order: K = 2 or 3.
    """

    def __init__(self, order: int = 2):
        if order not in (2, 3):
            raise ValueError(f"`order` must be 2 or 3, got {order}")
        self.order = order

    def augment(self, field):
        return _TaylorField(field, self.order)


def _weight(name: str, value: float, positive: bool = False) -> float:
    """A schedule's weight as a float: finite and >= 0 (> 0 if ``positive``); a clear error otherwise."""
    if isinstance(value, (bool, str, bytes)):
        raise TypeError(f"`{name}` must be a number (a regularization weight), got {value!r}")
    try:
        weight = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a number (a regularization weight), got {value!r}") from None
    if not math.isfinite(weight) or weight < 0 or (positive and weight == 0):
        bound = "> 0 (the decay is exponential)" if positive else ">= 0"
        raise ValueError(f"`{name}` must be a finite weight {bound}, got {value}; e.g. {name}=1e-3")
    return weight


def _whole(name: str, value: int, minimum: int) -> int:
    """A count of epochs as an int: a whole number >= ``minimum``; a ValueError naming ``name`` otherwise."""
    valid = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not (valid and int(value) == value and value >= minimum):
        what = "a positive integer" if minimum == 1 else f"a whole number >= {minimum}"
        raise ValueError(f"`{name}` must be {what} (a number of epochs), got {value!r}")
    return int(value)


class ConstantSchedule:
    """``weight(epoch) = value``.

    Raises:
        ValueError: ``value`` negative or not finite.
        TypeError: ``value`` not a number.
    """

    def __init__(self, value: float):
        self.value = _weight("value", value)

    def __call__(self, epoch: int) -> float:
        return self.value


class ExponentialSchedule:
    """``weight(epoch)`` decays exponentially from ``start`` to ``end`` over ``epochs`` epochs, then stays.

    Pal et al. anneal 100 → 10 over 75 epochs (MNIST) and 1000 → 100 over 300 (Physionet).

    Raises:
        ValueError: ``start`` or ``end`` not a finite positive weight, ``epochs`` not a positive integer.
        TypeError: ``start`` or ``end`` not a number.
    """

    def __init__(self, start: float, end: float, epochs: int):
        self.start, self.end = _weight("start", start, positive=True), _weight("end", end, positive=True)
        self.epochs = _whole("epochs", epochs, 1)

    def __call__(self, epoch: int) -> float:
        fraction = min(max(epoch, 0), self.epochs) / self.epochs
        return self.start * math.exp(fraction * math.log(self.end / self.start))


class DelayedSchedule:
    """``weight(epoch) = 0`` for the first ``delay`` epochs, then ``schedule(epoch - delay)``.

    The model first fits the data unregularized; the regularizer then shortens the solves of a model that
    already resolves every time scale, instead of keeping it from learning the fast ones.

    Args:
        schedule: the weight schedule once it starts (its epoch 0 is epoch ``delay``).
        delay: epochs without regularization (>= 0).

    Raises:
        ValueError: a negative, fractional or non-finite ``delay``.
        TypeError: a ``schedule`` that is not callable as ``schedule(epoch)``.
    """

    def __init__(self, schedule: ConstantSchedule | ExponentialSchedule, delay: int):
        if not callable(schedule):
            raise TypeError(
                f"`schedule` must be a schedule called as schedule(epoch), e.g. ConstantSchedule(1e-3), got "
                f"{schedule!r}"
            )
        self.schedule, self.delay = schedule, _whole("delay", delay, 0)

    def __call__(self, epoch: int) -> float:
        return 0.0 if epoch < self.delay else self.schedule(epoch - self.delay)

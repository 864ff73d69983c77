"""``NeuralODE``: a learned vector field solved by our adaptive solvers, usable in any training loop.

The forward pass returns the states at the requested times, the solver's
:class:`~sciml.solvers.solution.Solution`
(NFE, per-step error and stiffness estimates) and, when a regularizer is given, its value — the pieces the
regularizers of Pal et al. (ICML 2021, ICML 2023) need.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from sciml.neural_de.regularizers import Regularizer, check_regularizer
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import error_ratio, get_method, initial_step_size, solve
from sciml.solvers.ode.esdirk import ESDIRK
from sciml.solvers.ode.jacobian import graph_leaves
from sciml.solvers.ode.solve import (
    _check_first_evaluation,
    _resolution_note,
    check_tolerances,
    snap_to_span,
)
from sciml.solvers.solution import Solution, SolveError, SolverStats, Status

__all__ = ["NeuralODE", "NeuralODEResult", "Autonomous", "BACKENDS", "TORCHDIFFEQ_METHODS"]

#: how gradients are computed: backprop through our solver, our continuous adjoint, or torchdiffeq's adjoint
BACKENDS = ("backprop", "continuous", "torchdiffeq")
#: ``method`` -> the torchdiffeq method ``backend="torchdiffeq"`` runs: its adaptive explicit ones, under
#: their names or ours; torchdiffeq has no Tsit5, so the default "tsit5" runs its dopri5 (also a 5(4) pair).
#: Every key is also a method of this package (``"dopri8"`` its DOP853, not torchdiffeq's 8(7) pair): the
#: local regularizer's step on that backend
TORCHDIFFEQ_METHODS = {
    "tsit5": "dopri5", "dp5": "dopri5", "dopri5": "dopri5", "bs3": "bosh3", "bosh3": "bosh3",
    "dopri8": "dopri8", "fehlberg2": "fehlberg2", "adaptive_heun": "adaptive_heun",
}  # fmt: skip


def _time_dtype(value: Any) -> torch.dtype | None:
    """The floating dtype whose rounding a save time (or an array of them) carries: a tensor's, a numpy float
    array's or scalar's; None for Python numbers (float64)."""
    if torch.is_tensor(value):
        return value.dtype
    dtype = getattr(value, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return {2: torch.float16, 4: torch.float32}.get(dtype.itemsize)  # float64 and wider: float64's
    return None


def host_times(saveat: Sequence[float] | torch.Tensor, t_span: tuple[float, float]) -> list[float]:
    """``saveat`` (one-dimensional) as Python floats, those within a few ulps of ``t0``/``t1`` snapped to them
    as :func:`~sciml.solvers.ode.solve` snaps them (``float32(0.3) != 0.3``; ``0.1 + … + 0.1`` ten times is
    ``0.9999999999999999``), each within the rounding of its own dtype: a tensor's or numpy array's, or, in a
    list, each entry's (numpy scalars, 0-d tensors; float64 for Python numbers).

    Raises:
        ValueError: ``saveat`` is not one-dimensional, or holds NaN or inf.
    """
    tensor = torch.is_tensor(saveat)
    array = saveat.detach().cpu().double() if tensor else np.asarray(saveat, dtype=np.float64)
    if array.ndim > 1:
        raise ValueError(
            f"`saveat` must be one-dimensional (save times shared by every sample of the batch), got shape "
            f"{tuple(array.shape)}; for per-sample times, solve at their sorted union and pick each sample's"
        )
    values = [float(t) for t in array.reshape(-1).tolist()]
    bad = [i for i, t in enumerate(values) if not math.isfinite(t)]
    if bad:
        raise ValueError(
            f"`saveat` contains NaN or inf (non-finite) at position(s) {bad[:8]}: every save time must be a "
            f"finite time within t_span {tuple(t_span)}"
        )
    if not (isinstance(saveat, (list, tuple)) and len(saveat) == len(values)):
        return snap_to_span(values, *t_span, _time_dtype(saveat))
    dtypes = [_time_dtype(t) for t in saveat]  # a list: each entry its own rounding
    return [snap_to_span([t], *t_span, dtype)[0] for t, dtype in zip(values, dtypes)]


class NeuralODEResult(NamedTuple):
    """Output of :meth:`NeuralODE.forward`.

    Attributes:
        ys: states at the save times, ``(len(saveat), *y0.shape)`` (``(1, *y0.shape)`` for the final state).
        solution: the solver's :class:`~sciml.solvers.solution.Solution` (for NFE and global regularizers).
        regularization: the regularizer's scalar, or None.
        work: the evaluations the solve cost. :class:`NeuralODE`: ``NFE + n·NJEV`` (``n`` the size of one
            Jacobian block: the last dimension of the state with ``jac="batched"``, the whole state otherwise;
            the NFE for explicit methods). :class:`~sciml.neural_de.sde.NeuralSDE`: its ``stats.nfe``, every
            evaluation of the drift or the diffusion (``nfe_drift + nfe_diffusion``; SDE methods use no
            Jacobian). Neither counts a local regularizer's extra step.
    """

    ys: torch.Tensor
    solution: Solution
    regularization: torch.Tensor | None
    work: int | None = None


class _Counter(nn.Module):
    """The field as torchdiffeq's solver sees it. Counts its evaluations (torchdiffeq reports none): ``n``
    until :meth:`report_to`, then into the stats' ``nfe_adjoint`` (torchdiffeq's backward solve runs after
    the forward returns). With ``problem``, checks the first evaluation as our solver does; with
    :meth:`limit`, counts the steps torchdiffeq's forward solve tries (its step callback) and stops it past
    ``max_steps`` with a :class:`~sciml.solvers.solution.SolveError`."""

    def __init__(self, field: nn.Module, problem: ODEProblem | None = None):
        super().__init__()
        self.field, self.n, self.stats, self.problem = field, 0, None, problem
        self.max_steps, self.steps, self.t, self.what = None, 0, 0.0, ""

    def report_to(self, stats: SolverStats) -> None:
        self.stats = stats

    def limit(self, max_steps: int, what: str) -> None:
        """Refuse more than ``max_steps`` tries in the forward solve; ``what`` ends the message."""
        self.max_steps, self.what = max_steps, what

    def forward(self, t, y):
        if self.stats is None:
            self.n += 1
        else:
            self.stats.nfe_adjoint += 1
        out = self.field(t, y)
        if self.problem is not None:
            problem, self.problem = self.problem, None
            _check_first_evaluation(problem, out)
        return out

    def callback_step(self, t0, y0, dt):
        self.steps += 1
        self.t = float(t0)
        if self.max_steps is not None and self.steps > self.max_steps:
            raise self.failure(Status.MAX_STEPS)

    def failure(self, status: Status, detail: str = "") -> SolveError:
        """The error of a torchdiffeq forward solve that stopped."""
        t = self.t
        if status is Status.MAX_STEPS:
            message = f"reached max_steps={self.max_steps} at t={t:.6g} {self.what}"
        elif status is Status.NON_FINITE:
            message = (
                f"the solution became non-finite (NaN/inf) near t={t:.6g} ({detail}); check the vector "
                "field, or the problem may blow up in finite time"
            )
        else:
            message = (
                f"step size underflow near t={t:.6g} ({detail}): the problem may be stiff or singular there; "
                "loosen rtol/atol, or use backend='backprop' with method='auto' (switches to the implicit "
                "rodas5p where stiff)"
            )
        stats = SolverStats(nfe=self.n, n_steps=self.steps)
        empty = torch.zeros(0, dtype=torch.float64)
        partial = Solution(empty, empty, status, message, stats, empty, empty, empty, empty, False)
        return SolveError(message, partial)


class Autonomous(nn.Module):
    """A network of the state alone as a vector field: ``Autonomous(net)(t, y) = net(y)``.

    ``NeuralODE`` calls its field as ``field(t, y)``; wrap an ``nn.Sequential`` (or any module whose
    ``forward`` takes only the state) in this.

    Args:
        net: a module mapping a state tensor to its time derivative (same shape).
    """

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(y)


def _parameters(field) -> list[torch.Tensor]:
    """The parameters of a field (none for a plain function, which ``backend="backprop"`` accepts)."""
    return list(field.parameters()) if isinstance(field, nn.Module) else []


class _CapturedTensorCheck(nn.Module):
    """The field, with its first evaluation checked (autograd on, also inside torchdiffeq's no-grad forward
    solve): a field that depends on tensors requiring grad besides its parameters and the state — an
    encoder's output stored on the module, a tensor it closes over — is refused, since the adjoint backends
    differentiate only those two and the other gradients would be silently missing. It costs no extra
    evaluation (the field's call count and every value are unchanged)."""

    def __init__(self, field: nn.Module, backend: str):
        super().__init__()
        self.field, self.backend, self.pending = field, backend, True

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not self.pending:
            return self.field(t, y)
        self.pending = False
        grad_enabled = torch.is_grad_enabled()
        with torch.enable_grad():
            out = self.field(t, y)
        own = {id(p) for p in _parameters(self.field)}
        if y.requires_grad and y.grad_fn is None:
            own.add(id(y))
        # the state's own history (e.g. an encoder that produced y0) is the adjoint's business: stop there
        foreign = (
            [v for v in graph_leaves(out, y.grad_fn) if id(v) not in own] if torch.is_tensor(out) else []
        )
        if foreign:
            shapes = ", ".join(str(tuple(x.shape)) for x in foreign[:4]) + (", ..." if foreign[4:] else "")
            adjoint = "our continuous adjoint" if self.backend == "continuous" else "torchdiffeq's adjoint"
            raise ValueError(
                f"NeuralODE(backend={self.backend!r}): the field depends on {len(foreign)} tensor(s) that "
                f"require grad but are neither its parameters nor the state (leaf shapes {shapes}), e.g. an "
                f"encoder's output stored on the module or a tensor it closes over; {adjoint} differentiates "
                "only the field's parameters and the state, so their gradients would be silently missing. "
                "Use backend='backprop', or make such a tensor an input of the state (concatenate it to y0, "
                "with zero time derivative) or an nn.Parameter of the field; detach it if it is not trained"
            )
        return out if grad_enabled else out.detach()


class _SaveTimeGradient(torch.autograd.Function):
    """The identity on the saved states ``ys``, giving ``saveat`` its gradient: ``d ys[i] / d saveat[i]`` is
    ``rates[i]``, the field at that time and state (first order: the rates carry no graph)."""

    @staticmethod
    def forward(ctx, ys, saveat, rates):
        ctx.save_for_backward(rates)
        ctx.saveat_shape, ctx.saveat_dtype = saveat.shape, saveat.dtype
        return ys.clone()

    @staticmethod
    def backward(ctx, grad):
        (rates,) = ctx.saved_tensors
        grad_saveat = (grad * rates).reshape(grad.shape[0], -1).sum(1)
        return grad, grad_saveat.reshape(ctx.saveat_shape).to(ctx.saveat_dtype), None


def _check_field(field: nn.Module, backend: str = "backprop") -> None:
    if not callable(field):
        raise TypeError(f"`field` must be an nn.Module called as field(t, y), got {type(field).__name__}")
    if backend != "backprop" and not isinstance(field, nn.Module):
        # an adjoint differentiates the parameters of the field, and a plain function has none it can see
        raise TypeError(
            f"backend={backend!r} differentiates the field's parameters, and `field` is a plain "
            f"{type(field).__name__}, whose tensors the adjoint cannot see (their gradients would be lost): "
            "wrap it in an nn.Module that holds them as nn.Parameter and computes it in forward(t, y), or "
            "use backend='backprop', which differentiates whatever the function uses"
        )
    try:
        params = list(inspect.signature(getattr(field, "forward", field)).parameters.values())
    except (TypeError, ValueError):  # no signature to inspect: trust the caller
        return
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not any(p.kind == p.VAR_POSITIONAL for p in params) and len(positional) < 2:
        raise TypeError(
            f"`field` is called as field(t, y), but {type(field).__name__} takes only "
            f"{len(positional)} argument(s); wrap a network of the state alone as "
            "NeuralODE(Autonomous(net)) (from sciml.neural_de import Autonomous)"
        )


def _check_span_grad(t_span: tuple[float, float], model: str) -> None:
    """Refuse a ``t_span`` entry that requires grad: the model keeps ``t_span`` as Python floats, so its
    gradient would be silently lost."""
    if any(torch.is_tensor(t) and t.requires_grad for t in t_span):
        route = (
            "to differentiate with respect to a time, pass it as a `saveat` tensor that requires grad, e.g. "
            "node(y0, saveat=T.reshape(1)) with a t_span that covers it (NeuralODE gives save times their "
            "gradient; the solve ends at the last save time)"
            if model == "NeuralODE"
            else "a neural SDE's sample path is not differentiable in time"
        )
        raise ValueError(
            f"`t_span` holds a tensor that requires grad, but {model} keeps t_span as Python floats, so no "
            f"gradient would reach it: {route}; pass plain numbers (e.g. float(T)) as t_span"
        )


def _check_torchdiffeq_regularizer(reg: Regularizer) -> None:
    """Refuse a regularizer that reads the solver's steps: torchdiffeq's solver reports none."""
    from sciml.neural_de.regularizers import ErrorEstimateRegularizer, StiffnessRegularizer

    if isinstance(reg, (ErrorEstimateRegularizer, StiffnessRegularizer)) or reg.needs_steps:
        what = "sums the error/stiffness estimates of every step" if not reg.needs_steps else "samples a step"
        raise ValueError(
            f"NeuralODE(backend='torchdiffeq'): {type(reg).__name__} {what}, and torchdiffeq's solver "
            "reports no steps (neither differentiable estimates nor, under torch.no_grad(), their values): "
            "use LocalErrorRegularizer('unbiased') with this backend, or backend='backprop'"
        )


def _nothing_solved(reg: Regularizer, ys: torch.Tensor) -> torch.Tensor | None:
    """A regularizer's value on a solve with nothing to integrate (every save time ``t0``): 0, in the graph of
    the saved states (zero gradients, not missing ones); None for one without a value (STEER)."""
    return None if type(reg).__call__ is Regularizer.__call__ else ys.sum() * 0


def _empty_state_solution(
    field, y0: torch.Tensor, t0: float, times: list[float], stats: SolverStats | None = None
) -> Solution:
    """The exact solution when there is nothing to integrate, a state with no entries (torchdiffeq's solver
    cannot take it) or no time (every save time is ``t0``): ``y0`` at every save time, no steps, one
    evaluation of the field (``+ 0·field(t0, y0)`` keeps its tensors in the graph:
    zero gradients, not missing ones, as :func:`~sciml.solvers.ode.solve` does). ``stats``: default one
    evaluation in ``SolverStats``."""
    y = y0 + 0 * field(torch.full((), t0, dtype=y0.dtype, device=y0.device), y0)
    empty = y0.new_zeros((0,))
    ts = torch.tensor(times, dtype=torch.float64, device=y0.device)
    ys = torch.stack([y] * len(times))
    stats = SolverStats(nfe=1) if stats is None else stats
    return Solution(ts, ys, Status.SUCCESS, "", stats, empty, empty, empty, empty, False)


class NeuralODE(nn.Module):
    """``dy/dt = field(t, y)`` on ``t_span``, solved adaptively.

    Args:
        field: an ``nn.Module`` called as ``field(t, y)`` (t a 0-d tensor); wrap a network of the state alone
            in :class:`Autonomous`. ``backend="backprop"`` also takes a plain function. With the adjoint
            backends the field may depend on tensors that require grad only through its parameters and the
            state: one it stores or closes over (e.g. an encoder's output) would get no gradient, so a
            forward pass with grad enabled refuses it (use ``backend="backprop"``, or make it part of the
            state).
        t_span: integration interval (increasing): the solve starts at ``t_span[0]`` and ends at the last
            save time (``t_span[1]`` without ``saveat``), on every backend.
        method: ``"tsit5"`` (default), ``"dp5"`` or ``"bs3"``; for stiff fields the implicit ``"rodas5p"``,
            ``"rosenbrock23"`` or ``"auto"``. The torchdiffeq backend runs torchdiffeq's method of that
            name (:data:`TORCHDIFFEQ_METHODS`: ``"tsit5"`` runs its dopri5, ``"bs3"`` its bosh3), no other;
            the local regularizer's step (:meth:`local_error`) is this package's ``method`` on every backend.
        rtol, atol: solver tolerances.
        backend: ``"backprop"`` (differentiate through our solver: global regularizers available),
            ``"continuous"`` (our continuous adjoint) or ``"torchdiffeq"`` (``torchdiffeq.odeint_adjoint`` as
            the black-box main solver; NFE counted by wrapping the field).
        max_steps: step limit of each solve (steps tried; beyond it a
            :class:`~sciml.solvers.solution.SolveError`; with ``"torchdiffeq"``, of its forward solve: its
            backward solve keeps torchdiffeq's own limit).
        jac: Jacobian option of the implicit methods (see :func:`~sciml.solvers.ode.solve`): None
            (dense), ``"batched"`` (the rows of a ``(batch, d)`` state are independent samples), ``"fd"`` or
            a callable.
        local_dtype: the floating dtype :meth:`local_error` computes its step in (default None: the
            state's). Its step is accurate enough that in float32 the estimate is mostly round-off;
            ``torch.float64`` computes it with the parameters and the state cast (gradients reach the
            original parameters), at the cost of one float64 step.

    Raises:
        ValueError: unknown backend or method (with ``"torchdiffeq"``: one torchdiffeq cannot run),
            decreasing ``t_span`` or one holding a tensor that requires grad (a save time gets its gradient:
            see :meth:`forward`), ``max_steps`` not a positive integer, a ``local_dtype`` that is not a
            floating torch dtype.
        TypeError: ``field`` cannot be called as ``field(t, y)``, or is not an ``nn.Module`` with the
            ``"continuous"`` or ``"torchdiffeq"`` backend.
    """

    def __init__(
        self,
        field: nn.Module,
        t_span: tuple[float, float] = (0.0, 1.0),
        *,
        method: str = "tsit5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        backend: str = "backprop",
        max_steps: int = 10_000,
        jac: Any = None,
        local_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        if local_dtype is not None and not (
            isinstance(local_dtype, torch.dtype) and local_dtype.is_floating_point
        ):
            raise ValueError(
                f"`local_dtype` must be a floating torch dtype such as torch.float64, got {local_dtype!r}"
            )
        if backend not in BACKENDS:
            raise ValueError(f"`backend` must be one of {BACKENDS}, got {backend!r}")
        _check_field(field, backend)
        if backend == "torchdiffeq" and method not in TORCHDIFFEQ_METHODS:
            raise ValueError(
                f"backend='torchdiffeq' runs torchdiffeq's adaptive explicit methods: `method` must be one "
                f"of {sorted(TORCHDIFFEQ_METHODS)} ('tsit5', the default, runs its dopri5), got {method!r}; "
                "implicit methods (e.g. 'rodas5p') need backend='backprop' or 'continuous'"
            )
        if backend != "torchdiffeq":
            tableau = getattr(get_method(method), "tableau", None)
            if not getattr(tableau, "adaptive", True):
                raise ValueError(
                    f"`method` {method!r} has no error estimate, and NeuralODE solves adaptively (the "
                    "regularizers need the estimates): use 'tsit5', 'dp5' or 'bs3', or 'rodas5p' for stiff "
                    "fields"
                )
        _check_span_grad(t_span, "NeuralODE")
        if not t_span[1] > t_span[0]:
            raise ValueError(f"`t_span` must be increasing, got {t_span}")
        if isinstance(max_steps, bool) or not isinstance(max_steps, numbers.Integral) or max_steps < 1:
            raise ValueError(f"`max_steps` must be a positive integer, got {max_steps!r}")
        max_steps = int(max_steps)  # a numpy integer too, as odeint's max_num_steps takes
        self.field = field
        self.t_span = (float(t_span[0]), float(t_span[1]))
        self.method, self.rtol, self.atol, self.backend, self.max_steps = (
            method,
            rtol,
            atol,
            backend,
            max_steps,
        )
        self.jac = jac
        self.local_dtype = local_dtype

    def forward(
        self,
        y0: torch.Tensor,
        saveat: Sequence[float] | torch.Tensor | None = None,
        regularizer: Regularizer | None = None,
    ) -> NeuralODEResult:
        """Solve from ``y0``; return the states at ``saveat`` (default: the final time only).

        In training mode a regularizer's hooks decide extra save times (local unbiased sampling), whether
        every step is saved (local biased sampling), augmented states (RNODE, TayNODE) and the end time
        (STEER); in eval mode it is ignored, so predictions are plain solves.

        A ``saveat`` tensor that requires grad gets its gradient: ``d ys[i] / d saveat[i] = field(t_i,
        ys[i])`` (first order; one extra evaluation of the field per save time). The solve starts at
        ``t_span[0]`` and ends at the last save time (as torchdiffeq's does), on every backend: the
        regularizers see the dynamics up to there only, and a local regularizer samples its time in
        ``[t_span[0], last save time)``. With STEER's end time, ``t_span``'s axis is stretched to it and the
        solve ends at the stretched last save time. The torchdiffeq backend makes our solver's input checks
        (``y0``, ``rtol``/``atol``, the field's first evaluation) and step limit.

        Raises:
            ValueError: ``saveat`` outside ``t_span``, not one-dimensional or not finite; bad ``y0``,
                tolerances, or first evaluation of the field (every backend); with the ``"torchdiffeq"``
                backend, a regularizer that reads the solver's steps (global, or local biased sampling);
                with the ``"continuous"`` or ``"torchdiffeq"`` backend and grad enabled, a field that
                depends on tensors requiring grad other than its parameters and the state (checked on the
                solve's first evaluation of the field, whose autograd graph is walked to its leaves; no
                extra evaluation): their gradients would be silently missing.
            TypeError: ``regularizer`` neither None nor a :class:`~sciml.neural_de.regularizers.Regularizer`
                instance (e.g. the class itself).
            SolveError: the solve failed (``max_steps``, step-size underflow, non-finite values).
        """
        check_regularizer(regularizer)
        t0, t1 = self.t_span
        times = [t1] if saveat is None else host_times(saveat, self.t_span)
        if not all(t0 <= t <= t1 for t in times):  # every backend: torchdiffeq would integrate past t1
            raise ValueError(
                f"`saveat` must lie within t_span {self.t_span}, got [{min(times)}, {max(times)}]"
            )
        reg = regularizer if self.training else None  # regularizers shape training solves only
        if reg is not None and self.backend == "torchdiffeq":
            _check_torchdiffeq_regularizer(reg)
        end = reg.end_time(self.t_span) if reg is not None else t1
        if end != t1:  # STEER: stretch the time axis to the sampled end time
            times = [end if t == t1 else t0 + (t - t0) * (end - t0) / (t1 - t0) for t in times]  # exact end
        last = max(times)  # the solve ends at the last save time
        sample = reg.save_time((t0, last)) if reg is not None else None
        solve_times = sorted({*times, *(() if sample is None else (sample,))})
        field = self.field
        if self.backend != "backprop" and torch.is_grad_enabled():  # the adjoints see only the parameters
            field = _CapturedTensorCheck(field, self.backend)
        augmented = reg.augment(field) if reg is not None else None
        state = y0 if augmented is None else augmented.initial_state(y0)
        save_steps = reg is not None and reg.needs_steps
        solution = self._solve(augmented or field, state, (t0, last), solve_times, save_steps)
        ys_all, regularization = solution.ys, None
        if augmented is not None:
            ys_all, extra = augmented.split(ys_all)
            regularization = augmented.value(extra[-1])
        index = {t: i for i, t in enumerate(solution.ts.tolist())}
        ys = ys_all[[index[t] for t in times]]
        if reg is not None and augmented is None and last == t0:  # nothing solved: nothing to regularize
            regularization = _nothing_solved(reg, ys_all)
        elif reg is not None and augmented is None:
            regularization = reg(self, solution, ys_all, index, sample)
            if (
                regularization is not None
                and torch.is_grad_enabled()
                and not regularization.requires_grad
                and any(p.requires_grad for p in _parameters(self.field))
            ):
                exact = (
                    "; or keep 'radau5' with LocalErrorRegularizer(..., exact=True), whose step (the first "
                    "stage differentiated too) does give a gradient with radau5"
                    if self.method == "radau5" and getattr(reg, "exact", True) is False
                    else ""
                )
                raise ValueError(
                    f"{type(reg).__name__} gives no gradient with method {self.method!r} (its estimate is "
                    "not differentiable there), so it would not regularize: use an explicit method ('tsit5', "
                    f"'dp5', 'bs3') or, for stiff fields, 'rodas5p' or 'rosenbrock23'{exact}"
                )
        if torch.is_tensor(saveat) and saveat.requires_grad and torch.is_grad_enabled():
            # STEER's stretched time axis: a save time s is solved at t0 + (s - t0)·(end - t0)/(t1 - t0)
            ys = self._with_save_time_gradient(ys, saveat, times, (end - t0) / (t1 - t0))
        block = state.shape[-1] if self.jac == "batched" else state.numel()
        work = solution.stats.nfe + block * solution.stats.njev
        return NeuralODEResult(ys, solution, regularization, work)

    def _with_save_time_gradient(
        self, ys: torch.Tensor, saveat: torch.Tensor, times: list[float], scale: float
    ) -> torch.Tensor:
        """``ys`` with a gradient to ``saveat`` too: ``d ys[i] / d saveat[i] = scale · field(t_i, ys[i])``."""
        with torch.no_grad():
            rates = torch.stack([
                self.field(torch.full((), t, dtype=y.dtype, device=y.device), y)
                for t, y in zip(times, ys.detach())
            ])  # fmt: skip
        return _SaveTimeGradient.apply(ys, saveat, rates * scale)

    def _solve(self, field, y0, t_span, times, save_steps) -> Solution:
        t0, t1 = t_span
        if self.backend == "torchdiffeq" or t1 == t0:
            # the input checks of our solver, which makes them itself: y0, tolerances, the first evaluation
            problem = ODEProblem(field, y0, t_span if t1 != t0 else self.t_span)
            rtol, atol = check_tolerances(self.rtol, self.atol, y0)
            counter = _Counter(field, problem)
            if y0.numel() == 0 or t1 == t0:  # no entries (torchdiffeq fails on it: dt underflow) or no time
                return _empty_state_solution(counter, y0, t0, times)
            return self._torchdiffeq(counter, y0, t_span, times, _resolution_note(rtol, atol, y0))
        problem = ODEProblem(field, y0, t_span)
        adjoint = "continuous" if self.backend == "continuous" else "backprop"
        implicit = {} if self.jac is None else {"jac": self.jac}
        return solve(
            problem, self.method, rtol=self.rtol, atol=self.atol, saveat=times,
            save_steps=save_steps, adjoint=adjoint, max_steps=self.max_steps, **implicit,
        )  # fmt: skip

    def _torchdiffeq(self, counter: _Counter, y0, t_span, times, resolution: str) -> Solution:
        """``torchdiffeq.odeint_adjoint`` with ``max_steps`` the step limit of the forward solve (the backward
        one keeps torchdiffeq's own limit); its failures raised as
        :class:`~sciml.solvers.solution.SolveError`, as ours."""
        import torchdiffeq

        method = TORCHDIFFEQ_METHODS[self.method]
        advice = f": {resolution}." if resolution else ". Raise `max_steps` or loosen rtol/atol."
        counter.limit(self.max_steps, f"before t1={t_span[1]:.6g} (torchdiffeq's {method}){advice}")
        start = [] if times[0] == t_span[0] else [t_span[0]]  # torchdiffeq starts at its first time
        t = torch.tensor(start + list(times), dtype=y0.dtype, device=y0.device)
        # times a few ulps apart can round to one value in y0's dtype; torchdiffeq needs them strictly
        # increasing, so solve at the distinct ones and repeat the state
        t, repeat = torch.unique_consecutive(t, return_inverse=True)
        params = tuple(p for p in counter.field.parameters() if p.requires_grad)
        try:
            ys = torchdiffeq.odeint_adjoint(
                counter, y0, t, rtol=self.rtol, atol=self.atol, method=method, adjoint_params=params,
                # per output interval (torchdiffeq stores it as int32): the callback counts the whole solve;
                # the backward solve gets torchdiffeq's defaults, not this limit
                options={"max_num_steps": min(self.max_steps, 2**31 - 1)}, adjoint_options={},
            )[repeat[len(start) :]]  # fmt: skip
        except AssertionError as exc:  # torchdiffeq's checks: as the SolveError of our solver
            text = str(exc)
            kinds = (("max_num_steps", Status.MAX_STEPS), ("underflow", Status.STEP_SIZE_UNDERFLOW),
                     ("non-finite", Status.NON_FINITE))  # fmt: skip
            status = next((status for key, status in kinds if key in text), None)
            if status is None:
                raise
            raise counter.failure(status, f"torchdiffeq's {method}: {text.split(':')[0]}") from exc
        empty = y0.new_zeros((0,))
        ts = torch.tensor(times, dtype=torch.float64, device=y0.device)  # the exact host times
        stats = SolverStats(nfe=counter.n)
        counter.report_to(stats)  # nfe_adjoint fills in when the loss is backpropagated
        return Solution(ts, ys, Status.SUCCESS, "", stats, empty, empty, empty, empty, False)

    def local_error(self, t: float, y: torch.Tensor, exact: bool = False) -> torch.Tensor:
        """One differentiable step of ``method`` from ``(t, y)``: ``E · |h|``, ``h`` the solver's automatic
        initial step, clipped so that the step ends at ``t_span[1]`` at the latest (the solve itself ends at
        its last save time, so a step sampled just before it may reach a little past it).

        The step is the model's own ``method`` on every backend (``"tsit5"`` a Tsit5 step also where
        ``backend="torchdiffeq"`` solves with torchdiffeq's dopri5; torchdiffeq's names ``"dopri5"`` and
        ``"bosh3"`` are ``"dp5"`` and ``"bs3"``; ``"dopri8"`` is this package's DOP853). ``y`` and ``h``
        carry no gradient. As Pal, Edelman & Rackauckas (ICML 2023) specify the local regularizer, the first
        stage ``k1 = f(t, y)`` carries none either and the remaining stages do (through the field's
        parameters; the implicit stages of ``"kvaerno3"``/``"kvaerno5"`` by the implicit function theorem);
        it costs ``2 + stages − 1`` evaluations (initial-step selection included) and one step of memory.
        With ``local_dtype`` set, the step runs in that dtype (state, parameters and buffers cast; the value
        is returned in the state's dtype). An empty state, or ``t`` at the end of ``t_span`` (no step left),
        gives 0, with the field's tensors in the graph (zero gradients), as the solve of an empty state.

        Args:
            t, y: where the step starts (``t`` within ``t_span``).
            exact: give ``k1`` its gradient too, so that the gradient is the derivative of the returned value
                (``h`` held fixed). The estimate is small because its stages cancel, so holding ``k1`` fixed
                adds a first-order term to the paper's gradient that the value does not have. The exact
                step runs in float64 (overriding ``local_dtype``): in float32 the value is mostly round-off.
                One more evaluation enters the backward pass.

        Returns:
            The 0-d tensor ``E · |h|`` in the state's dtype.

        Raises:
            ValueError: ``t`` outside ``t_span``; a ``method`` this package has no stepper for (see
                :data:`TORCHDIFFEQ_METHODS`).
        """
        rk = self._local_method()
        t0, t1 = self.t_span
        if not min(t0, t1) <= t <= max(t0, t1):
            raise ValueError(
                f"`t` must lie within t_span {self.t_span} (the local step starts where the solve passes), "
                f"got {t}"
            )
        state_dtype = y.dtype
        step_dtype = torch.float64 if exact else self.local_dtype
        y = y.detach() if step_dtype is None else y.detach().to(step_dtype)
        shape, dtype, device = y.shape, y.dtype, y.device
        field = self.field
        if dtype != state_dtype and isinstance(field, nn.Module):
            cast = {
                name: (v.to(dtype) if v.is_floating_point() else v)
                for name, v in [*field.named_parameters(), *field.named_buffers()]
            }
            field = functools.partial(torch.func.functional_call, self.field, cast)

        def f(s: float | torch.Tensor, z: torch.Tensor) -> torch.Tensor:
            # a time tensor passes through: an implicit method's ∂f/∂t by forward-mode AD, not differences
            tt = s if torch.is_tensor(s) else torch.full((), s, dtype=dtype, device=device)
            return field((tt, z)) if field is not self.field else field(tt, z)

        f.tensor_time = True

        flat = y.reshape(-1)
        direction = 1.0 if t1 >= t0 else -1.0
        if y.numel() == 0 or t == t1:  # no entries, or no time left: no step, no error
            return (f(t, y).sum() * 0).to(state_dtype)
        with torch.set_grad_enabled(exact and torch.is_grad_enabled()):
            try:
                k1 = f(t, y).reshape(-1)
            except RuntimeError as exc:
                if dtype == state_dtype or isinstance(self.field, nn.Module):
                    raise
                why = "exact=True" if exact else "`local_dtype`"
                raise ValueError(
                    f"the local step runs in {dtype} ({why}), and this plain-function field could not be "
                    f"evaluated there ({exc}); its own tensors cannot be cast: make the field an nn.Module, "
                    f"or use {dtype} tensors in it"
                ) from exc
        with torch.no_grad():
            order = rk.tableau.error_order or rk.tableau.order
            k1_value = k1.detach()
            h = initial_step_size(
                f, t, flat, k1_value, direction, order, self.rtol, self.atol, shape=shape, span=abs(t1 - t)
            )
            h = direction * min(abs(h), abs(t1 - t))  # end at t1, as the solver's last step does
        if isinstance(rk, ESDIRK):
            rk.begin(self.rtol, self.atol)  # its Newton test in the model's tolerances, as in the main solve
        trained = any(p.requires_grad for p in _parameters(self.field))
        if isinstance(rk, ESDIRK) and trained and not k1.requires_grad and torch.is_grad_enabled():
            # the paper's k1 (no gradient) as a leaf that requires one: the implicit stages are then
            # differentiated by the implicit function theorem with k1 held fixed, without the extra evaluation
            # the Newton iteration would otherwise spend to find out that the field's parameters need it
            k1 = k1.detach().requires_grad_(True)
        step = rk.step(f, t, flat, h, k1, shape=shape, stiffness=False)
        return (error_ratio(step.y_error, flat, step.y1, self.rtol, self.atol) * abs(h)).to(state_dtype)

    def _local_method(self):
        """The stepper of the local step: ``method``'s on every backend (torchdiffeq's names mapped).

        Raises:
            ValueError: this package has no stepper of that name.
        """
        try:
            return get_method(self.method)
        except ValueError as exc:
            raise ValueError(
                f"the local regularizer steps with this package's {self.method!r}, which sciml.solvers.ode "
                f"does not have ({exc}); choose a `method` it has, e.g. one of {sorted(TORCHDIFFEQ_METHODS)}"
            ) from exc

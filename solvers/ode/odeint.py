"""``odeint``: torchdiffeq's call signature on top of :func:`sciml.solvers.ode.solve`.

A script using ``from torchdiffeq import odeint`` (or ``odeint_adjoint``) switches by changing that import
to ``from sciml.solvers.ode import odeint`` (or ``odeint_adjoint``). Method names follow torchdiffeq
(``"dopri5"``, ``"bosh3"``, ``"rk4"``, ``"midpoint"``, ``"euler"``) plus ``"tsit5"``; states may be tensors
or tuples of tensors. Options torchdiffeq has and we do not are an error, not a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.controllers import ConstantSteps, IController
from sciml.solvers.ode.solve import get_method, solve

__all__ = ["odeint", "odeint_adjoint"]

_OPTIONS = {"step_size", "first_step", "max_num_steps", "safety", "ifactor", "dfactor", "dt_min"}


class _TupleField(torch.nn.Module):
    """Runs a field on tuples of tensors as one flat state (an nn.Module so its parameters are visible)."""

    def __init__(self, func: Callable, shapes: Sequence[torch.Size]):
        super().__init__()
        self.func = func
        self.shapes = list(shapes)
        self.sizes = [max(1, int(torch.Size(s).numel())) for s in shapes]

    def split(self, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(p.view(s) for p, s in zip(torch.split(y, self.sizes), self.shapes))

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.cat([d.reshape(-1) for d in self.func(t, self.split(y))])


def odeint(
    func: Callable[[torch.Tensor, Any], Any],
    y0: torch.Tensor | tuple[torch.Tensor, ...],
    t: torch.Tensor,
    *,
    rtol: float = 1e-7,
    atol: float = 1e-9,
    method: str | None = None,
    options: dict[str, Any] | None = None,
    adjoint: bool = False,
    adjoint_params: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Solve ``dy/dt = func(t, y)`` and return ``y`` at the times ``t`` (``(len(t), *y0.shape)``).

    Args:
        func: the vector field (a function or ``nn.Module``), ``func(t, y)``.
        y0: initial state at ``t[0]`` (tensor or tuple of tensors).
        t: 1-D floating tensor of strictly increasing or decreasing times.

    Other args:
        rtol, atol: tolerances (torchdiffeq's defaults).
        method: default ``"dopri5"``; also ``"tsit5"``, ``"bosh3"``, ``"rk4"``, ``"midpoint"``, ``"euler"``.
        options: ``step_size`` (fixed steps), ``first_step``, ``max_num_steps``, ``safety``, ``ifactor``,
            ``dfactor``, ``dt_min``.
        adjoint: use the continuous adjoint (as ``torchdiffeq.odeint_adjoint``).
        adjoint_params: tensors to differentiate with the adjoint (default: ``func``'s parameters).

    Returns:
        The solution at ``t`` (a tuple of tensors if ``y0`` is a tuple).

    Raises:
        ValueError: unknown method or option, bad ``t``; ``SolveError`` if the solve fails.
    """
    options = dict(options or {})
    unknown = set(options) - _OPTIONS
    if unknown:
        raise ValueError(f"unsupported option(s) {sorted(unknown)}; supported: {sorted(_OPTIONS)}")
    rk = get_method(method or "dopri5")
    if not torch.is_tensor(t) or t.ndim != 1 or t.numel() < 2:
        raise ValueError("`t` must be a 1-D tensor of at least two times")
    is_tuple = isinstance(y0, (tuple, list))
    if is_tuple:
        field = _TupleField(func, [y.shape for y in y0])
        state = torch.cat([y.reshape(-1) for y in y0])
        if adjoint and adjoint_params is None and not isinstance(func, torch.nn.Module):
            raise ValueError("odeint_adjoint with a plain function needs `adjoint_params`")
        if adjoint_params is None and isinstance(func, torch.nn.Module):
            adjoint_params = tuple(func.parameters())
    else:
        field, state = func, y0
    controller = None
    if "step_size" in options:
        controller = ConstantSteps(dt=float(options["step_size"]))
    elif rk.tableau.adaptive:
        controller = IController(
            safety=options.get("safety", 0.9), factor_min=options.get("dfactor", 0.2),
            factor_max=options.get("ifactor", 10.0), dt_min=options.get("dt_min", 0.0),
        )  # fmt: skip
    else:
        raise ValueError(f"method {method!r} is fixed-step: pass options={{'step_size': ...}}")
    t_span = (float(t[0]), float(t[-1]))
    problem = ODEProblem(field, state, t_span)
    sol = solve(
        problem, rk.tableau, rtol=rtol, atol=atol, saveat=t, controller=controller,
        dt0=options.get("first_step"), max_steps=int(options.get("max_num_steps", 2**31 - 1)),
        adjoint="continuous" if adjoint else "backprop", adjoint_params=adjoint_params, stiffness=False,
    )  # fmt: skip
    if is_tuple:
        return tuple(torch.stack(parts) for parts in zip(*(field.split(y) for y in sol.ys)))
    return sol.ys


def odeint_adjoint(func, y0, t, **kwargs) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """:func:`odeint` with the continuous adjoint (torchdiffeq's ``odeint_adjoint``)."""
    return odeint(func, y0, t, adjoint=True, **kwargs)

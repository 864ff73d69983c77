"""Per-solve options of the explicit integration loop that torchdiffeq users rely on.

:class:`StepHooks` bundles them so that :func:`sciml.solvers.ode.solve._integrate` takes one optional
argument: user callbacks around every step (``callback_step``, ``callback_accept_step``,
``callback_reject_step``), a user norm for the scaled error, times steps must land on (``step_t``; a fixed
grid is the same thing), discontinuities (``jump_t``: land on them and re-evaluate ``f`` just after),
evaluation just inside each step's ends (``perturb``), a smallest step (``min_step``: steps that small are
accepted whatever their error) and, internally, odeint's event locator.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = ["StepHooks", "SideTime", "time_tensor"]


class SideTime(float):
    """A host time with a side: the field is evaluated at the next representable time in direction
    ``side`` (±1) of the time tensor's dtype, i.e. just inside a step that starts or ends there."""

    side: float

    def __new__(cls, value: float, side: float) -> SideTime:
        obj = super().__new__(cls, value)
        obj.side = side
        return obj


def time_tensor(t: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``t`` as a 0-d tensor; a :class:`SideTime` moves one ulp of ``dtype`` towards its side."""
    value = torch.scalar_tensor(float(t), dtype=dtype, device=device)
    side = getattr(t, "side", 0.0)
    if side:
        value = torch.nextafter(value, torch.scalar_tensor(side * float("inf"), dtype=dtype, device=device))
    return value


@dataclass
class StepHooks:
    """Optional behaviour of one integration (all default to off).

    Attributes:
        callback_step: ``(t, y, h)`` before every attempted step (tensors).
        callback_accept: ``(t, y, h)`` after a step is accepted.
        callback_reject: ``(t, y, h)`` after a step is rejected.
        norm: the error norm, applied to the scaled error ``ẽ / (atol + rtol max(|y0|, |y1|))`` of the state
            (flat; wrap it to see another structure); default the RMS norm.
        tstops: times every step must land on (sorted in the direction of integration).
        jumps: discontinuities of ``f``: steps land on them and ``f`` is re-evaluated just after.
        perturb: evaluate ``f`` one ulp inside the start and end of every step.
        min_step: steps are never smaller; a step this small is accepted whatever its error.
        event: internal to odeint's event handling: an :class:`~sciml.solvers.ode.events.EventLocator`
            that ends the integration where its event function changes sign, not a plain ``event(t, y)``
            function (``solve`` refuses one). User event functions go through
            :func:`~sciml.solvers.ode.odeint_event` or ``odeint(..., event_fn=...)``.
        time_dtype: dtype of the times handed to callbacks (default the state's).
    """

    callback_step: Callable | None = None
    callback_accept: Callable | None = None
    callback_reject: Callable | None = None
    norm: Callable[[torch.Tensor], torch.Tensor] | None = None
    tstops: Sequence[float] = ()
    jumps: Sequence[float] = ()
    perturb: bool = False
    min_step: float = 0.0
    event: Callable | None = None
    event_bracket: tuple | None = field(default=None, repr=False)

    def call(self, name: str, t: float, y: torch.Tensor, h: float) -> None:
        fn = getattr(self, name)
        if fn is not None:
            tt = torch.scalar_tensor(t, dtype=torch.float64, device=y.device)
            fn(tt, y, torch.scalar_tensor(h, dtype=torch.float64, device=y.device))

"""ODE problems: ``ODEProblem`` and a library of classic test problems.

Each library problem has a closed-form solution (``exact``) or is marked for a high-accuracy numerical
reference, which ``sciml.solvers.ode.reference_solution`` computes (scipy DOP853 at rtol 1e-13, or Radau for
stiff problems) and caches in HDF5.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["ODEProblem", "ODE_PROBLEMS", "get"]

#: exact(ts, y0, params) -> (len(ts), *y0.shape)
ExactSolution = Callable[[torch.Tensor, torch.Tensor, Any], torch.Tensor]


@dataclass(frozen=True, eq=False)
class ODEProblem:
    """``dy/dt = f(t, y)`` (or ``f(t, y, params)`` when ``params`` is given) on ``t_span`` from ``y0``.

    ``f`` follows torchdiffeq's convention: ``t`` is a 0-d tensor of ``y``'s dtype, ``y`` a tensor of any
    shape (leading dimensions may be a batch), and ``f`` returns a tensor of the same shape.

    Args:
        f: the vector field (a function or an ``nn.Module``).
        y0: the initial state (a floating tensor; lists are converted to float64).
        t_span: ``(t0, t1)``; ``t1 < t0`` integrates backwards.
        params: passed as the third argument of ``f`` when not None (e.g. Van der Pol's μ).
        exact: ``exact(ts, y0, params) -> (len(ts), *y0.shape)``, if a closed form exists.
        name: a label (used as the key of cached references: keep it unique per vector field).
        stiff: True if explicit methods are stability-limited on this problem.

    Raises:
        ValueError: ``y0`` not finite or not floating, ``t_span`` not two distinct finite times.
        TypeError: ``f`` not callable.
    """

    f: Callable[..., torch.Tensor]
    y0: torch.Tensor
    t_span: tuple[float, float]
    params: Any = None
    exact: ExactSolution | None = None
    name: str = "ode"
    stiff: bool = False

    def __post_init__(self) -> None:
        if not callable(self.f):
            raise TypeError(f"`f` must be callable as f(t, y), got {type(self.f).__name__}")
        y0 = self.y0 if torch.is_tensor(self.y0) else torch.as_tensor(self.y0, dtype=torch.float64)
        if not y0.is_floating_point():
            raise ValueError(f"`y0` must be a floating-point tensor, got dtype {y0.dtype}; e.g. y0.double()")
        if not bool(torch.isfinite(y0).all()):
            raise ValueError("`y0` must be finite: it contains NaN or inf")
        try:
            t0, t1 = (float(t) for t in self.t_span)
        except (TypeError, ValueError):
            raise ValueError(f"`t_span` must be a pair (t0, t1) of numbers, got {self.t_span!r}") from None
        if not (math.isfinite(t0) and math.isfinite(t1)) or t0 == t1:
            raise ValueError(f"`t_span` must hold two distinct finite times, got {(t0, t1)}")
        object.__setattr__(self, "y0", y0)
        object.__setattr__(self, "t_span", (t0, t1))

    def rhs(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Evaluate the vector field (with ``params`` if the problem has them)."""
        return self.f(t, y) if self.params is None else self.f(t, y, self.params)

    def solution(self, ts: torch.Tensor) -> torch.Tensor:
        """The exact solution at times ``ts``.

        Raises:
            ValueError: the problem has no closed form (use ``sciml.solvers.ode.reference_solution``).
        """
        if self.exact is None:
            raise ValueError(
                f"problem {self.name!r} has no exact solution; use sciml.solvers.ode.reference_solution"
            )
        return self.exact(ts, self.y0, self.params)

    def replace(self, **changes: Any) -> ODEProblem:
        """A copy with some fields changed (like Julia's ``remake``), e.g. ``p.replace(params=5.0)``."""
        return dataclasses.replace(self, **changes)


def _tensor(values, dtype) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def exponential(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """``y' = λ y`` componentwise, λ = (−0.5, −1, −2, 0.3): exact ``y0 e^{λt}``."""

    def f(t, y, lam):
        return lam.to(y) * y

    def exact(ts, y0, lam):
        return y0 * torch.exp(lam.to(y0) * ts.to(y0)[:, None])

    return ODEProblem(
        f, _tensor([1.0, 2.0, -1.0, 0.5], dtype), (0.0, 5.0), _tensor([-0.5, -1.0, -2.0, 0.3], dtype), exact,
        name="exponential",
    )  # fmt: skip


def forced_linear(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """Non-autonomous ``y' = −y + sin t``: exact ``(y0 + ½) e^{−t} + (sin t − cos t)/2``."""

    def f(t, y):
        return -y + torch.sin(t)

    def exact(ts, y0, params):
        ts = ts.to(y0)[:, None]
        return (y0 + 0.5) * torch.exp(-ts) + 0.5 * (torch.sin(ts) - torch.cos(ts))

    return ODEProblem(f, _tensor([1.0, -2.0], dtype), (0.0, 10.0), None, exact, name="forced_linear")


def harmonic_oscillator(dtype: torch.dtype = torch.float64, omega: float = 2.0) -> ODEProblem:
    """``x'' = −ω² x`` as ``(x, v)``: exact rotation. ``params`` is ω."""

    def f(t, y, w):
        return torch.stack([y[..., 1], -(w**2) * y[..., 0]], dim=-1)

    def exact(ts, y0, w):
        ts = ts.to(y0)
        c, s = torch.cos(w * ts), torch.sin(w * ts)
        return torch.stack([y0[0] * c + y0[1] / w * s, -y0[0] * w * s + y0[1] * c], dim=-1)

    return ODEProblem(f, _tensor([1.0, 0.0], dtype), (0.0, 10.0), omega, exact, name="harmonic_oscillator")


def lotka_volterra(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """Predator–prey ``x' = αx − βxy, y' = δxy − γy`` with (α, β, γ, δ) = (1.5, 1, 3, 1), y0 = (1, 1)."""

    def f(t, y, p):
        a, b, c, d = p
        x, z = y[..., 0], y[..., 1]
        return torch.stack([a * x - b * x * z, d * x * z - c * z], dim=-1)

    return ODEProblem(f, _tensor([1.0, 1.0], dtype), (0.0, 10.0), (1.5, 1.0, 3.0, 1.0), name="lotka_volterra")


def van_der_pol(dtype: torch.dtype = torch.float64, mu: float = 1.0) -> ODEProblem:
    """``x'' = μ(1 − x²)x' − x`` as ``(x, x')``, y0 = (2, 0); ``params`` is μ (stiff for μ ≳ 100)."""

    def f(t, y, m):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, m * (1 - x**2) * v - x], dim=-1)

    return ODEProblem(f, _tensor([2.0, 0.0], dtype), (0.0, 10.0), mu, name="van_der_pol", stiff=mu >= 100)


def brusselator(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """``x' = a + x²y − (b + 1)x, y' = bx − x²y`` with (a, b) = (1, 3), y0 = (1.5, 3): a limit cycle."""

    def f(t, y, p):
        a, b = p
        x, z = y[..., 0], y[..., 1]
        return torch.stack([a + x * x * z - (b + 1) * x, b * x - x * x * z], dim=-1)

    return ODEProblem(f, _tensor([1.5, 3.0], dtype), (0.0, 20.0), (1.0, 3.0), name="brusselator")


def robertson(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """Robertson's chemical kinetics (Hairer & Wanner II, IV.1): the classic stiff problem."""

    def f(t, y, k):
        k1, k2, k3 = k
        a, b, c = y[..., 0], y[..., 1], y[..., 2]
        return torch.stack([-k1 * a + k3 * b * c, k1 * a - k3 * b * c - k2 * b * b, k2 * b * b], dim=-1)

    return ODEProblem(
        f, _tensor([1.0, 0.0, 0.0], dtype), (0.0, 40.0), (0.04, 3e7, 1e4), name="robertson", stiff=True
    )


def cubic_spiral(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """``y' = y³ A`` with A = [[−0.1, 2], [−2, −0.1]], y0 = (2, 0): the 2-D spiral of torchdiffeq's demo."""

    def f(t, y, A):
        return (y**3) @ A.to(y)

    A = _tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype)
    return ODEProblem(f, _tensor([2.0, 0.0], dtype), (0.0, 25.0), A, name="cubic_spiral")


#: name -> factory(dtype=torch.float64) for every library problem
ODE_PROBLEMS: dict[str, Callable[..., ODEProblem]] = {
    "exponential": exponential,
    "forced_linear": forced_linear,
    "harmonic_oscillator": harmonic_oscillator,
    "lotka_volterra": lotka_volterra,
    "van_der_pol": van_der_pol,
    "brusselator": brusselator,
    "robertson": robertson,
    "cubic_spiral": cubic_spiral,
}


def get(name: str, **kwargs: Any) -> ODEProblem:
    """A library problem by name.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in ODE_PROBLEMS:
        raise ValueError(f"unknown ODE problem {name!r}; choose one of {sorted(ODE_PROBLEMS)}")
    return ODE_PROBLEMS[name](**kwargs)

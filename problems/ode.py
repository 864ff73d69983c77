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
        y0: the initial state (a real floating tensor; lists are converted to float64; complex states are
            refused: :func:`~sciml.solvers.ode.odeint` integrates them).
        t_span: ``(t0, t1)``; ``t1 < t0`` integrates backwards.
        params: passed as the third argument of ``f`` when not None (e.g. Van der Pol's μ).
        exact: ``exact(ts, y0, params) -> (len(ts), *y0.shape)``, if a closed form exists.
        name: a label (used as the key of cached references: keep it unique per vector field).
        stiff: True if explicit methods are stability-limited on this problem.

    Raises:
        ValueError: ``y0`` not finite or not real floating (complex states: use
            :func:`~sciml.solvers.ode.odeint`, or split them with ``torch.view_as_real``), ``t_span`` not two
            distinct finite times.
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
        if y0.is_complex():
            raise ValueError(
                f"`y0` is complex ({y0.dtype}): complex states are not supported by ODEProblem/solve() (the "
                "error norm, Jacobians and stiffness index are real; casting with .double() would silently "
                "drop the imaginary part). Use sciml.solvers.ode.odeint, which integrates complex states, or "
                "solve for the real and imaginary parts: torch.view_as_real(y0) with a field that maps "
                "view_as_real(f(t, view_as_complex(y)))"
            )
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


def robertson(dtype: torch.dtype = torch.float64, t1: float = 40.0) -> ODEProblem:
    """Robertson's chemical kinetics (Hairer & Wanner II, IV.1): the classic stiff problem, on ``[0, t1]``
    (40 by default; the test set's long runs use up to 1e11)."""

    def f(t, y, k):
        k1, k2, k3 = k
        a, b, c = y[..., 0], y[..., 1], y[..., 2]
        return torch.stack([-k1 * a + k3 * b * c, k1 * a - k3 * b * c - k2 * b * b, k2 * b * b], dim=-1)

    return ODEProblem(
        f, _tensor([1.0, 0.0, 0.0], dtype), (0.0, t1), (0.04, 3e7, 1e4), name="robertson", stiff=True
    )


def cubic_spiral(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """``y' = y³ A`` with A = [[−0.1, 2], [−2, −0.1]], y0 = (2, 0): the 2-D spiral of torchdiffeq's demo."""

    def f(t, y, A):
        return (y**3) @ A.to(y)

    A = _tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype)
    return ODEProblem(f, _tensor([2.0, 0.0], dtype), (0.0, 25.0), A, name="cubic_spiral")


# ------------------------------------------------------------------------------ stiff test set problems
# Definitions follow Hairer & Wanner, *Solving ODEs II* (2nd ed., 1996), IV.10, and the IVP test set of
# Mazzia & Magherini (Bari, release 2.4), which lists reference values at the end times.


def van_der_pol_stiff(dtype: torch.dtype = torch.float64, mu: float = 1e3) -> ODEProblem:
    """Van der Pol in Liénard-scaled time (the test set's VDPOL): ``y1' = y2``, ``y2' = μ²((1 − y1²)y2 −
    y1)`` on ``[0, 2]`` from ``(2, 0)`` (ε = 1/μ² = 1e-6 for μ = 1e3); about one relaxation period, with
    fast transitions. ``params`` is μ."""

    def f(t, y, m):
        x, v = y[..., 0], y[..., 1]
        return torch.stack([v, (m * m) * ((1 - x * x) * v - x)], dim=-1)

    return ODEProblem(
        f, _tensor([2.0, 0.0], dtype), (0.0, 2.0), float(mu), name="van_der_pol_stiff", stiff=True
    )


def hires(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """HIRES: 8 reactions of plant physiology (Schäfer 1975; Hairer & Wanner II, IV.10) on
    ``[0, 321.8122]``."""

    def f(t, y):
        y1, y2, y3, y4, y5, y6, y7, y8 = y.unbind(-1)
        r = 280.0 * y6 * y8
        return torch.stack(
            [
                -1.71 * y1 + 0.43 * y2 + 8.32 * y3 + 0.0007,
                1.71 * y1 - 8.75 * y2,
                -10.03 * y3 + 0.43 * y4 + 0.035 * y5,
                8.32 * y2 + 1.71 * y3 - 1.12 * y4,
                -1.745 * y5 + 0.43 * y6 + 0.43 * y7,
                -r + 0.69 * y4 + 1.71 * y5 - 0.43 * y6 + 0.69 * y7,
                r - 1.81 * y7,
                -r + 1.81 * y7,
            ],
            dim=-1,
        )

    y0 = _tensor([1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0057], dtype)
    return ODEProblem(f, y0, (0.0, 321.8122), None, name="hires", stiff=True)


def orego(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """OREGO: the Oregonator (Field & Noyes 1974; Hairer & Wanner II, IV.10) on ``[0, 360]`` from
    (1, 2, 3)."""

    def f(t, y):
        y1, y2, y3 = y.unbind(-1)
        return torch.stack(
            [77.27 * (y2 + y1 * (1 - 8.375e-6 * y1 - y2)), (y3 - (1 + y1) * y2) / 77.27, 0.161 * (y1 - y3)],
            dim=-1,
        )

    return ODEProblem(f, _tensor([1.0, 2.0, 3.0], dtype), (0.0, 360.0), None, name="orego", stiff=True)


_POLLU_K = (
    0.35, 26.6, 1.23e4, 8.6e-4, 8.2e-4, 1.5e4, 1.3e-4, 2.4e4, 1.65e4, 9.0e3, 2.2e-2, 1.2e4, 1.88, 1.63e4,
    4.8e6, 3.5e-4, 1.75e-2, 1.0e8, 4.44e11, 1.24e3, 2.1, 5.78, 4.74e-2, 1.78e3, 3.12,
)  # fmt: skip


def pollu(dtype: torch.dtype = torch.float64) -> ODEProblem:
    """POLLU: an air-pollution model of 20 species and 25 reactions (Verwer 1994; IVP test set) on
    ``[0, 60]``. ``params`` are the 25 rate constants."""

    def f(t, y, k):
        y = y.unbind(-1)
        Y = (None, *y)  # 1-based like the test set
        r = [
            None,
            k[0] * Y[1], k[1] * Y[2] * Y[4], k[2] * Y[5] * Y[2], k[3] * Y[7], k[4] * Y[7],
            k[5] * Y[7] * Y[6], k[6] * Y[9], k[7] * Y[9] * Y[6], k[8] * Y[11] * Y[2], k[9] * Y[11] * Y[1],
            k[10] * Y[13], k[11] * Y[10] * Y[2], k[12] * Y[14], k[13] * Y[1] * Y[6], k[14] * Y[3],
            k[15] * Y[4], k[16] * Y[4], k[17] * Y[16], k[18] * Y[16], k[19] * Y[17] * Y[6],
            k[20] * Y[19], k[21] * Y[19], k[22] * Y[1] * Y[4], k[23] * Y[19] * Y[1], k[24] * Y[20],
        ]  # fmt: skip
        dy = [
            -r[1] - r[10] - r[14] - r[23] - r[24] + r[2] + r[3] + r[9] + r[11] + r[12] + r[22] + r[25],
            -r[2] - r[3] - r[9] - r[12] + r[1] + r[21],
            -r[15] + r[1] + r[17] + r[19] + r[22],
            -r[2] - r[16] - r[17] - r[23] + r[15],
            -r[3] + 2 * r[4] + r[6] + r[7] + r[13] + r[20],
            -r[6] - r[8] - r[14] - r[20] + r[3] + 2 * r[18],
            -r[4] - r[5] - r[6] + r[13],
            r[4] + r[5] + r[6] + r[7],
            -r[7] - r[8],
            -r[12] + r[7] + r[9],
            -r[9] - r[10] + r[8] + r[11],
            r[9],
            -r[11] + r[10],
            -r[13] + r[12],
            r[14],
            -r[18] - r[19] + r[16],
            -r[20],
            r[20],
            -r[21] - r[22] - r[24] + r[23] + r[25],
            -r[25] + r[24],
        ]
        return torch.stack(dy, dim=-1)

    y0 = torch.zeros(20, dtype=dtype)
    for i, v in ((2, 0.2), (4, 0.04), (7, 0.1), (8, 0.3), (9, 0.01), (17, 0.007)):
        y0[i - 1] = v
    return ODEProblem(f, y0, (0.0, 60.0), _POLLU_K, name="pollu", stiff=True)


def e5(dtype: torch.dtype = torch.float64, t1: float = 1e13) -> ODEProblem:
    """E5: a chemical pyrolysis model (Enright, Hull & Lindberg 1975; Hairer & Wanner II, IV.10) on
    ``[0, t1]`` from ``(1.76e-3, 0, 0, 0)``; values down to 1e-20 and below need ``atol`` ≲ 1e-20.
    ``params`` are (A, B, C, M)."""

    def f(t, y, p):
        A, B, C, M = p
        y1, y2, y3, y4 = y.unbind(-1)
        a, b, c = A * y1, B * y1 * y3, M * C * y2 * y3
        return torch.stack([-a - b, a - c, a - b - c + C * y4, b - C * y4], dim=-1)

    return ODEProblem(
        f, _tensor([1.76e-3, 0.0, 0.0, 0.0], dtype), (0.0, t1), (7.89e-10, 1.1e7, 1.13e3, 1e6), name="e5",
        stiff=True,
    )  # fmt: skip


def brusselator_1d(dtype: torch.dtype = torch.float64, n: int = 500, alpha: float = 0.02) -> ODEProblem:
    """The 1-D Brusselator by the method of lines (Hairer & Wanner II, IV.1, BRUSS): ``u_t = 1 + u²v − 4u +
    α u_xx``, ``v_t = 3u − u²v + α v_xx`` on ``x ∈ (0, 1)`` with ``u = 1, v = 3`` at both ends, ``u(x, 0) =
    1 + sin 2πx``, ``v(x, 0) = 3``, ``n`` interior points (``2n`` unknowns, flat state ``(u_1, v_1, …)``),
    ``t ∈ [0, 10]``. Stiff through diffusion: ``|λ| ≈ 4α(n + 1)²``. ``params`` is α."""
    if n < 2:
        raise ValueError(f"`n` must be at least 2 grid points, got {n}")
    x = torch.arange(1, n + 1, dtype=dtype) / (n + 1)

    def f(t, y, a):
        uv = y.reshape(*y.shape[:-1], n, 2)
        u, v = uv[..., 0], uv[..., 1]
        c = a * (n + 1) ** 2

        def lap(w, boundary):
            left = torch.cat([torch.full_like(w[..., :1], boundary), w[..., :-1]], dim=-1)
            right = torch.cat([w[..., 1:], torch.full_like(w[..., :1], boundary)], dim=-1)
            return left - 2 * w + right

        uuv = u * u * v
        du = 1.0 + uuv - 4.0 * u + c * lap(u, 1.0)
        dv = 3.0 * u - uuv + c * lap(v, 3.0)
        return torch.stack([du, dv], dim=-1).reshape(y.shape)

    y0 = torch.stack([1 + torch.sin(2 * math.pi * x), torch.full_like(x, 3.0)], dim=-1).reshape(-1)
    return ODEProblem(f, y0, (0.0, 10.0), float(alpha), name=f"brusselator_1d_n{n}", stiff=True)


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
    "van_der_pol_stiff": van_der_pol_stiff,
    "hires": hires,
    "orego": orego,
    "pollu": pollu,
    "e5": e5,
    "brusselator_1d": brusselator_1d,
}


def get(name: str, **kwargs: Any) -> ODEProblem:
    """A library problem by name.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    if name not in ODE_PROBLEMS:
        raise ValueError(f"unknown ODE problem {name!r}; choose one of {sorted(ODE_PROBLEMS)}")
    return ODE_PROBLEMS[name](**kwargs)

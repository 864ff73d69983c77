"""Semilinear PDEs on a periodic interval: a linear Fourier symbol plus polynomial nonlinear terms.

One definition covers every equation of the form

    u_t = Σ_q a_q ∂_x^q u  +  Σ_{p≥1, q} c_{p,q} u^p ∂_x^q u          on [x0, x0 + length), periodic,

written as a dict ``{(p, q): coefficient}``: ``p = 0`` entries are linear and form the Fourier symbol
``Σ_q a_q (ik)^q``; ``p ≥ 1`` entries are nonlinear and are evaluated pseudo-spectrally (derivatives by
``rfft``/``irfft``, products on the grid). ``∂_x^0 u = u``, so ``(0, 0)`` is ``u`` and ``(2, 0)`` is
``u^3``. Terms ``u^p u_x`` (q = 1) are evaluated in conservation form, ``∂_x(u^{p+1})/(p+1)``, which is
the same function and conserves the mean exactly on the grid.

The three semilinear equations of the project:

>>> import numpy as np
>>> ks = kuramoto_sivashinsky()  # u_t + u u_x + u_xx + u_xxxx = 0 on [-50, 50), N = 1024
>>> dict(ks.terms)
{(0, 2): -1.0, (0, 4): -1.0, (1, 1): -1.0}
>>> allen_cahn = SemilinearPeriodicProblem(  # u_t = 1e-4 u_xx + 5u - 5u^3
...     {(0, 2): 1e-4, (0, 0): 5.0, (2, 0): -5.0}, n=512, x0=-1.0, length=2.0,
...     u0=lambda x: x**2 * np.cos(np.pi * x), t_span=(0.0, 1.0))
>>> burgers = SemilinearPeriodicProblem(  # u_t = (0.01/π) u_xx - u u_x
...     {(0, 2): 0.01 / np.pi, (1, 1): -1.0}, n=1024, x0=-1.0, length=2.0,
...     u0=lambda x: -np.sin(np.pi * x), t_span=(0.0, 1.0))
>>> print(burgers.equation())
u_t = -u*u_x + 0.003183*u_xx

An imperfect model is one line: ``ks.replace(terms={(1, 1): -1.0, (0, 2): -1.0})`` (no ``u_xxxx``), or
``ks.update_terms({(0, 4): 0.0})``.

Term names follow PDE-FIND: ``u``, ``u^3``, ``u_xx``, ``u*u_x``, ``u^2*u_x`` (:func:`term_name`,
:func:`parse_term`).
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch

__all__ = [
    "SemilinearPeriodicProblem",
    "kuramoto_sivashinsky",
    "ks_initial_condition",
    "KSInitialCondition",
    "unbounded_growth_term",
    "term_name",
    "parse_term",
    "spectral_derivative",
    "evaluate_term",
    "format_terms",
    "spectral_derivative_symbol",
]

TermKey = tuple[int, int]


def term_name(p: int, q: int) -> str:
    """Name of ``u^p ∂_x^q u``: ``(1, 1) -> "u*u_x"``, ``(0, 4) -> "u_xxxx"``, ``(2, 0) -> "u^3"``."""
    if q == 0:
        return "u" if p == 0 else f"u^{p + 1}"
    derivative = "u_" + "x" * q
    if p == 0:
        return derivative
    return ("u*" if p == 1 else f"u^{p}*") + derivative


_TERM_RE = re.compile(r"^u(?:\^(\d+))?(?:\*u_(x+))?$|^u_(x+)$")


def parse_term(name: str) -> TermKey:
    """Inverse of :func:`term_name` (spaces ignored; ``u_xxx`` or ``u*u_x`` style names).

    Raises:
        ValueError: ``name`` is not of the form ``u``, ``u^k``, ``u_x...``, ``u*u_x...`` or ``u^k*u_x...``.
    """
    text = str(name).replace(" ", "")
    match = _TERM_RE.match(text)
    if not match:
        raise ValueError(
            f"term {name!r} is not a product u^p * (x-derivative of u); write it like 'u', 'u^3', 'u_xx', "
            "'u*u_x' or 'u^2*u_xxx' (or give the (p, q) pair)"
        )
    power, deriv, pure = match.groups()
    if pure is not None:
        return 0, len(pure)
    power = int(power) if power is not None else 1
    if deriv is None:  # u^k = u^(k-1) * u
        if power < 1:
            raise ValueError(f"term {name!r}: the constant term is not part of the family; drop it")
        return power - 1, 0
    return power, len(deriv)


def _check_key(key) -> TermKey:
    if isinstance(key, str):
        return parse_term(key)
    if (
        not isinstance(key, tuple)
        or len(key) != 2
        or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) for k in key)
        or key[0] < 0
        or key[1] < 0
    ):
        raise ValueError(
            f"term key {key!r} must be a pair (p, q) of non-negative integers for u^p * d^q u/dx^q "
            "(or a name such as 'u*u_x')"
        )
    return int(key[0]), int(key[1])


def _wavenumbers(n: int, length: float, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    return (2 * math.pi / length) * torch.arange(n // 2 + 1, dtype=dtype, device=device)


def spectral_derivative_symbol(
    n: int, length: float, q: int, *, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """The ``rfft``-ordered symbol ``(ik)^q`` of ``∂_x^q`` (complex, length ``n//2 + 1``).

    For odd ``q`` and even ``n`` the Nyquist entry is set to zero (the standard choice that keeps odd
    derivatives of real data real; Trefethen, *Spectral Methods in MATLAB*, ch. 3).
    """
    k = _wavenumbers(n, length, dtype, device)
    symbol = (1j * k.to(torch.complex128 if dtype == torch.float64 else torch.complex64)) ** q
    if q % 2 == 1 and n % 2 == 0:
        symbol[-1] = 0
    return symbol


def spectral_derivative(u: torch.Tensor, q: int, length: float) -> torch.Tensor:
    """``∂_x^q u`` of periodic grid values ``u`` (last axis; any leading batch axes) by ``rfft``/``irfft``."""
    if q == 0:
        return u
    n = u.shape[-1]
    symbol = spectral_derivative_symbol(n, length, q, dtype=u.dtype, device=u.device)
    return torch.fft.irfft(symbol * torch.fft.rfft(u), n=n)


def evaluate_term(u: torch.Tensor, p: int, q: int, length: float) -> torch.Tensor:
    """``u^p ∂_x^q u`` on the grid, exactly as :class:`SemilinearPeriodicProblem` evaluates it.

    ``q = 1, p ≥ 1`` uses the conservation form ``∂_x(u^{p+1})/(p+1)``.
    """
    if q == 1 and p >= 1:
        return spectral_derivative(u ** (p + 1), 1, length) / (p + 1)
    if q == 0:
        return u ** (p + 1)
    d = spectral_derivative(u, q, length)
    return d if p == 0 else u**p * d


def ks_initial_condition(x: np.ndarray, length: float = 100.0) -> np.ndarray:
    """Kassam & Trefethen's KS initial state rescaled to the period: ``-cos(2πx/L)(1 + sin(-2πx/L))``."""
    return -np.cos(2 * np.pi * x / length) * (1 + np.sin(-2 * np.pi * x / length))


class KSInitialCondition:
    """The default KS initial state, ``-cos(2πx/L)(1 + sin(-2πx/L))`` with ``L`` the problem's period.

    :meth:`SemilinearPeriodicProblem.initial_condition` calls it with the problem's own ``length``, so a
    ``replace(length=...)`` keeps the state periodic; called directly, ``u0(x)`` uses the period the
    problem was built with.
    """

    def __init__(self, length: float) -> None:
        self.length = float(length)

    def __call__(self, x: np.ndarray, length: float | None = None) -> np.ndarray:
        return ks_initial_condition(x, self.length if length is None else float(length))

    def __repr__(self) -> str:
        return f"KSInitialCondition(length={self.length!r})"


def unbounded_growth_term(linear_terms: Mapping[int, float]) -> tuple[int, float] | None:
    """``(q, a_q)`` of the linear term that makes the symbol's real part grow without bound in ``k``, or None.

    The real part of ``(ik)^q`` is ``0`` for odd ``q`` and ``(-1)^{q/2} k^q`` for even ``q``, so at high
    ``k`` the highest even ``q`` present decides: the growth is unbounded (the problem is ill-posed, e.g.
    backward diffusion) when ``a_q (-1)^{q/2} > 0``. Lower-order growth balanced by higher-order damping
    (KS's ``-u_xx - u_xxxx``) is bounded and well posed.
    """
    even = {q: a for q, a in linear_terms.items() if q % 2 == 0 and q > 0}
    if not even:
        return None
    q = max(even)
    return (q, even[q]) if even[q] * (-1) ** (q // 2) > 0 else None


@dataclass(frozen=True, eq=False)
class SemilinearPeriodicProblem:
    """``u_t = Σ_{(p,q)} coefficient · u^p ∂_x^q u`` on a periodic interval (see the module docstring).

    Args:
        terms: ``{(p, q): coefficient}`` (keys may also be names such as ``"u*u_x"``). Zero coefficients
            are dropped. ``p = 0`` terms form the linear symbol, ``p ≥ 1`` the nonlinear part.
        n: grid points (``x_j = x0 + j·length/n``, j = 0..n-1); at least 4.
        x0: left end of the period.
        length: the period.
        u0: the initial state: a callable of the grid ``x`` (numpy) or an array of ``n`` values.
        t_span: ``(t0, t1)``, the time interval the problem is posed on.
        name: a label used in messages, plots and cache file names.

    Raises:
        ValueError: for malformed term keys, non-finite coefficients, ``n < 4``, a non-positive or
            non-finite ``length``, a ``u0`` array of the wrong length, complex or with NaNs, or
            ``t1 <= t0``.

    An ill-posed linear part (:attr:`ill_posed_term`, e.g. KS without ``u_xxxx``) is allowed: MEDIDA
    integrates such imperfect models over short intervals; :func:`~sciml.solvers.spectral.solve_spectral`
    refuses to report a long run of one as a success.
    """

    terms: Mapping[TermKey, float]
    n: int
    x0: float
    length: float
    u0: Callable[[np.ndarray], np.ndarray] | np.ndarray = field(repr=False)
    t_span: tuple[float, float] = (0.0, 1.0)
    name: str = "semilinear"

    def __post_init__(self) -> None:
        if not isinstance(self.terms, Mapping):
            raise ValueError(f"terms must be a dict {{(p, q): coefficient}}, got {type(self.terms).__name__}")
        clean: dict[TermKey, float] = {}
        for key, value in self.terms.items():
            key = _check_key(key)
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"the coefficient of {term_name(*key)} must be a real number, got {value!r}"
                ) from None
            if not math.isfinite(value):
                raise ValueError(f"the coefficient of {term_name(*key)} must be finite, got {value}")
            if value != 0.0:
                clean[key] = clean.get(key, 0.0) + value
        object.__setattr__(self, "terms", MappingProxyType(dict(sorted(clean.items()))))
        if isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer)) or self.n < 4:
            raise ValueError(f"n must be an integer >= 4 (grid points), got {self.n!r}")
        object.__setattr__(self, "n", int(self.n))
        if not (math.isfinite(float(self.length)) and float(self.length) > 0):
            raise ValueError(f"length must be a positive finite number, got {self.length!r}")
        object.__setattr__(self, "length", float(self.length))
        if not math.isfinite(float(self.x0)):
            raise ValueError(f"x0 must be finite, got {self.x0!r}")
        object.__setattr__(self, "x0", float(self.x0))
        t0, t1 = (float(t) for t in self.t_span)
        if not (math.isfinite(t0) and math.isfinite(t1) and t1 > t0):
            raise ValueError(f"t_span must be (t0, t1) with finite t0 < t1, got {self.t_span!r}")
        object.__setattr__(self, "t_span", (t0, t1))
        if not callable(self.u0):
            if np.iscomplexobj(self.u0):
                raise ValueError(
                    "u0 is complex, but complex fields are not supported (the solver evolves real u with "
                    "rfft); pass a real array (for a complex amplitude, split it into real equations)"
                )
            values = np.asarray(self.u0, dtype=np.float64)
            if values.shape != (self.n,):
                raise ValueError(
                    f"u0 must be a callable of x or an array of shape ({self.n},), got {values.shape}"
                )
            if not np.all(np.isfinite(values)):
                raise ValueError("u0 must be finite (it holds NaN or inf)")
            values.setflags(write=False)
            object.__setattr__(self, "u0", values)

    # -- construction ------------------------------------------------------------------------------------
    def replace(self, **changes) -> SemilinearPeriodicProblem:
        """A copy with some fields changed (like Julia's ``remake``): ``ks.replace(terms=..., n=256)``."""
        return dataclasses.replace(self, **changes)

    def update_terms(self, changes: Mapping, **other) -> SemilinearPeriodicProblem:
        """A copy whose terms are ``self.terms`` updated by ``changes`` (a zero removes a term).

        Raises:
            ValueError: a malformed term key, or a coefficient that is not a real number (the message names
                the term), or what the constructor raises.
        """
        merged = dict(self.terms)
        for key, value in changes.items():
            key = _check_key(key)
            try:
                merged[key] = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"update_terms: the coefficient of {term_name(*key)} must be a real number (0 removes "
                    f"the term), got {value!r}"
                ) from None
        return self.replace(terms=merged, **other)

    # -- grid and operators ----------------------------------------------------------------------------
    @property
    def dx(self) -> float:
        return self.length / self.n

    @property
    def x(self) -> np.ndarray:
        """Grid points ``x0 + j·dx``, j = 0..n-1."""
        return self.x0 + self.dx * np.arange(self.n)

    @property
    def linear_terms(self) -> dict[int, float]:
        """``{q: a_q}`` of the linear part."""
        return {q: c for (p, q), c in self.terms.items() if p == 0}

    @property
    def ill_posed_term(self) -> str | None:
        """The linear term whose growth rate ``a_q (-1)^{q/2} k^q`` is unbounded in ``k`` (the highest even
        derivative with the anti-damping sign, e.g. ``-0.1*u_xx``), as ``"-0.1*u_xx"``; ``None`` when the
        linear part is well posed (:func:`unbounded_growth_term`)."""
        found = unbounded_growth_term(self.linear_terms)
        return None if found is None else f"{found[1]:g}*{term_name(0, found[0])}"

    @property
    def nonlinear_terms(self) -> dict[TermKey, float]:
        """``{(p, q): c}`` with ``p ≥ 1``."""
        return {(p, q): c for (p, q), c in self.terms.items() if p >= 1}

    def wavenumbers(self, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """``k = 2π m / length``, m = 0..n//2 (the ``rfft`` frequencies)."""
        return _wavenumbers(self.n, self.length, dtype, device)

    def linear_symbol(self, *, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """``Σ_q a_q (ik)^q`` in ``rfft`` order (complex; real when every linear ``q`` is even)."""
        cdtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        symbol = torch.zeros(self.n // 2 + 1, dtype=cdtype, device=device)
        for q, a in self.linear_terms.items():
            symbol = symbol + a * spectral_derivative_symbol(
                self.n, self.length, q, dtype=dtype, device=device
            )
        return symbol

    def initial_condition(self) -> np.ndarray:
        """``u0`` on the grid (float64, shape ``(n,)``).

        The default KS initial state (:class:`KSInitialCondition`) is evaluated with this problem's own
        ``length``, so ``kuramoto_sivashinsky().replace(length=22.0, n=64)`` starts from a periodic state.

        Raises:
            ValueError: a callable ``u0`` returns the wrong shape, complex or non-finite values.
        """
        if callable(self.u0):
            raw = self.u0(self.x, self.length) if isinstance(self.u0, KSInitialCondition) else self.u0(self.x)
            if np.iscomplexobj(raw):
                raise ValueError(
                    f"u0(x) of problem {self.name!r} returned complex values, but complex fields are not "
                    "supported (the solver evolves real u with rfft); return real values"
                )
            values = np.asarray(raw, dtype=np.float64)
            if values.shape != (self.n,):
                values = np.broadcast_to(values, (self.n,)) if values.ndim == 0 else values
            if values.shape != (self.n,):
                raise ValueError(f"u0(x) must return an array of shape ({self.n},), got {values.shape}")
            if not np.all(np.isfinite(values)):
                raise ValueError(f"u0(x) of problem {self.name!r} returned NaN or inf")
            return values.copy()
        return np.array(self.u0)

    def nonlinear(self, u: torch.Tensor) -> torch.Tensor:
        """``Σ_{p≥1} c_{p,q} u^p ∂_x^q u`` on the grid, for ``u`` of shape ``(..., n)``."""
        out = torch.zeros_like(u)
        flux = None  # q = 1 terms together in conservation form: ∂_x Σ c u^{p+1}/(p+1)
        by_q: dict[int, list[tuple[int, float]]] = {}
        for (p, q), c in self.nonlinear_terms.items():
            if q == 1:
                f = (c / (p + 1)) * u ** (p + 1)
                flux = f if flux is None else flux + f
            else:
                by_q.setdefault(q, []).append((p, c))
        if flux is not None:
            out = out + spectral_derivative(flux, 1, self.length)
        for q, entries in by_q.items():
            d = spectral_derivative(u, q, self.length)
            poly = sum(c * u**p for p, c in entries)
            out = out + poly * d
        return out

    def nonlinear_hat(self, v_hat: torch.Tensor) -> torch.Tensor:
        """The ``rfft`` of :meth:`nonlinear` evaluated at ``irfft(v_hat)`` (what ETD schemes need)."""
        if not self.nonlinear_terms:
            return torch.zeros_like(v_hat)
        n = self.n
        u = torch.fft.irfft(v_hat, n=n)
        flux = None
        local = None
        by_q: dict[int, list[tuple[int, float]]] = {}
        for (p, q), c in self.nonlinear_terms.items():
            if q == 1:
                f = (c / (p + 1)) * u ** (p + 1)
                flux = f if flux is None else flux + f
            elif q == 0:
                f = c * u ** (p + 1)
                local = f if local is None else local + f
            else:
                by_q.setdefault(q, []).append((p, c))
        for q, entries in by_q.items():
            symbol = spectral_derivative_symbol(n, self.length, q, dtype=u.dtype, device=u.device)
            d = torch.fft.irfft(symbol * v_hat, n=n)
            f = sum(c * u**p for p, c in entries) * d
            local = f if local is None else local + f
        out = None
        if flux is not None:
            symbol = spectral_derivative_symbol(n, self.length, 1, dtype=u.dtype, device=u.device)
            out = symbol * torch.fft.rfft(flux)
        if local is not None:
            local_hat = torch.fft.rfft(local)
            out = local_hat if out is None else out + local_hat
        return out

    def rhs(self, u: torch.Tensor | np.ndarray) -> torch.Tensor:
        """The full right-hand side ``u_t`` on the grid (linear part spectrally, plus :meth:`nonlinear`)."""
        u = torch.as_tensor(u, dtype=torch.float64)
        if u.shape[-1] != self.n:
            raise ValueError(f"u must have {self.n} grid values on its last axis, got shape {tuple(u.shape)}")
        symbol = self.linear_symbol(dtype=u.dtype, device=u.device)
        return torch.fft.irfft(symbol * torch.fft.rfft(u), n=self.n) + self.nonlinear(u)

    # -- text ------------------------------------------------------------------------------------------
    def equation(self, form: str = "u_t") -> str:
        """The equation as text: ``"u_t = -u*u_x - u_xx - u_xxxx"`` or, with ``form="=0"``,
        ``"u_t + u*u_x + u_xx + u_xxxx = 0"``."""
        if form not in ("u_t", "=0"):
            raise ValueError(f"form must be 'u_t' or '=0', got {form!r}")
        items = sorted(self.terms.items(), key=lambda kv: (kv[0][0] == 0, kv[0][0], kv[0][1]))
        if form == "u_t":
            return "u_t = " + (format_terms({term_name(*k): c for k, c in items}) or "0")
        return format_terms({term_name(*k): -c for k, c in items}, lead="u_t") + " = 0"


def _format_coefficient(c: float) -> str:
    return f"{c:.4g}"


def format_terms(coefficients: Mapping[str, float], lead: str | None = None) -> str:
    """``{"u*u_x": -1, "u_xx": 0.5}`` -> ``"-u*u_x + 0.5*u_xx"`` (unit coefficients written bare).

    With ``lead="u_t"`` every term carries its sign after the lead: ``"u_t - u*u_x + 0.5*u_xx"``.
    """
    parts = [] if lead is None else [lead]
    for name, c in coefficients.items():
        magnitude = _format_coefficient(abs(c))
        text = name if magnitude == "1" else f"{magnitude}*{name}"
        if not parts:
            parts.append(("-" if c < 0 else "") + text)
        else:
            parts.append(("- " if c < 0 else "+ ") + text)
    return " ".join(parts)


def kuramoto_sivashinsky(
    c: tuple[float, float, float] = (1.0, 1.0, 1.0),
    *,
    extra: Mapping | None = None,
    length: float = 100.0,
    n: int = 1024,
    x0: float | None = None,
    t_span: tuple[float, float] = (0.0, 200.0),
    u0: Callable[[np.ndarray], np.ndarray] | np.ndarray | None = None,
) -> SemilinearPeriodicProblem:
    """The KS family ``u_t + c1 u u_x + c2 u_xx + c3 u_xxxx + Σ extra = 0`` (Mojgani et al. 2022, eq. 1).

    Args:
        c: ``(c1, c2, c3)``; the truth is ``(1, 1, 1)``.
        extra: further terms of the ``... = 0`` form, e.g. ``{(0, 3): 0.5}`` for ``+ 0.5 u_xxx`` or
            ``{"u^2*u_x": 1.5}`` for the ``(u² + u³)/2`` flux's extra part.
        length, n, x0: the periodic grid; default ``[-50, 50)`` with 1024 points.
        t_span: the time interval (default ``(0, 200)``: 100 of spin-up, then the observed window).
        u0: default ``-cos(2πx/L)(1 + sin(-2πx/L))`` (:class:`KSInitialCondition`), with ``L`` the
            problem's period at the time the state is made (so ``replace(length=...)`` keeps it periodic).

    Returns:
        The :class:`SemilinearPeriodicProblem` with ``terms = {(1,1): -c1, (0,2): -c2, (0,4): -c3, ...}``.
    """
    if len(tuple(c)) != 3:
        raise ValueError(f"c must be (c1, c2, c3), got {c!r}")
    c1, c2, c3 = (float(v) for v in c)
    terms: dict = {(1, 1): -c1, (0, 2): -c2, (0, 4): -c3}
    for key, value in (extra or {}).items():
        key = _check_key(key)
        terms[key] = terms.get(key, 0.0) - float(value)
    if u0 is None:  # evaluated with the problem's own period, also after replace(length=...)
        u0 = KSInitialCondition(length)

    return SemilinearPeriodicProblem(
        terms,
        n=n,
        x0=-length / 2 if x0 is None else x0,
        length=length,
        u0=u0,
        t_span=t_span,
        name="kuramoto-sivashinsky",
    )

"""Explicit Runge–Kutta methods as data: Butcher tableaus with their embedded error weights, dense output
and stiffness-estimate stages.

A method is its :class:`Tableau` plus a citation. ``__post_init__`` checks the consistency conditions
(row sums of ``a`` equal ``c``, ``sum(b) == 1``, ``sum(b_error) == 0``, the dense output reproduces ``b`` at
θ = 1) and derives FSAL and the real-axis stability boundary (``stability_size``) from the coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import Polynomial
from scipy.optimize import brentq

__all__ = [
    "Tableau", "EULER", "MIDPOINT", "HEUN2", "HEUN3", "RK4", "HEUN_EULER", "FEHLBERG2", "BS3", "DP5", "TSIT5",
    "DOP853", "TABLEAUS",
]  # fmt: skip


@dataclass(frozen=True)
class Tableau:
    """An explicit Runge–Kutta method.

    Args:
        name: short name (``"tsit5"``).
        c: abscissae, one per stage.
        a: strictly lower-triangular coefficients; row ``i`` holds ``i`` entries.
        b: weights of the propagated solution ``y1 = y0 + h Σ b_i k_i``.
        order: order of the propagated solution.
        b_error: ``b − b̂`` (embedded error weights, ``ẽ = h Σ b_error_i k_i``); None for fixed-step
            methods.
        error_order: order of the embedded solution ``b̂``.
        dense: per stage, polynomial coefficients in θ (ascending powers) of ``B_i(θ)`` with
            ``y(t0 + θh) = y0 + h Σ B_i(θ) k_i``; None if the method has no dense output.
        stiffness_stages: two stages ``(i, j)`` whose inputs give the Lipschitz (dominant eigenvalue)
            estimate ``ρ ≈ ‖k_j − k_i‖ / ‖g_j − g_i‖`` (Shampine 1977; Hairer & Wanner II, IV.2); ideally at
            the same abscissa. None: no stiffness estimate.
        citation: where the coefficients come from.

    Derived:
        fsal: the last stage is evaluated at ``y1`` (first same as last), so it is the next step's ``k_1``.
        stability_size: the radius of the stability region along the negative real axis, used to scale the
            stiffness index ``|ρ h| / stability_size``.

    Raises:
        ValueError: when the coefficients are inconsistent.
    """

    name: str
    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    order: int
    b_error: tuple[float, ...] | None = None
    error_order: int | None = None
    dense: tuple[tuple[float, ...], ...] | None = None
    stiffness_stages: tuple[int, int] | None = None
    citation: str = ""
    fsal: bool = field(init=False)
    stability_size: float = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.c)
        if len(self.a) != s or len(self.b) != s or any(len(row) != i for i, row in enumerate(self.a)):
            raise ValueError(f"{self.name}: `a` must have one row per stage with i entries in row i")
        for i, row in enumerate(self.a):
            if abs(sum(row) - self.c[i]) > 1e-12:
                raise ValueError(f"{self.name}: row {i} of `a` sums to {sum(row)}, not c[{i}] = {self.c[i]}")
        if abs(sum(self.b) - 1) > 1e-12:
            raise ValueError(f"{self.name}: `b` sums to {sum(self.b)}, not 1")
        if (self.b_error is None) != (self.error_order is None):
            raise ValueError(f"{self.name}: give both `b_error` and `error_order`, or neither")
        if self.b_error is not None:
            if len(self.b_error) != s or abs(sum(self.b_error)) > 1e-12:
                raise ValueError(f"{self.name}: `b_error` must have {s} entries summing to 0")
        if self.dense is not None:
            if len(self.dense) != s:
                raise ValueError(f"{self.name}: `dense` must have one polynomial per stage")
            at_one = [float(Polynomial(p)(1.0)) for p in self.dense]
            at_zero = [float(Polynomial(p)(0.0)) for p in self.dense]
            if max(abs(x - y) for x, y in zip(at_one, self.b)) > 1e-10 or max(map(abs, at_zero)) > 1e-14:
                raise ValueError(f"{self.name}: the dense output must give y0 at θ = 0 and y1 at θ = 1")
        if self.stiffness_stages is not None and not all(0 <= i < s for i in self.stiffness_stages):
            raise ValueError(f"{self.name}: `stiffness_stages` must index stages")
        fsal = self.c[-1] == 1.0 and self.b[-1] == 0.0 and np.allclose(self.a[-1], self.b[:-1], atol=1e-15)
        object.__setattr__(self, "fsal", bool(fsal and s > 1))
        A = np.zeros((s, s))
        for i, row in enumerate(self.a):
            A[i, :i] = row
        object.__setattr__(self, "stability_size", real_stability_boundary(A, self.b))

    @property
    def n_stages(self) -> int:
        return len(self.c)

    @property
    def adaptive(self) -> bool:
        """True if the method has an embedded error estimate."""
        return self.b_error is not None

    @property
    def new_evaluations(self) -> int:
        """Function evaluations per step (FSAL methods reuse the last stage)."""
        return self.n_stages - 1 if self.fsal else self.n_stages

    def stability_function(self, z: complex) -> complex:
        """``R(z) = 1 + z bᵀ (I − zA)⁻¹ 1``: the step's amplification of ``y' = λy`` at ``z = hλ``."""
        s = self.n_stages
        A = np.zeros((s, s), dtype=complex)
        for i, row in enumerate(self.a):
            A[i, :i] = row
        stages = np.linalg.solve(np.eye(s) - z * A, np.ones(s))
        return 1 + z * np.dot(self.b, stages)


def real_stability_boundary(A: np.ndarray, b, upper: float = 50.0) -> float:
    """Smallest x > 0 with |R(−x)| = 1 (the stability interval is [−x, 0]) of the explicit method with
    strictly lower-triangular stage matrix ``A`` and weights ``b``, searched on (0, ``upper``].

    The stability function is the polynomial ``R(z) = 1 + Σ_k (bᵀ A^(k−1) 1) z^k``, evaluated on a fine
    grid at once; Brent's method refines the first crossing.
    """
    s = len(b)
    weights, power = np.asarray(b, dtype=np.float64), np.ones(s)
    coefficients = [1.0]
    for _ in range(s):
        coefficients.append(float(weights @ power))
        power = A @ power
    R = Polynomial(coefficients)

    def excess(x: float) -> float:
        return abs(R(-x)) - 1.0

    grid = np.linspace(1e-3, upper, 20001)
    values = np.abs(R(-grid)) - 1.0
    crossing = np.flatnonzero((values[:-1] <= 0) & (values[1:] > 0))
    if crossing.size == 0:
        return math.inf
    i = int(crossing[0])
    return float(brentq(excess, grid[i], grid[i + 1], xtol=1e-12))


def _hermite_dense(b: tuple[float, ...]) -> tuple[tuple[float, ...], ...]:
    """Cubic Hermite dense output of an FSAL method from ``y0, y1, k_1 = f(y0), k_s = f(y1)`` (order 3).

    ``y(θ) = y0 + h[h01(θ) Σ b_i k_i + h10(θ) k_1 + h11(θ) k_s]`` with the Hermite basis
    ``h01 = 3θ² − 2θ³``, ``h10 = θ − 2θ² + θ³``, ``h11 = θ³ − θ²``.
    """
    h01, h10, h11 = Polynomial([0, 0, 3, -2]), Polynomial([0, 1, -2, 1]), Polynomial([0, 0, -1, 1])
    polys = [h01 * bi for bi in b]
    polys[0] = polys[0] + h10
    polys[-1] = polys[-1] + h11
    return tuple(tuple(np.pad(p.coef, (0, 4 - len(p.coef)))) for p in polys)


def _linear_combination(weights: dict[str, np.ndarray], basis: dict[str, Polynomial]) -> tuple:
    """Σ_name basis[name](θ) · weights[name] (vectors over stages) as per-stage polynomial coefficients."""
    s = len(next(iter(weights.values())))
    polys = [sum((basis[k] * float(w[i]) for k, w in weights.items()), Polynomial([0.0])) for i in range(s)]
    degree = max(len(p.coef) for p in polys)
    return tuple(tuple(np.pad(p.coef, (0, degree - len(p.coef)))) for p in polys)


EULER = Tableau(name="euler", c=(0.0,), a=((),), b=(1.0,), order=1, citation="Euler (1768)")

MIDPOINT = Tableau(
    name="midpoint", c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0), order=2, citation="Runge (1895)"
)

RK4 = Tableau(
    name="rk4",
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
    order=4,
    citation="Kutta (1901), the classical fourth-order method",
)

_BS3_B = (2 / 9, 1 / 3, 4 / 9, 0.0)
_BS3_BHAT = (7 / 24, 1 / 4, 1 / 3, 1 / 8)
BS3 = Tableau(
    name="bs3",
    c=(0.0, 0.5, 0.75, 1.0),
    a=((), (0.5,), (0.0, 0.75), _BS3_B[:3]),
    b=_BS3_B,
    order=3,
    b_error=tuple(x - y for x, y in zip(_BS3_B, _BS3_BHAT)),
    error_order=2,
    dense=_hermite_dense(_BS3_B),
    stiffness_stages=(2, 3),  # c = 3/4 and 1: no two stages share an abscissa in BS3
    citation="Bogacki & Shampine, A 3(2) pair of Runge-Kutta formulas, Appl. Math. Lett. 2 (1989)",
)

_DP5_B = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_DP5_BHAT = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)
# Shampine's continuous extension as written in Hairer's DOPRI5 (dense output coefficients d_i):
# y(θ) = y0 + θ(r2 + (1−θ)(r3 + θ(r4 + (1−θ) r5))), r2 = hΣb k, r3 = h k1 − r2, r4 = r2 − h k7 − r3,
# r5 = h Σ d_i k_i.
_DP5_D = np.array(
    [
        -12715105075 / 11282082432,
        0.0,
        87487479700 / 32700410799,
        -10690763975 / 1880347072,
        701980252875 / 199316789632,
        -1453857185 / 822651844,
        69997945 / 29380423,
    ]
)
_e1, _e7, _b = np.eye(7)[0], np.eye(7)[6], np.array(_DP5_B)
_theta = Polynomial([0, 1])
DP5 = Tableau(
    name="dp5",
    c=(0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0),
    a=(
        (),
        (1 / 5,),
        (3 / 40, 9 / 40),
        (44 / 45, -56 / 15, 32 / 9),
        (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
        (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
        _DP5_B[:6],
    ),
    b=_DP5_B,
    order=5,
    b_error=tuple(x - y for x, y in zip(_DP5_B, _DP5_BHAT)),
    error_order=4,
    dense=_linear_combination(
        {"r2": _b, "r3": _e1 - _b, "r4": 2 * _b - _e1 - _e7, "r5": _DP5_D},
        {
            "r2": _theta,
            "r3": _theta * (1 - _theta),
            "r4": _theta**2 * (1 - _theta),
            "r5": _theta**2 * (1 - _theta) ** 2,
        },
    ),
    stiffness_stages=(5, 6),
    citation="Dormand & Prince, A family of embedded Runge-Kutta formulae, J. Comput. Appl. Math. 6 (1980); "
    "dense output: Shampine, Math. Comp. 46 (1986), as in Hairer, Nørsett & Wanner I, II.6",
)

# Tsitouras 5(4): coefficients from Tsitouras, Comput. Math. Appl. 62 (2011), Table 1, and the
# dense-output polynomials from the same paper (as used by OrdinaryDiffEq and diffrax).
_TSIT5_A = (
    (),
    (0.161,),
    (-0.008480655492356988544426874250230774675121177393430391537369234245294192976164141156943,
     0.3354806554923569885444268742502307746751211773934303915373692342452941929761641411569),
    (2.897153057105493432130432594192938764924887287701866490314866693455023795137503079289,
     -6.359448489975074843148159912383825625952700647415626703305928850207288721235210244366,
     4.362295432869581411017727318190886861027813359713760212991062156752264926097707165077),
    (5.325864828439256604428877920840511317836476253097040101202360397727981648835607691791,
     -11.74888356406282787774717033978577296188744178259862899288666928009020615663593781589,
     7.495539342889836208304604784564358155658679161518186721010132816213648793440552049753,
     -0.09249506636175524925650207933207191611349983406029535244034750452930469056411389539635),
    (5.861455442946420028659251486982647890394337666164814434818157239052507339770711679748,
     -12.92096931784710929170611868178335939541780751955743459166312250439928519268343184452,
     8.159367898576158643180400794539253485181918321135053305748355423955009222648673734986,
     -0.07158497328140099722453054252582973869127213147363544882721139659546372402303777878835,
     -0.02826905039406838290900305721271224146717633626879770007617876201276764571291579142206),
    (0.09646076681806522951816731316512876333711995238157997181903319145764851595234062815396,
     0.01,
     0.4798896504144995747752495322905965199130404621990332488332634944254542060153074523509,
     1.379008574103741893192274821856872770756462643091360525934940067397245698027561293331,
     -3.290069515436080679901047585711363850115683290894936158531296799594813811049925401677,
     2.324710524099773982415355918398765796109060233222962411944060046314465391054716027841),
)  # fmt: skip
_TSIT5_B = (*_TSIT5_A[6], 0.0)
_TSIT5_BHAT = (
    0.09468075576583945807478876255758922856117527357724631226139574065785592789071067303271,
    0.009183565540343253096776363936645313759813746240984095238905939532922955247253608687270,
    0.4877705284247615707855642599631228241516691959761363774365216240304071651579571959813,
    1.234297566930478985655109673884237654035539930748192848315425833500484878378061439761,
    -2.707712349983525454881109975059321670689605166938197378763992255714444407154902012702,
    1.866628418170587035753719399566211498666255505244122593996591602841258328965767580089,
    1 / 66,
)
_P = Polynomial
_TSIT5_DENSE = tuple(
    tuple(np.pad(p.coef, (0, 5 - len(p.coef))))
    for p in (
        -1.0530884977290216 * _P([0, 1]) * _P([-1.3299890189751412, 1])
        * _P([0.7139816917074209, -1.4364028541716351, 1]),
        0.1017 * _P([0, 0, 1]) * _P([1.2949852507374631, -2.1966568338249754, 1]),
        2.490627285651252793 * _P([0, 0, 1]) * _P([1.57803468208092486, -2.38535645472061657, 1]),
        -16.54810288924490272 * _P([-1.21712927295533244, 1]) * _P([-0.61620406037800089, 1]) * _P([0, 0, 1]),
        47.37952196281928122 * _P([-1.203071208372362603, 1]) * _P([-0.658047292653547382, 1])
        * _P([0, 0, 1]),
        -34.87065786149660974 * _P([-1.2, 1]) * _P([-0.666666666666666667, 1]) * _P([0, 0, 1]),
        2.5 * _P([-1, 1]) * _P([-0.6, 1]) * _P([0, 0, 1]),
    )
)  # fmt: skip
TSIT5 = Tableau(
    name="tsit5",
    c=(0.0, 0.161, 0.327, 0.9, 0.98002554090450968572981028628702459549421379795630247688547642932,
       1.0, 1.0),
    a=_TSIT5_A,
    b=_TSIT5_B,
    order=5,
    b_error=tuple(x - y for x, y in zip(_TSIT5_B, _TSIT5_BHAT)),
    error_order=4,
    dense=_TSIT5_DENSE,
    stiffness_stages=(5, 6),
    citation="Tsitouras, Runge-Kutta pairs of order 5(4) satisfying only the first column simplifying "
    "assumption, Comput. Math. Appl. 62 (2011)",
)  # fmt: skip

HEUN2 = Tableau(
    name="heun2", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2,
    citation="Heun (1900), the explicit trapezoidal rule",
)  # fmt: skip

HEUN3 = Tableau(
    name="heun3", c=(0.0, 1 / 3, 2 / 3), a=((), (1 / 3,), (0.0, 2 / 3)), b=(0.25, 0.0, 0.75), order=3,
    citation="Heun (1900), third-order method",
)  # fmt: skip

# Heun's method with Euler embedded: error h(k2 - k1)/2, one order below the solution.
HEUN_EULER = Tableau(
    name="adaptive_heun", c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5), order=2,
    b_error=(-0.5, 0.5), error_order=1,
    stiffness_stages=(0, 1),  # g_1 - g_0 = h k_0: the only pair of stages
    citation="Heun (1900) with the embedded Euler step (Hairer, Nørsett & Wanner I, II.4)",
)  # fmt: skip

_RKF2_B = (1 / 512, 255 / 256, 1 / 512)
_RKF2_BHAT = (1 / 256, 255 / 256, 0.0)
FEHLBERG2 = Tableau(
    name="fehlberg2", c=(0.0, 0.5, 1.0), a=((), (0.5,), (1 / 256, 255 / 256)), b=_RKF2_B, order=2,
    b_error=tuple(x - y for x, y in zip(_RKF2_B, _RKF2_BHAT)), error_order=1,
    stiffness_stages=(1, 2),
    citation="Fehlberg, Low-order classical Runge-Kutta formulas with stepsize control, NASA TR R-315 "
    "(1969), the RKF1(2) pair propagated at second order",
)  # fmt: skip


def _dop853() -> Tableau:
    """Dormand–Prince 8(5): scipy's published DOP853 coefficients as a 13-stage FSAL tableau.

    The 13th stage is ``f(t + h, y1)`` (Hairer's error estimators use it); the embedded error here is the
    fifth-order estimator ``E5`` alone (Hairer combines it with a third-order one, which a single weight
    vector cannot express), so the controller works with an error of order 5. No dense output: save times
    are stepped to.
    """
    from scipy.integrate._ivp import dop853_coefficients as d  # the coefficients as data (scipy ≥ 1.4)

    s = d.N_STAGES + 1
    a = [tuple(float(x) for x in d.A[i, :i]) for i in range(d.N_STAGES)]
    a.append(tuple(float(x) for x in d.B))
    b = (*(float(x) for x in d.B), 0.0)
    c = (*(float(x) for x in d.C[: d.N_STAGES]), 1.0)
    b_error = tuple(float(x) for x in d.E5[:s])
    b_error = (*b_error[:-1], -sum(b_error[:-1]))
    return Tableau(
        name="dopri8", c=c, a=tuple(a), b=b, order=8, b_error=b_error, error_order=5,
        stiffness_stages=(11, 12),  # both at c = 1
        citation="Dormand & Prince, High order embedded Runge-Kutta formulae, J. Comput. Appl. Math. 7 "
        "(1981); Hairer, Nørsett & Wanner I, II.10 (DOP853)",
    )  # fmt: skip


DOP853 = _dop853()

#: every method by name
TABLEAUS: dict[str, Tableau] = {
    t.name: t for t in (EULER, MIDPOINT, HEUN2, HEUN3, RK4, HEUN_EULER, FEHLBERG2, BS3, DP5, TSIT5, DOP853)
}

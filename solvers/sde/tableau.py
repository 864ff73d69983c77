"""Stochastic Runge–Kutta methods of strong order 1.5 as data: Rößler's SRA (additive noise) and SRI (Itô,
scalar or diagonal noise) tableaus, and their stability-optimised versions SOSRA/SOSRI.

Rößler, *Runge–Kutta methods for the strong approximation of solutions of stochastic differential
equations*, SIAM J. Numer. Anal. 48 (2010) 922–952 (SRA1, SRA3, SRI1 = "SRIW1", SRI2 = "SRIW2");
Rackauckas & Nie, *Stability-optimized high order methods and stiffness detection for pathwise stiff
stochastic differential equations*, IEEE HPEC 2020 (arXiv:1804.04344) (SOSRA, SOSRA2, SOSRI, SOSRI2).

With ``χ1 = I_(1,1)/√h``, ``χ2 = I_(1,0)/h``, ``χ3 = I_(1,1,1)/h`` (scalar or diagonal noise, so every
iterated integral follows from ``ΔW`` and ``I_(1,0) = ∫(W_s − W_t) ds``), an SRI step is

    H0_i = y + h Σ_j A0_ij f_j + χ2 Σ_j B0_ij g_j,      f_j = f(t + c0_j h, H0_j)
    H1_i = y + h Σ_j A1_ij f_j + √h Σ_j B1_ij g_j,      g_j = g(t + c1_j h, H1_j)
    y1   = y + h Σ α_i f_i + Σ (β1_i ΔW + β2_i χ1) g_i + Σ (β3_i χ2 + β4_i χ3) g_i

and an SRA step (additive noise, ``g`` independent of ``y``; any number of Brownian channels) is

    H0_i = y + h Σ_j A0_ij f_j + Σ_j B0_ij g(t + c1_j h) I_(1,0)/h
    y1   = y + h Σ α_i f_i + Σ g(t + c1_i h) (β1_i ΔW + β2_i I_(1,0)/h).

``__post_init__`` checks the strong-order-1.5 conditions of Rößler (2010) (8 for SRA, 25 for SRI) to 1e-10,
so a mistyped coefficient is an error at import, not a silently wrong solver. The drift part (c0, A0, α) is
an ordinary explicit Runge–Kutta method; its real stability interval scales the stiffness index.

**Embedded error estimate** (the "natural embedding" of Rackauckas & Nie, DCDS-B 2017): dropping the
order-1.5 noise terms and replacing the drift quadrature by the Euler step ``h f(t, y)`` leaves a strong
order-1.0 method ŷ (Milstein-type for SRI, Euler–Maruyama — order 1 for additive noise — for SRA). The
estimate is the difference ``ẽ = y1 − ŷ = E_D + E_N`` with

    E_D = h Σ α_i f_i − h f_1                 (deterministic part)
    E_N = Σ (β3_i χ2 + β4_i χ3) g_i  (SRI),   Σ β2_i g(t + c1_i h) I_(1,0)/h  (SRA)

which needs no extra evaluations and approximates the local error of ŷ (``O(h^1.5)``); the step is advanced
with y1 (local extrapolation, as for ODE pairs). StochasticDiffEq.jl instead uses
``δ·|h Σ f_i| + |E_N|`` with δ = 1/6; we keep the signed difference, which is the embedded pair's actual
local-error estimate and is differentiable.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sciml.solvers.ode.tableau import real_stability_boundary

__all__ = ["SRATableau", "SRITableau", "SRA_TABLEAUS", "SRI_TABLEAUS"]

_TOL = 1e-10


def _square(rows: tuple[tuple[float, ...], ...], s: int) -> np.ndarray:
    A = np.zeros((s, s))
    for i, row in enumerate(rows):
        if len(row) != i:
            raise ValueError(f"row {i} of a stage matrix must have {i} entries, got {len(row)}")
        A[i, :i] = row
    return A


def _check(name: str, conditions: list[tuple[str, float]]) -> None:
    bad = [(label, value) for label, value in conditions if abs(value) > _TOL]
    if bad:
        listing = ", ".join(f"{label} (residual {value:.2e})" for label, value in bad)
        raise ValueError(f"{name}: strong-order-1.5 conditions violated: {listing}")


@dataclass(frozen=True)
class SRATableau:
    """An SRA method (additive noise). Stage matrices are strictly lower triangular, given row by row (row
    ``i`` holds ``i`` entries), like :class:`~sciml.solvers.ode.tableau.Tableau`.

    Args:
        name: short name (``"sosra"``).
        c0, c1: drift and diffusion abscissae (``c0 = A0 e``; ``c0[0] = 0``).
        a0, b0: drift-stage coefficients on ``f`` and on ``g · I_(1,0)/h``.
        alpha, beta1, beta2: output weights on ``h f``, ``g ΔW`` and ``g I_(1,0)/h``.
        deterministic_order: order of the drift part on ODEs.
        stiffness_stages: two drift stages ``(i, j)`` whose values give ``ρ ≈ ‖f_j − f_i‖ / ‖H0_j − H0_i‖``
            (the last two; at the same abscissa where the method has such a pair).
        citation: where the coefficients come from.

    Derived:
        stability_size: the real stability interval of the drift part (scales the stiffness index).

    Raises:
        ValueError: inconsistent shapes or a violated order condition.
    """

    name: str
    c0: tuple[float, ...]
    c1: tuple[float, ...]
    a0: tuple[tuple[float, ...], ...]
    b0: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    beta1: tuple[float, ...]
    beta2: tuple[float, ...]
    deterministic_order: int
    stiffness_stages: tuple[int, int]
    citation: str = ""
    strong_order: float = 1.5
    stability_size: float = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.alpha)
        if any(len(v) != s for v in (self.c0, self.c1, self.a0, self.b0, self.beta1, self.beta2)):
            raise ValueError(f"{self.name}: every coefficient vector and matrix needs {s} stages")
        A0, B0 = _square(self.a0, s), _square(self.b0, s)
        al, b1, b2, c1 = (np.array(v, dtype=float) for v in (self.alpha, self.beta1, self.beta2, self.c1))
        e = np.ones(s)
        _check(self.name, [
            ("Σα = 1", al @ e - 1), ("Σβ1 = 1", b1 @ e - 1), ("Σβ2 = 0", b2 @ e),
            ("α·B0e = 1", al @ B0 @ e - 1), ("α·A0e = 1/2", al @ A0 @ e - 0.5),
            ("α·(B0e)² = 3/2", al @ (B0 @ e) ** 2 - 1.5), ("β1·c1 = 1", b1 @ c1 - 1),
            ("β2·c1 = −1", b2 @ c1 + 1),
            ("c0[0] = 0", self.c0[0]), *((f"row {i} of a0 sums to c0[{i}]", A0[i].sum() - self.c0[i])
                                         for i in range(s)),
        ])  # fmt: skip
        if not all(0 <= i < s for i in self.stiffness_stages) or len(set(self.stiffness_stages)) != 2:
            raise ValueError(f"{self.name}: `stiffness_stages` must be two different stages")
        object.__setattr__(self, "stability_size", real_stability_boundary(A0, self.alpha))

    @property
    def n_stages(self) -> int:
        return len(self.alpha)


@dataclass(frozen=True)
class SRITableau:
    """An SRI method (Itô; scalar or diagonal noise). Rows as in :class:`SRATableau`.

    Args:
        name: short name (``"sosri"``).
        c0, c1: drift and diffusion abscissae (``c0 = A0 e``, ``c1 = A1 e``; ``c0[0] = c1[0] = 0``).
        a0, b0: coefficients of the drift stages ``H0`` on ``h f`` and ``χ2 g``.
        a1, b1: coefficients of the diffusion stages ``H1`` on ``h f`` and ``√h g``.
        alpha: weights on ``h f``; beta1..beta4: weights on ``ΔW g``, ``χ1 g``, ``χ2 g``, ``χ3 g``.
        deterministic_order: order of the drift part on ODEs.
        stiffness_stages: as for :class:`SRATableau`.
        citation: where the coefficients come from.

    Raises:
        ValueError: inconsistent shapes or a violated order condition.
    """

    name: str
    a0: tuple[tuple[float, ...], ...]
    b0: tuple[tuple[float, ...], ...]
    a1: tuple[tuple[float, ...], ...]
    b1: tuple[tuple[float, ...], ...]
    alpha: tuple[float, ...]
    beta1: tuple[float, ...]
    beta2: tuple[float, ...]
    beta3: tuple[float, ...]
    beta4: tuple[float, ...]
    deterministic_order: int
    stiffness_stages: tuple[int, int]
    citation: str = ""
    strong_order: float = 1.5
    c0: tuple[float, ...] = field(init=False)
    c1: tuple[float, ...] = field(init=False)
    stability_size: float = field(init=False)

    def __post_init__(self) -> None:
        s = len(self.alpha)
        vectors = (self.a0, self.b0, self.a1, self.b1, self.beta1, self.beta2, self.beta3, self.beta4)
        if any(len(v) != s for v in vectors):
            raise ValueError(f"{self.name}: every coefficient vector and matrix needs {s} stages")
        A0, B0, A1, B1 = (_square(m, s) for m in (self.a0, self.b0, self.a1, self.b1))
        al, b1, b2, b3, b4 = (np.array(v, dtype=float) for v in (self.alpha, self.beta1, self.beta2,
                                                                  self.beta3, self.beta4))  # fmt: skip
        e = np.ones(s)
        A0e, B0e, A1e, B1e = A0 @ e, B0 @ e, A1 @ e, B1 @ e
        B1B1e, A1B0e = B1 @ B1e, A1 @ B0e
        _check(self.name, [
            ("Σα = 1", al @ e - 1), ("Σβ1 = 1", b1 @ e - 1), ("Σβ2 = 0", b2 @ e), ("Σβ3 = 0", b3 @ e),
            ("Σβ4 = 0", b4 @ e), ("β1·B1e = 0", b1 @ B1e), ("β2·B1e = 1", b2 @ B1e - 1),
            ("β3·B1e = 0", b3 @ B1e), ("β4·B1e = 0", b4 @ B1e), ("α·A0e = 1/2", al @ A0e - 0.5),
            ("α·B0e = 1", al @ B0e - 1), ("α·(B0e)² = 3/2", al @ B0e**2 - 1.5), ("β1·A1e = 1", b1 @ A1e - 1),
            ("β2·A1e = 0", b2 @ A1e), ("β3·A1e = −1", b3 @ A1e + 1), ("β4·A1e = 0", b4 @ A1e),
            ("β1·(B1e)² = 1", b1 @ B1e**2 - 1), ("β2·(B1e)² = 0", b2 @ B1e**2),
            ("β3·(B1e)² = −1", b3 @ B1e**2 + 1), ("β4·(B1e)² = 2", b4 @ B1e**2 - 2),
            ("β1·B1B1e = 0", b1 @ B1B1e), ("β2·B1B1e = 0", b2 @ B1B1e), ("β3·B1B1e = 0", b3 @ B1B1e),
            ("β4·B1B1e = 1", b4 @ B1B1e - 1),
            ("½β1·A1B0e + ⅓β3·A1B0e = 0", 0.5 * b1 @ A1B0e + b3 @ A1B0e / 3),
        ])  # fmt: skip
        if not all(0 <= i < s for i in self.stiffness_stages) or len(set(self.stiffness_stages)) != 2:
            raise ValueError(f"{self.name}: `stiffness_stages` must be two different stages")
        object.__setattr__(self, "c0", tuple(float(x) for x in A0e))
        object.__setattr__(self, "c1", tuple(float(x) for x in A1e))
        object.__setattr__(self, "stability_size", real_stability_boundary(A0, self.alpha))

    @property
    def n_stages(self) -> int:
        return len(self.alpha)


_ROSSLER = "Rößler, SIAM J. Numer. Anal. 48 (2010) 922-952"
_SOS = "Rackauckas & Nie, IEEE HPEC 2020 (arXiv:1804.04344)"

SRA1 = SRATableau(
    name="sra1", c0=(0.0, 3 / 4), c1=(1.0, 0.0), a0=((), (3 / 4,)), b0=((), (3 / 2,)),
    alpha=(1 / 3, 2 / 3), beta1=(1.0, 0.0), beta2=(-1.0, 1.0),
    deterministic_order=2, stiffness_stages=(0, 1), citation=_ROSSLER,
)  # fmt: skip

SRA3 = SRATableau(
    name="sra3", c0=(0.0, 1.0, 1 / 2), c1=(1.0, 0.0, 0.0), a0=((), (1.0,), (1 / 4, 1 / 4)),
    b0=((), (0.0,), (1.0, 1 / 2)), alpha=(1 / 6, 1 / 6, 2 / 3), beta1=(1.0, 0.0, 0.0), beta2=(-1.0, 1.0, 0.0),
    deterministic_order=3, stiffness_stages=(1, 2), citation=_ROSSLER,
)  # fmt: skip

SOSRA = SRATableau(
    name="sosra", c0=(0.0, 0.6923962376159507, 1.0), c1=(0.0, 0.041248171110700504, 1.0),
    a0=((), (0.6923962376159507,), (-3.1609142252828395, 4.1609142252828395)),
    b0=((), (1.3371632704399763,), (1.442371048468624, 1.8632741501139225)),
    alpha=(0.2889874966892885, 0.6859880440839937, 0.025024459226717772),
    beta1=(-16.792534242221663, 17.514995785380226, 0.27753845684143835),
    beta2=(0.4237535769069274, 0.6010381474428539, -1.0247917243497813),
    deterministic_order=2, stiffness_stages=(1, 2), citation=_SOS,
)  # fmt: skip

SOSRA2 = SRATableau(
    name="sosra2", c0=(0.0, 1.0, 1.0), c1=(0.0, 1.0, 1.0),
    a0=((), (1.0,), (0.9511849235504364, 0.04881507644956362)),
    b0=((), (0.7686101171003622,), (0.43886792994934987, 0.7490415909204886)),
    alpha=(0.4999999999999998, -0.9683897375354181, 1.4683897375354185),
    beta1=(0.0, 0.92438032145683, 0.07561967854316998),
    beta2=(1.0, -0.8169981105823436, -0.18300188941765633),
    deterministic_order=2, stiffness_stages=(1, 2), citation=_SOS,
)  # fmt: skip

SRIW1 = SRITableau(
    name="sriw1",
    a0=((), (3 / 4,), (0.0, 0.0), (0.0, 0.0, 0.0)), b0=((), (3 / 2,), (0.0, 0.0), (0.0, 0.0, 0.0)),
    a1=((), (1 / 4,), (1.0, 0.0), (0.0, 0.0, 1 / 4)), b1=((), (1 / 2,), (-1.0, 0.0), (-5.0, 3.0, 1 / 2)),
    alpha=(1 / 3, 2 / 3, 0.0, 0.0), beta1=(-1.0, 4 / 3, 2 / 3, 0.0), beta2=(-1.0, 4 / 3, -1 / 3, 0.0),
    beta3=(2.0, -4 / 3, -2 / 3, 0.0), beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    deterministic_order=2, stiffness_stages=(0, 1), citation=_ROSSLER + " (SRI1)",
)  # fmt: skip

SRIW2 = SRITableau(
    name="sriw2",
    a0=((), (1.0,), (1 / 4, 1 / 4), (0.0, 0.0, 0.0)), b0=((), (0.0,), (1.0, 1 / 2), (0.0, 0.0, 0.0)),
    a1=((), (1 / 4,), (1.0, 0.0), (0.0, 0.0, 1 / 4)), b1=((), (-1 / 2,), (1.0, 0.0), (2.0, -1.0, 1 / 2)),
    alpha=(1 / 6, 1 / 6, 2 / 3, 0.0), beta1=(-1.0, 4 / 3, 2 / 3, 0.0), beta2=(1.0, -4 / 3, 1 / 3, 0.0),
    beta3=(2.0, -4 / 3, -2 / 3, 0.0), beta4=(-2.0, 5 / 3, -2 / 3, 1.0),
    deterministic_order=3, stiffness_stages=(1, 2), citation=_ROSSLER + " (SRI2)",
)  # fmt: skip

SOSRI = SRITableau(
    name="sosri",
    a0=((), (-0.04199224421316468,), (2.842612915017106, -2.0527723684000727),
        (4.338237071435815, -2.8895936137439793, 2.3017575594644466)),
    b0=((), (-0.21641093549612528,), (1.5336352863679572, 0.26066223492647056),
        (-1.0536037558179159, 1.7015284721089472, -0.20725685784180017)),
    a1=((), (0.26204282091330466,), (0.20903646383505375, -0.1502377115150361),
        (0.05836595312746999, 0.6149440396332373, 0.08535117634046772)),
    b1=((), (-0.5119011827621657,), (2.67767339866713, -4.9395031322250995),
        (0.15580956238299215, 3.2361551006624674, -1.4223118283355949)),
    alpha=(1.140099274172029, -0.6401334255743456, 0.4736296532772559, 0.026404498125060714),
    beta1=(-1.8453464565104432, 2.688764531100726, -0.2523866501071323, 0.40896857551684956),
    beta2=(0.4969658141589478, -0.5771202869753592, -0.12919702470322217, 0.2093514975196336),
    beta3=(2.8453464565104425, -2.688764531100725, 0.2523866501071322, -0.40896857551684945),
    beta4=(0.11522663875443433, -0.57877086147738, 0.2857851028163886, 0.17775911990655704),
    deterministic_order=2, stiffness_stages=(2, 3), citation=_SOS,
)  # fmt: skip

SOSRI2 = SRITableau(
    name="sosri2",
    a0=((), (0.13804532298278663,), (0.5818361298250374, 0.4181638701749618),
        (0.4670018408674211, 0.8046204792187386, -0.27162232008616016)),
    b0=((), (0.08852381537667678,), (1.0317752458971061, 0.4563552922077882),
        (1.73078280444124, -0.46089678470929774, -0.9637509618944188)),
    a1=((), (0.45605532163856893,), (0.7555807846451692, 0.24441921535482677),
        (0.6981181143266059, 0.3453277086024727, -0.04344582292908241)),
    b1=((), (0.6753186815412179,), (-0.07452812525785148, -0.49783736486149366),
        (-0.5591906709928903, 0.022696571806569924, -0.8984927888368557)),
    alpha=(-0.15036858140642623, 0.7545275856696072, 0.686995463807979, -0.2911544680711602),
    beta1=(-0.45315689727309133, 0.8330937231303951, 0.3792843195533544, 0.24077885458934192),
    beta2=(-0.4994383733810986, 0.9181786186154077, -0.25613778661003145, -0.16260245862427797),
    beta3=(1.4531568972730915, -0.8330937231303933, -0.3792843195533583, -0.24077885458934023),
    beta4=(-0.4976090683622265, 0.9148155835648892, -1.4102107084476505, 0.9930041932449877),
    deterministic_order=2, stiffness_stages=(2, 3), citation=_SOS,
)  # fmt: skip

#: name -> tableau of every SRA method (additive noise)
SRA_TABLEAUS: dict[str, SRATableau] = {t.name: t for t in (SRA1, SRA3, SOSRA, SOSRA2)}
#: name -> tableau of every SRI method (Itô, scalar/diagonal noise)
SRI_TABLEAUS: dict[str, SRITableau] = {t.name: t for t in (SRIW1, SRIW2, SOSRI, SOSRI2)}

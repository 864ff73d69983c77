"""The two-layer QG problem and its pseudo-spectral solver (sciml.problems.qg, sciml.solvers.spectral.qg).

Resolution: 32 × 32 (16 × 16 for the linear growth rates) on a square of side 10π (Rd = 1, k_d at mode 5).
"""

import math

import numpy as np
import pytest
import torch
from sciml.problems.qg import QGProblem, qg_initial_condition
from sciml.solvers.spectral.qg import QGStepper, energy_spectrum, solve_qg

L = 10 * math.pi


def test_replace_is_one_line_and_validation_names_the_argument():
    truth = QGProblem(n=32, L=L)
    model = truth.replace(rek=0.0)
    assert model.rek == 0.0 and truth.rek == pytest.approx(0.347) and model.beta == truth.beta
    with pytest.raises(ValueError, match="rd must be positive"):
        truth.replace(rd=0.0)
    with pytest.raises(ValueError, match="n must be an even"):
        truth.replace(n=31)
    with pytest.raises(ValueError, match="q0 must have shape"):
        truth.replace(q0=np.zeros((2, 8, 8)))
    with pytest.raises(ValueError, match="shape"):
        QGStepper(truth, 0.1).advance(np.zeros((32, 32)), 1)


def test_inversion_round_trip():
    p = QGProblem(n=32, L=L, delta=0.4, rd=1.3)
    q_hat = torch.fft.rfft2(torch.as_tensor(qg_initial_condition(p, amplitude=1.0)))
    q_hat[..., 0, 0] = 0
    back = p.pv(p.invert(q_hat))
    assert torch.allclose(back, q_hat, atol=1e-12 * float(q_hat.abs().max()))


def test_inviscid_unforced_conserves_energy_and_enstrophy():
    """No shear, drag or hyperviscosity (β = 0.5 kept): energy and enstrophy drift only by the time error.

    Over t = 1 from unit-RMS random PV: |drift| < 1e-7 at dt = 0.02, and it shrinks by more than 8× when
    dt halves (ETDRK4 is fourth order; the 2/3 dealiasing keeps the semi-discrete invariants exact).
    """
    p = QGProblem(n=32, L=L, U1=0.0, U2=0.0, rek=0.0, nu=0.0, beta=0.5)
    q0 = torch.as_tensor(qg_initial_condition(p, amplitude=1.0))
    mask = QGStepper(p, 0.1).mask  # start on the dealiased modes
    q0 = torch.fft.irfft2(torch.fft.rfft2(q0) * mask, s=(32, 32))
    E0, Z0 = p.energy(q0), p.enstrophy(q0)
    drifts = []
    for dt in (0.02, 0.01):
        q = QGStepper(p, dt).advance(q0, int(round(1 / dt)))
        drifts.append((abs(float(p.energy(q) / E0 - 1)), abs(float(p.enstrophy(q) / Z0 - 1))))
    assert drifts[0][0] < 1e-7 and drifts[0][1] < 1e-7
    assert drifts[1][0] < drifts[0][0] / 8 and drifts[1][1] < drifts[0][1] / 8


def _unstable_mode(p, k):
    """Grid PV (2, n, n) of the growing normal mode exp(ik(x − ct)) from the 2×2 dispersion relation."""
    K2, (F1, F2), (Q1, Q2) = k * k, (p.F1, p.F2), p.Qy
    a11, a12, a21, a22 = -(K2 + F1), F1, F2, -(K2 + F2)
    A = a11 * a22 - a12 * a21
    B = -(p.U1 + p.U2) * A - Q1 * a22 - Q2 * a11
    C = p.U1 * p.U2 * A + p.U1 * a11 * Q2 + p.U2 * a22 * Q1 + Q1 * Q2
    c = np.roots([A, B, C])
    c = c[np.argmax(c.imag)]
    ratio = -((p.U1 - c) * a11 + Q1) / ((p.U1 - c) * a12)  # ψ2 / ψ1
    x = np.arange(p.n) * p.dx
    X, _ = np.meshgrid(x, x, indexing="xy")
    wave = np.exp(1j * k * X)
    psi1, psi2 = wave, ratio * wave
    q1 = -K2 * psi1 + F1 * (psi2 - psi1)
    q2 = -K2 * psi2 + F2 * (psi1 - psi2)
    return 1e-3 * np.stack([q1.real, q2.real])


@pytest.mark.parametrize("delta, beta, mode", [(1.0, 0.0, 3), (0.25, 0.135, 4), (0.25, 0.135, 3)])
def test_linear_baroclinic_growth_rate_matches_closed_form(delta, beta, mode):
    """Linearised model at 16² (advection 0, no drag/viscosity), started on the unstable normal mode: its
    energy grows at twice the closed-form Phillips growth rate, within 0.1 %."""
    p = QGProblem(n=16, L=L, delta=delta, beta=beta, rek=0.0, nu=0.0, advection=0.0)
    k = 2 * math.pi / L * mode
    expected = p.phillips_growth_rate(k)
    if delta == 1.0 and beta == 0.0:  # the textbook form for equal layers, U = ±ΔU/2
        assert expected == pytest.approx(k * 0.5 * math.sqrt((2 * p.F1 - k * k) / (2 * p.F1 + k * k)))
    assert expected > 0.02
    q0 = torch.as_tensor(_unstable_mode(p, k))
    q1 = QGStepper(p, 0.1).advance(q0, 100)
    rate = math.log(float(p.energy(q1) / p.energy(q0))) / 2 / 10.0
    assert rate == pytest.approx(expected, rel=1e-3)


def test_added_linear_symbol_is_integrated_exactly():
    """With the explicit part zero (no advection, mean flow, β or drag), one step multiplies each Fourier
    mode by ``exp((−ν κ⁸ + σ_i) dt)`` exactly, for a per-layer added symbol ``σ_i`` as stiff as
    ``|σ| dt ≈ 140``; a symbol of the wrong shape is refused by name."""
    p = QGProblem(n=32, L=L, beta=0.0, U1=0.0, U2=0.0, rek=0.0, advection=0.0, nu=2e-3)
    _, _, k2 = p.wavenumbers()
    sigma = torch.stack([-1e-1 * k2**4, 0.3 * k2 - 0.5]).to(torch.complex128)
    assert float((sigma.abs() * 0.1).max()) > 100
    q0 = torch.as_tensor(qg_initial_condition(p, amplitude=1.0))
    q1 = QGStepper(p, 0.1, linear=sigma).advance(q0, 1)
    exact = torch.fft.irfft2(torch.fft.rfft2(q0) * torch.exp((-p.nu * k2**4 + sigma) * 0.1), s=(32, 32))
    assert torch.allclose(q1, exact, atol=1e-13 * float(q0.abs().max()))
    with pytest.raises(ValueError, match="linear must broadcast"):
        QGStepper(p, 0.1, linear=torch.zeros(3, 32, 17))


def test_short_wave_cutoff_is_stable():
    """Equal layers, β = 0: waves with K² > 2F are neutral (closed form 0)."""
    p = QGProblem(n=32, L=L, delta=1.0, beta=0.0)
    assert p.phillips_growth_rate(1.5) == 0.0  # K² = 2.25 > 2F = 1


def test_batched_ensemble_steps_like_single_states():
    p = QGProblem(n=32, L=L, nu=2e-3)
    q = torch.stack([torch.as_tensor(qg_initial_condition(p, seed=s, amplitude=1.0)) for s in range(3)])
    st = QGStepper(p, 0.05)
    batched = st.advance(q, 5)
    single = torch.stack([st.advance(q[i], 5) for i in range(3)])
    assert torch.allclose(batched, single, atol=1e-13)


@pytest.mark.slow
def test_forced_dissipative_equilibrium_statistics():
    """Spin-up from small noise to baroclinic turbulence (32², dt = 0.1, t = 400, ~40 s):
    energy statistically steady (means of [250, 325] and [325, 400] within 25 %), mean energy in [0.3, 5]
    (units of (U1 − U2)²), and a kinetic-energy spectrum that peaks near the deformation scale and falls
    at least as steeply as k⁻³ (the enstrophy-cascade range, steepened by the hyperviscosity)."""
    p = QGProblem(n=32, L=L, nu=2e-3)
    ts = np.arange(0.0, 400.01, 5.0)
    sol = solve_qg(p, 0.1, ts)
    e = sol.energy.numpy()
    first, second = e[(ts >= 250) & (ts < 325)].mean(), e[ts >= 325].mean()
    assert abs(first / second - 1) < 0.25
    assert 0.3 < second < 5
    k, ek = energy_spectrum(p, sol.qs[ts >= 250])
    peak = int(np.argmax(ek))
    assert 1 <= peak <= 5  # k_d at mode 5
    band = slice(peak + 2, 10)
    slope = np.polyfit(np.log(k[band]), np.log(ek[band]), 1)[0]
    assert slope < -3


# -- MEDIDA on QG ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_qg_pairs():
    """A nonlinear (unit-RMS PV) 16² state, smoothed by 20 steps, and 4 pairs dt = 0.1 apart."""
    from sciml.medida.qg import QG_DT

    truth = QGProblem(n=16, L=L, nu=2e-2)
    q = torch.stack([torch.as_tensor(qg_initial_condition(truth, seed=s, amplitude=1.0)) for s in range(4)])
    st = QGStepper(truth, QG_DT)
    q_prev = st.advance(q, 20)
    return truth, q_prev, st.advance(q_prev, 1)


@pytest.mark.parametrize(
    "name",
    ["qg-advection", "qg-rd", "qg-beta", "qg-drag", "qg-hyperviscosity"],
)
def test_medida_qg_noise_free_recovers_exactly_the_true_terms(small_qg_pairs, name):
    """Full noise-free pairs: exactly the true terms, coefficients to round-off (≤ 1e-8 relative; a ∇⁸q
    correction is integrated exactly like the truth's ν∇⁸q)."""
    from sciml.medida.qg import QG_CASES, discover_qg

    truth, q_prev, q_next = small_qg_pairs
    case = QG_CASES[name]
    model = case.model(truth)
    fit, history = discover_qg(model, q_prev.numpy(), q_next.numpy())
    true = case.true_correction(truth)
    assert set(fit.terms) == set(true)
    for k, v in true.items():
        assert fit.terms[k] == pytest.approx(v, rel=1e-8)
    assert len(history) <= 6 and history[-1]["converged"]


def test_medida_qg_says_when_its_rounds_run_out(small_qg_pairs):
    """One round cannot confirm the terms (the first round's change is infinite): a warning naming
    max_iterations, and the history says the rounds did not settle."""
    from sciml.medida.qg import QG_CASES, discover_qg

    truth, q_prev, q_next = small_qg_pairs
    with pytest.warns(UserWarning, match="max_iterations=1"):
        _, history = discover_qg(
            QG_CASES["qg-beta"].model(truth), q_prev.numpy(), q_next.numpy(), max_iterations=1
        )
    assert history[-1]["converged"] is False


def test_corrected_hyperviscosity_reproduces_the_stiff_truth_step():
    """64² with the truth's ν = 2e-3 (largest resolved ``ν κ⁸ dt`` ≈ 350): the model without ν plus the
    correction ``−ν ∇⁸q`` steps exactly as the truth does (its ∇⁸ term joins the exact linear part)."""
    from sciml.medida.qg import QG_CASES, QG_DT, corrected_stepper, qg_library, qg_truth

    truth = qg_truth(64)
    case = QG_CASES["qg-hyperviscosity"]
    library = qg_library()
    w = np.zeros(len(library))
    for name, value in case.true_correction(truth).items():
        w[library.names.index(name)] = value
    q0 = torch.as_tensor(qg_initial_condition(truth, amplitude=1.0))
    q_truth = QGStepper(truth, QG_DT).advance(q0, 1)
    q_model = corrected_stepper(case.model(truth), w, QG_DT).advance(q0, 1)
    assert float((q_model - q_truth).norm() / (q_truth - q0).norm()) < 1e-12


def test_medida_qg_finds_the_stiff_hyperviscosity_exactly():
    """64², ν = 2e-3 (the bench's truth), one full pair from a smoothed random state: exactly ν∇⁸ in both
    layers to round-off (with the ∇⁸ term explicit, as in an earlier version, this pair gave 7 terms)."""
    from sciml.medida.qg import QG_CASES, QG_DT, discover_qg, qg_truth

    truth = qg_truth(64)
    st = QGStepper(truth, QG_DT)
    q_prev = st.advance(torch.as_tensor(qg_initial_condition(truth, amplitude=1.0))[None], 20)
    case = QG_CASES["qg-hyperviscosity"]
    fit, _ = discover_qg(case.model(truth), q_prev.numpy(), st.advance(q_prev, 1).numpy())
    true = case.true_correction(truth)
    assert set(fit.terms) == set(true)
    for k, v in true.items():
        assert fit.terms[k] == pytest.approx(v, rel=1e-8)


def test_medida_qg_perfect_model_finds_nothing_and_bad_input_is_named(small_qg_pairs):
    from sciml.medida.qg import discover_qg

    truth, q_prev, q_next = small_qg_pairs
    fit, _ = discover_qg(truth, q_prev.numpy(), q_next.numpy())
    assert fit.terms == {}
    with pytest.raises(ValueError, match="shape"):
        discover_qg(truth, q_prev.numpy()[:, 0], q_next.numpy()[:, 0])


def test_medida_cli_rejects_an_unknown_qg_case(capsys):
    from sciml.cli import main

    with pytest.raises(SystemExit):
        main(["medida", "--case", "qg-nothing"])
    assert "qg-beta" in capsys.readouterr().err

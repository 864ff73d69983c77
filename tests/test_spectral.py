"""Semilinear periodic problems and the ETDRK4 spectral solver: exactness, convergence order, scipy
agreement, the KS Lyapunov exponent, the HDF5 reference cache, bad input."""

import math

import numpy as np
import pytest
import torch
from sciml.problems.semilinear import (
    SemilinearPeriodicProblem,
    evaluate_term,
    kuramoto_sivashinsky,
    parse_term,
    term_name,
)
from sciml.solvers.spectral import (
    ETDRK4,
    cached_solve,
    etdrk4_coefficients,
    largest_lyapunov_exponent,
    solve_spectral,
)
from scipy.integrate import solve_ivp


def allen_cahn(n=256):
    """The PINN suite's Allen–Cahn: u_t = 1e-4 u_xx + 5u - 5u^3 on [-1, 1), u0 = x^2 cos(pi x)."""
    return SemilinearPeriodicProblem(
        {(0, 2): 1e-4, (0, 0): 5.0, (2, 0): -5.0},
        n=n,
        x0=-1.0,
        length=2.0,
        u0=lambda x: x**2 * np.cos(np.pi * x),
        t_span=(0.0, 1.0),
        name="allen-cahn",
    )


def burgers(nu=0.01 / np.pi, n=1024):
    """Viscous Burgers u_t = nu u_xx - u u_x on [-1, 1), u0 = -sin(pi x) (nu = 0.01/pi in the suite)."""
    return SemilinearPeriodicProblem(
        {(0, 2): nu, (1, 1): -1.0}, n=n, x0=-1.0, length=2.0, u0=lambda x: -np.sin(np.pi * x), name="burgers"
    )


def slope(dts, errors):
    return np.polyfit(np.log(dts), np.log(errors), 1)[0]


# -- the problem class ----------------------------------------------------------------------------------


def test_term_names_round_trip_and_the_three_equations():
    names = [term_name(p, q) for p in range(5) for q in range(5)]
    assert [parse_term(s) for s in names] == [(p, q) for p in range(5) for q in range(5)]
    assert term_name(1, 1) == "u*u_x" and term_name(2, 1) == "u^2*u_x" and term_name(2, 0) == "u^3"
    ks = kuramoto_sivashinsky()
    assert dict(ks.terms) == {(1, 1): -1.0, (0, 2): -1.0, (0, 4): -1.0}
    assert (ks.n, ks.x0, ks.length) == (1024, -50.0, 100.0)
    x = ks.x
    np.testing.assert_allclose(
        ks.initial_condition(), -np.cos(2 * np.pi * x / 100) * (1 + np.sin(-2 * np.pi * x / 100))
    )
    assert ks.equation("=0") == "u_t + u*u_x + u_xx + u_xxxx = 0"
    assert allen_cahn().equation() == "u_t = -5*u^3 + 5*u + 0.0001*u_xx"
    assert burgers().equation() == "u_t = -u*u_x + 0.003183*u_xx"
    # imperfect models are one line; zero coefficients drop out
    imperfect = ks.update_terms({"u_xxxx": 0.0, (0, 3): -0.5})
    assert dict(imperfect.terms) == {(0, 2): -1.0, (0, 3): -0.5, (1, 1): -1.0}
    assert ks.replace(n=64).n == 64 and dict(ks.replace(n=64).terms) == dict(ks.terms)
    assert dict(kuramoto_sivashinsky(extra={"u^2*u_x": 1.5}).terms)[(2, 1)] == -1.5


def test_rhs_matches_analytic_derivatives():
    """Each term of u = sin(a x) + 0.5 cos(2 a x) against its closed form."""
    L = 2 * np.pi * 3
    prob = SemilinearPeriodicProblem(
        {(0, 1): 0.3, (0, 2): -1.0, (0, 3): 0.2, (0, 4): -1.0, (0, 0): 0.5, (1, 1): -1.0, (2, 1): 0.7,
         (1, 2): 0.4, (2, 0): -2.0},
        n=128, x0=0.0, length=L, u0=np.zeros(128),
    )  # fmt: skip
    x = prob.x
    a = 2 * np.pi / L * 2
    u = np.sin(a * x) + 0.5 * np.cos(2 * a * x)
    d = [u]
    d.append(a * np.cos(a * x) - a * np.sin(2 * a * x))
    d.append(-(a**2) * np.sin(a * x) - 2 * a**2 * np.cos(2 * a * x))
    d.append(-(a**3) * np.cos(a * x) + 4 * a**3 * np.sin(2 * a * x))
    d.append(a**4 * np.sin(a * x) + 8 * a**4 * np.cos(2 * a * x))
    exact = 0.3 * d[1] - d[2] + 0.2 * d[3] - d[4] + 0.5 * u - u * d[1] + 0.7 * u**2 * d[1]
    exact += 0.4 * u * d[2] - 2.0 * u**3
    np.testing.assert_allclose(prob.rhs(u).numpy(), exact, atol=1e-10 * np.abs(exact).max())
    for (p, q), _ in prob.terms.items():
        value = evaluate_term(torch.as_tensor(u), p, q, L).numpy()
        np.testing.assert_allclose(value, u**p * d[q], atol=1e-10 * max(1, np.abs(u**p * d[q]).max()))


def test_problem_rejects_bad_input():
    good = dict(n=16, x0=0.0, length=1.0, u0=np.zeros(16))
    with pytest.raises(ValueError, match="term key"):
        SemilinearPeriodicProblem({(1, -1): 1.0}, **good)
    with pytest.raises(ValueError, match="not a product"):
        SemilinearPeriodicProblem({"sin(u)": 1.0}, **good)
    with pytest.raises(ValueError, match="finite"):
        SemilinearPeriodicProblem({(0, 2): math.nan}, **good)
    with pytest.raises(ValueError, match="n must be"):
        SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "n": 2})
    with pytest.raises(ValueError, match="length"):
        SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "length": 0.0})
    with pytest.raises(ValueError, match="shape"):
        SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "u0": np.zeros(15)})
    with pytest.raises(ValueError, match="NaN"):
        SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "u0": np.full(16, np.nan)})
    with pytest.raises(ValueError, match="t_span"):
        SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "t_span": (1.0, 1.0)})
    bad_u0 = SemilinearPeriodicProblem({(0, 2): 1.0}, **{**good, "u0": lambda x: np.full_like(x, np.inf)})
    with pytest.raises(ValueError, match="NaN or inf"):
        bad_u0.initial_condition()
    with pytest.raises(ValueError, match="grid values"):
        kuramoto_sivashinsky(n=64).rhs(np.zeros(63))


# -- ETDRK4 ---------------------------------------------------------------------------------------------


def test_contour_coefficients_match_closed_forms():
    """Where the closed forms are well conditioned (|hL| >= 1) the contour integral reproduces them."""
    hL = torch.tensor([-1.0, -3.0, -40.0, 2.0, 1.5 + 2.0j, -2.0 - 5.0j], dtype=torch.complex128)
    for symbol in (hL.real.to(torch.complex128), hL):
        c = etdrk4_coefficients(symbol, 1.0)
        z = symbol
        np.testing.assert_allclose(c.Q, (torch.exp(z / 2) - 1) / z, rtol=1e-10)
        f1 = (-4 - z + torch.exp(z) * (4 - 3 * z + z**2)) / z**3
        f2 = (2 + z + torch.exp(z) * (z - 2)) / z**3
        f3 = (-4 - 3 * z - z**2 + torch.exp(z) * (4 - z)) / z**3
        for got, want in ((c.f1, f1), (c.f2, f2), (c.f3, f3)):
            np.testing.assert_allclose(got, want, rtol=1e-9)
    # and at hL = 0 the limits 1/2, 1/6, 1/6, 1/6 (where the closed forms cancel catastrophically)
    c = etdrk4_coefficients(torch.zeros(1, dtype=torch.complex128), 1.0)
    np.testing.assert_allclose([c.Q.real[0], c.f1.real[0], c.f2.real[0], c.f3.real[0]], [0.5] + [1 / 6] * 3)


def test_linear_problems_are_integrated_exactly():
    """No nonlinear term: ETDRK4 is exp(hL), exact for any step (odd derivatives too)."""
    prob = SemilinearPeriodicProblem(
        {(0, 1): 0.7, (0, 2): 0.05, (0, 3): -0.01},
        n=64,
        x0=0.0,
        length=2 * np.pi,
        u0=lambda x: np.exp(np.sin(x)),
    )
    u0 = prob.initial_condition()
    T = 1.3
    k = np.fft.rfftfreq(64, 1 / 64)
    exact = np.fft.irfft(np.exp(T * (0.7j * k - 0.05 * k**2 + 0.01j * k**3)) * np.fft.rfft(u0), n=64)
    got = solve_spectral(prob, 0.325, saveat=[T]).us[-1].numpy()
    np.testing.assert_allclose(got, exact, atol=1e-12)


@pytest.mark.parametrize(
    "make, T, dts",
    [
        (lambda: allen_cahn(128), 1.0, [0.02, 0.01, 0.005, 0.0025]),
        (lambda: burgers(0.05, 128), 0.5, [0.02, 0.01, 0.005, 0.0025]),
        (  # a dispersive, complex symbol: u_t = -0.05 u_xxx - 1e-3 u_xxxx - u u_x
            lambda: SemilinearPeriodicProblem(
                {(0, 3): -0.05, (0, 4): -1e-3, (1, 1): -1.0}, n=128, x0=-1.0, length=2.0,
                u0=lambda x: np.cos(np.pi * x),
            ),
            0.5,
            [0.02, 0.01, 0.005, 0.0025],
        ),
        # KS (L = 22): order 3-3.5 at large steps, 4 in the asymptotic range (stiff order reduction)
        (lambda: kuramoto_sivashinsky(length=22.0, n=64), 10.0, [1 / 16, 1 / 32, 1 / 64, 1 / 128]),
    ],
)  # fmt: skip
def test_etdrk4_is_fourth_order(make, T, dts):
    prob = make()
    ref = solve_spectral(prob, dts[-1] / 8, saveat=[T]).us[-1]
    errors = [float((solve_spectral(prob, dt, saveat=[T]).us[-1] - ref).abs().max()) for dt in dts]
    assert slope(dts, errors) > 3.6, errors


def test_etdrk4_agrees_with_scipy_dop853():
    prob = burgers(0.1, 32)
    T = 0.8
    sol = solve_ivp(
        lambda t, u: prob.rhs(u).numpy(),
        (0, T),
        prob.initial_condition(),
        method="DOP853",
        rtol=1e-12,
        atol=1e-12,
    )
    assert sol.success
    got = solve_spectral(prob, 1e-3, saveat=[T]).us[-1].numpy()
    np.testing.assert_allclose(got, sol.y[:, -1], atol=1e-10)


def test_ensembles_step_as_a_batch():
    prob = kuramoto_sivashinsky(length=22.0, n=64)
    stepper = ETDRK4(prob, 0.1)
    u = torch.as_tensor(prob.initial_condition()) + 0.1 * torch.randn(
        5, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    batch = stepper.advance(u, 10)
    one = torch.stack([stepper.advance(row, 10) for row in u])
    torch.testing.assert_close(batch, one, rtol=0, atol=1e-13)
    assert abs(float(batch.mean(-1).sub(u.mean(-1)).abs().max())) < 1e-13  # the mean is conserved


def test_dealiasing_changes_only_an_underresolved_run():
    prob = burgers(0.05, 64)
    plain = solve_spectral(prob, 1e-3, saveat=[0.3]).us[-1]
    dealiased = solve_spectral(prob, 1e-3, saveat=[0.3], dealias=True).us[-1]
    assert float((plain - dealiased).abs().max()) < 1e-6  # resolved: same answer


def test_ks_lyapunov_exponent_l22_quick():
    """A short run: the estimate is already in the right range (the slow test pins it down)."""
    est = largest_lyapunov_exponent(
        kuramoto_sivashinsky(length=22.0, n=64), 0.25, t_average=1500, n_trajectories=8
    )
    assert 0.035 < est.exponent < 0.065, est


@pytest.mark.slow
def test_ks_lyapunov_exponent_l22():
    est = largest_lyapunov_exponent(
        kuramoto_sivashinsky(length=22.0, n=64), 0.1, t_transient=1000, t_average=20000, n_trajectories=16
    )
    assert 0.043 <= est.exponent <= 0.050, est


def test_blow_up_is_reported_not_silent():
    imperfect = kuramoto_sivashinsky(n=256).update_terms({"u_xxxx": 0.0})  # anti-diffusion, no damping
    sol = solve_spectral(imperfect, 1e-2, saveat=[100.0, 150.0], throw=False)
    assert not sol.success and "non-finite" in sol.message and torch.isnan(sol.us[-1]).all()
    with pytest.raises(FloatingPointError, match="ill-posed"):
        solve_spectral(imperfect, 1e-2, saveat=[150.0])


def test_solver_rejects_bad_input():
    ks = kuramoto_sivashinsky(length=22.0, n=64)
    with pytest.raises(ValueError, match="dt"):
        ETDRK4(ks, 0.0)
    with pytest.raises(TypeError, match="SemilinearPeriodicProblem"):
        ETDRK4("ks", 0.1)
    with pytest.raises(ValueError, match="step grid"):
        solve_spectral(ks, 0.3, saveat=[1.0])
    with pytest.raises(ValueError, match="sorted"):
        solve_spectral(ks, 0.1, saveat=[1.0, 0.5])
    with pytest.raises(ValueError, match="grid values"):
        ETDRK4(ks, 0.1).step(torch.zeros(3, 65))
    u0 = ks.initial_condition()
    u0[3] = float("nan")
    with pytest.raises(ValueError, match="u0.*finite"):
        solve_spectral(ks, 0.25, u0=u0, saveat=[1.0])
    with pytest.raises(ValueError, match="n_steps"):
        ETDRK4(ks, 0.1).advance(ks.initial_condition(), -3)


def test_cached_solve_stores_parameters_and_reuses(tmp_path, monkeypatch):
    import sciml.solvers.spectral.reference as reference

    prob = kuramoto_sivashinsky(length=22.0, n=32)
    first = cached_solve(prob, 0.1, [1.0, 2.0], directory=tmp_path, progress=False)
    calls = []
    monkeypatch.setattr(reference, "solve_spectral", lambda *a, **k: calls.append(1))
    again = cached_solve(prob, 0.1, [1.0, 2.0], directory=tmp_path, progress=False)
    assert not calls
    np.testing.assert_array_equal(first["u"], again["u"])
    monkeypatch.undo()
    other = cached_solve(
        prob.update_terms({"u_xx": -0.9}), 0.1, [1.0, 2.0], directory=tmp_path, progress=False
    )
    assert not np.allclose(other["u"], first["u"])
    assert len(list(tmp_path.glob("*.h5"))) == 2

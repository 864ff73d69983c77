"""A new user's reports on the spectral solver and MEDIDA: silent wrong answers, hangs and unclear errors.

Each test runs on a small system (KS at L = 22, N = 64; QG at 16²) in well under three seconds.
"""

import functools
import math
import warnings

import numpy as np
import pytest
import torch
from sciml.problems.semilinear import SemilinearPeriodicProblem, ks_initial_condition, kuramoto_sivashinsky
from sciml.solvers.spectral import ETDRK4, largest_lyapunov_exponent, solve_spectral

from sciml.medida import Observations, discover

pytestmark = pytest.mark.usefixtures("one_thread")

DT = 1e-3


@functools.cache
def _ks22_pair(extra: tuple = (), c: tuple = (1.0, 1.0, 1.0)) -> tuple:
    """``(truth, pair)``: KS ``c`` at L = 22, N = 64 (with ``extra`` terms), spun up to t = 50, one pair."""
    truth = kuramoto_sivashinsky(c, extra=dict(extra), length=22.0, n=64, t_span=(0, 50))
    u = solve_spectral(truth, 0.01, saveat=[50.0]).us[-1]
    pair = solve_spectral(truth.replace(t_span=(0, DT)), DT, u0=u, saveat=[0, DT]).us.numpy()
    return truth, pair


def _no_warnings(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return fn(*args, **kwargs)


# -- 1. a real but small missing term on noise-free data ----------------------------------------------------


def test_noise_free_small_missing_term_is_refitted_not_dropped():
    truth, pair = _ks22_pair((("u_xxx", 0.05),))
    obs = Observations(pair, dt=DT, length=22.0, noise_std=0.0)
    model = truth.update_terms({"u_xx": 0, "u_xxx": 0})
    found = _no_warnings(discover, model, obs)
    assert set(found.terms) == {"u_xx", "u_xxx"}
    assert found.terms["u_xx"] == pytest.approx(-1.0, rel=1e-9)
    assert found.terms["u_xxx"] == pytest.approx(-0.05, rel=1e-8)
    assert found.threshold_lambda == 1e4 and found.converged and found.residual < 1e-9
    assert found.history[-1]["threshold_lambda"] == 1e4
    # a threshold the user chose is kept, with a warning that names it
    with pytest.warns(UserWarning, match="threshold_lambda=100 likely pruned"):
        kept = discover(model, obs, threshold_lambda=100.0)
    assert set(kept.terms) == {"u_xx"} and kept.residual > 1e-3


def test_qg_noise_free_small_missing_term_is_refitted():
    from sciml.problems.qg import QGProblem, qg_initial_condition
    from sciml.solvers.spectral.qg import QGStepper

    from sciml.medida.qg import discover_qg

    truth = QGProblem(n=16, L=10 * math.pi, beta=0.3, nu=2e-3)
    stepper = QGStepper(truth, 0.1)
    q = stepper.advance(torch.as_tensor(qg_initial_condition(truth, amplitude=0.5)), 300)
    prev = []
    for _ in range(4):
        q = stepper.advance(q, 20)
        prev.append(q)
    prev = torch.stack(prev)
    nxt = stepper.advance(prev, 1)
    fit, history = _no_warnings(discover_qg, truth.replace(U2=0.2), prev.numpy(), nxt.numpy(), 0.1)
    assert set(fit.terms) == {"dpsi1/dx", "dpsi2/dx", "dq2/dx"}
    assert fit.terms["dq2/dx"] == pytest.approx(0.2, rel=1e-6)
    assert history[-1]["converged"] and history[-1]["residual"] < 1e-6
    assert history[-1]["threshold_lambda"] == 1e4


# -- 2. discover reports whether its rounds converged ----------------------------------------------------


def test_discover_warns_when_rounds_do_not_converge():
    truth, pair = _ks22_pair((("u^5", 0.01),))  # u^5 is not in the default library
    obs = Observations(pair, dt=DT, length=22.0, noise_std=0.0)
    with pytest.warns(UserWarning) as record:
        found = discover(truth.update_terms({"u^5": 0}), obs, max_iterations=3)
    messages = " ".join(str(w.message) for w in record)
    assert "max_iterations=3" in messages and "without converging" in messages
    assert "not explained" in messages and "library may lack a term" in messages
    assert found.converged is False
    summary = found.summary()
    assert summary["converged"] is False and summary["residual"] > 1e-3


def test_discover_converged_on_a_plain_case():
    truth, pair = _ks22_pair()
    found = _no_warnings(
        discover, truth.update_terms({"u_xx": 0}), Observations(pair, dt=DT, length=22.0, noise_std=0.0)
    )
    assert found.converged is True and found.summary()["converged"] is True
    assert found.terms == {"u_xx": pytest.approx(-1.0, rel=1e-9)}


# -- 3. the default KS initial state follows the problem's period ---------------------------------------


def test_ks_default_initial_state_follows_replaced_length():
    replaced = kuramoto_sivashinsky().replace(length=22.0, n=64)
    u = replaced.initial_condition()
    np.testing.assert_array_equal(u, ks_initial_condition(replaced.x, 22.0))
    assert np.abs(np.fft.rfft(u))[8:].max() < 1e-12  # periodic and smooth: no jump at the wrap
    fresh = kuramoto_sivashinsky()
    np.testing.assert_array_equal(fresh.initial_condition(), ks_initial_condition(fresh.x, 100.0))


# -- 4. an ill-posed linear part is not a success ------------------------------------------------------


def test_ill_posed_linear_part_is_reported():
    from sciml.solvers.spectral import IllPosedProblemError

    x = 2 * np.pi * np.arange(64) / 64
    bad = SemilinearPeriodicProblem({(0, 2): -0.1}, n=64, x0=0, length=2 * np.pi, u0=np.sin(x))
    assert bad.ill_posed_term == "-0.1*u_xx"
    with pytest.raises(IllPosedProblemError, match=r"ill-posed.*-0\.1\*u_xx"):
        solve_spectral(bad, 0.01)
    assert issubclass(IllPosedProblemError, ValueError) and issubclass(
        IllPosedProblemError, FloatingPointError
    )
    sol = solve_spectral(bad, 0.01, throw=False)
    assert not sol.success and "ill-posed" in sol.message
    # well-posed anti-diffusion (KS) and short ill-posed runs are fine; ETDRK4 builds (MEDIDA's one step)
    assert kuramoto_sivashinsky(length=22.0, n=64).ill_posed_term is None
    assert solve_spectral(bad, 0.01, saveat=[0.1]).success
    ETDRK4(bad, 0.01)


# -- 5. / 6. complex states and check_every ------------------------------------------------------------


def test_complex_initial_state_is_refused():
    x = 2 * np.pi * np.arange(32) / 32
    terms = {(0, 0): 1.0, (0, 2): 1.0, (2, 0): -1.0}
    with pytest.raises(ValueError, match="complex"):
        SemilinearPeriodicProblem(terms, n=32, x0=0, length=2 * np.pi, u0=np.exp(1j * x))
    from_callable = SemilinearPeriodicProblem(
        terms, n=32, x0=0, length=2 * np.pi, u0=lambda x: np.exp(1j * x)
    )
    with pytest.raises(ValueError, match="complex"):
        from_callable.initial_condition()
    real = from_callable.replace(u0=np.cos(x))
    with pytest.raises(ValueError, match="complex"):
        solve_spectral(real, 0.01, u0=np.exp(1j * x))


@pytest.mark.parametrize("check_every", [0, -5, 2.5])
def test_check_every_must_be_a_positive_integer(check_every):
    ks = kuramoto_sivashinsky(length=22.0, n=64)
    with pytest.raises(ValueError, match="check_every"):
        solve_spectral(ks, 0.25, saveat=[1.0], check_every=check_every)


# -- 7. a perfect model gets no terms -------------------------------------------------------------------


def test_perfect_model_gets_no_roundoff_terms():
    truth, pair = _ks22_pair()
    found = _no_warnings(discover, truth, Observations(pair, dt=DT, length=22.0, noise_std=0.0))
    assert found.terms == {} and found.converged
    assert found.equation() == "u_t + u*u_x + u_xx + u_xxxx = 0"


# -- 8. Lyapunov exponent of a state at the fixed point 0 ------------------------------------------------


def test_lyapunov_of_a_decayed_state_says_so():
    x = 2 * np.pi * np.arange(32) / 32
    damped = SemilinearPeriodicProblem({(0, 0): -1.0}, n=32, x0=0, length=2 * np.pi, u0=np.sin(x))
    for problem, t_transient in ((damped, 1000.0), (damped.replace(u0=np.zeros(32)), 20.0)):
        with pytest.raises(ValueError, match="fixed point u = 0") as info:
            largest_lyapunov_exponent(problem, 0.05, t_transient=t_transient, t_average=50.0)
        assert "blew up" not in str(info.value) and ": -1 for this problem" in str(info.value)


# -- 9. noise_std ------------------------------------------------------------------------------------


def test_noise_std_is_validated_and_classification_explained():
    truth, pair = _ks22_pair((("u^2*u_x", 0.3),), (1.0, 0.7, 1.0))  # noise-free, but its tail is 7e-9 of RMS
    model = truth.update_terms({"u_xx": 0})
    obs = Observations(pair, dt=DT, length=22.0)
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="noise_std must be >= 0"):
            discover(model, obs, noise_std=bad)
    with pytest.raises(ValueError, match=r"classified noisy.*noise_std=0.*filter_n <= n"):
        discover(model, obs)


# -- 10. minor -------------------------------------------------------------------------------------------


def test_truth_window_outside_the_run_is_refused():
    from sciml.medida.cases import truth_window

    small = kuramoto_sivashinsky(length=22.0, n=32, t_span=(0.0, 2.0))
    assert truth_window(0.5, 3, truth=small).shape == (3, 32)
    with pytest.raises(ValueError, match="outside the truth run"):
        truth_window(1.5, 1000, truth=small)


def test_unclear_messages_name_the_argument():
    ks = kuramoto_sivashinsky(length=22.0, n=64)
    with pytest.raises(ValueError, match="coefficient of u_xx"):
        ks.update_terms({"u_xx": "a"})
    with pytest.raises(TypeError, match="dt must be a number"):
        Observations(np.zeros((2, 8)), dt="1e-3", length=1.0)
    truth, pair = _ks22_pair()
    with pytest.raises(ValueError, match=r"band = 3.*raise band"):
        discover(truth, Observations(pair, dt=DT, length=22.0, noise_std=0.0), band=3)


def test_ks_plot_colorbar_is_labelled(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from sciml.medida.cli import _plot

    labels = []
    original = Figure.colorbar

    def spy(self, *args, **kwargs):
        labels.append(kwargs.get("label"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "colorbar", spy)

    class Valid:
        lyapunov_times, censored, errors = 1.0, False, np.linspace(0.1, 1, 5)

    t, x = np.linspace(0, 1, 5), np.linspace(0, 1, 8)
    traj = {k: np.ones((5, 8)) for k in ("truth", "imperfect", "corrected")}
    _plot(tmp_path / "p.png", x, t, traj, {"imperfect": Valid(), "corrected": Valid()}, 0.1, "ks")
    assert labels == ["u"]

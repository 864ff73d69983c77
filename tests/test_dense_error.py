"""The implicit methods' interpolation (dense-output) error test: ``solve(..., dense_error="auto")``.

Stiffly accurate methods (rodas4/5p, radau5, kvaerno3/5) put the end point of every step on the slow
manifold whatever the step size, so on a stiff problem with slow forcing their embedded estimate stays tiny,
steps grow to the controller's limit, and the dense output between the end points (of lower stage order)
was wrong by O(1) at the ``saveat`` times (Prothero–Robinson, λ = −10⁶, rtol 10⁻³: errors 1.1–2.9). The loop
now accepts a step only when the defect-based estimate of the interpolant's error is within tolerance too,
wherever the solution is interpolated; solves that interpolate nothing take the same steps as before.
"""

import importlib
import math

import pytest
import torch
from sciml.problems import ode
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import solve
from sciml.solvers.ode.implicit import implicit_method
from sciml.solvers.ode.reference import reference_solution

pytestmark = pytest.mark.usefixtures("one_thread")

IMPLICIT = ["rodas5p", "rodas4", "rosenbrock23", "radau5", "kvaerno5", "kvaerno3", "auto"]


def _prothero_robinson(lam: float, y0: float) -> ODEProblem:
    """``y' = λ(y − sin t) + cos t``: ``y = sin t + y0·e^{λt}``."""
    return ODEProblem(
        lambda t, y: lam * (y - torch.sin(t)) + torch.cos(t),
        torch.tensor([y0], dtype=torch.float64),
        (0.0, 10.0),
    )


def _scaled_error(ys: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float) -> torch.Tensor:
    """Per time, ``max_i |y_i − ref_i| / (atol + rtol·|ref_i|)``."""
    return ((ys - ref).abs() / (atol + rtol * ref.abs())).flatten(1).amax(1)


# ------------------------------------------------------------------------------------ Prothero–Robinson
@pytest.mark.parametrize("method", IMPLICIT)
@pytest.mark.parametrize("lam", [-1e3, -1e6])
@pytest.mark.parametrize("y0", [0.0, 1.0])
def test_prothero_robinson_interpolated_values_within_tolerance(method, lam, y0):
    """At rtol 1e-3, atol 1e-6 the tolerance at the solution's size (|y| ≤ 1) is ~1e-3. The accepted
    interpolant errs by at most ~tol times the estimate's factor (≤ 2.2 measured with two points, 3.0 with
    radau5's one; see ``ImplicitMethod.dense_error_thetas``) and errors do not accumulate on this
    contractive problem: 5e-3 (5× the tolerance level) bounds every method now (largest measured: 1.4e-3,
    radau5) and failed before for all but rosenbrock23 (not stiffly accurate: its own estimate sees the
    error, and "auto" leaves it untested), e.g. rodas5p 1.1, rodas4 2.7, radau5 1.6, kvaerno5 1.8 at
    λ = −1e6, auto 8.7e-3 at λ = −1e3."""
    p = _prothero_robinson(lam, y0)
    ts = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    sol = solve(p, method, rtol=1e-3, atol=1e-6, saveat=ts)
    exact = torch.sin(ts) + y0 * torch.exp(lam * ts)
    assert (sol.ys[:, 0] - exact).abs().max().item() <= 5e-3


@pytest.mark.parametrize("method", ["rodas5p", "radau5", "kvaerno5"])
def test_dense_error_false_restores_the_unchecked_solve(method):
    """``dense_error=False`` is the old behaviour: the steps do not depend on ``saveat``, and the
    interpolated values of this problem are off by O(1)."""
    p = _prothero_robinson(-1e6, 0.0)
    ts = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    off = solve(p, method, rtol=1e-3, atol=1e-6, saveat=ts, dense_error=False)
    ends = solve(p, method, rtol=1e-3, atol=1e-6)
    assert torch.equal(off.step_ts, ends.step_ts) and off.stats.nfe == ends.stats.nfe
    assert (off.ys[:, 0] - torch.sin(ts)).abs().max().item() > 0.5


# ------------------------------------------------------------------------------ standard problems, scipy
def _steps_and_saveat_errors(p, method, rtol, atol, ts):
    """One solve saving at ``ts`` and after every step; the largest scaled errors against scipy's
    reference at the step end points and at the interpolated (interior, non-step) save times."""
    sol = solve(p, method, rtol=rtol, atol=atol, saveat=ts, save_steps=True)
    times = sol.ts.tolist()
    keep = [i for i in range(len(times)) if i == 0 or times[i] != times[i - 1]]
    tt = torch.tensor([times[i] for i in keep], dtype=torch.float64)
    err = _scaled_error(sol.ys[keep], reference_solution(p, tt), rtol, atol)
    ends = {*sol.step_ts.tolist(), p.t_span[1]}
    at_step = torch.tensor([t in ends for t in tt.tolist()])
    return err[at_step].max().item(), err[~at_step].max().item(), sol


@pytest.mark.parametrize("method", IMPLICIT)
@pytest.mark.parametrize("name", ["lotka_volterra", "robertson"])
def test_interpolated_values_as_accurate_as_the_steps(method, name):
    """Against scipy's reference (DOP853 at 1e-13 for Lotka–Volterra, Radau at 1e-12 for Robertson): the
    values interpolated between steps are within 2× (+2 tolerances) of the error the steps themselves make
    (the global error). Before, kvaerno5's cubic Hermite output was 3.2× (Lotka–Volterra: 409 vs 126
    tolerances) and 12× (Robertson: 62 vs 5.3) worse than its steps; now 5.3 vs 5.1 and 0.69 vs 0.25, and
    every method is within the bound (the largest ratio where errors exceed 2 tolerances: 1.3×, rodas4 on
    Lotka–Volterra, as before)."""
    p = ode.get(name)
    ts = torch.linspace(*p.t_span, 101, dtype=torch.float64)
    rtol, atol = (1e-6, 1e-9) if name == "lotka_volterra" else (1e-6, 1e-10)
    at_steps, interpolated, sol = _steps_and_saveat_errors(p, method, rtol, atol, ts)
    assert sol.success
    assert interpolated <= 2 * at_steps + 2
    if name == "robertson":
        assert interpolated <= 5.0  # measured ≤ 2.7 (kvaerno3); kvaerno5 was 62


@pytest.mark.slow
@pytest.mark.parametrize("method", IMPLICIT)
def test_van_der_pol_stiff_saveat_no_worse_than_unchecked(method):
    """Van der Pol (ε-form, μ = 1000) at rtol 1e-5: the error at 101 save times against scipy's Radau
    reference is no worse than without the test (up to the step sequence's noise: 1.5× + 2 tolerances); it
    was 20× better for kvaerno5 (90 → 2.7 tolerances) and 4× for rodas5p (18.5 → 4.6)."""
    p = ode.van_der_pol_stiff()
    ts = torch.linspace(*p.t_span, 101, dtype=torch.float64)
    ref = reference_solution(p, ts)
    err = {}
    for de in (False, "auto"):
        sol = solve(p, method, rtol=1e-5, atol=1e-7, saveat=ts, dense_error=de)
        err[de] = _scaled_error(sol.ys, ref, 1e-5, 1e-7).max().item()
    assert err["auto"] <= 1.5 * err[False] + 2


# --------------------------------------------------------------------------------- no cost where unused
@pytest.mark.parametrize("method", IMPLICIT)
@pytest.mark.parametrize("save", ["none", "ends", "steps"])
def test_no_interior_save_times_same_steps_as_unchecked(method, save):
    """Without interior save times ``"auto"`` tests nothing: the same steps, values and work as
    ``dense_error=False`` (bit for bit), on a problem where the test would change the steps."""
    p = _prothero_robinson(-1e6, 1.0)
    kw = {"none": {}, "ends": {"saveat": torch.tensor(p.t_span)}, "steps": {"save_steps": True}}[save]
    auto = solve(p, method, rtol=1e-4, atol=1e-8, **kw)
    off = solve(p, method, rtol=1e-4, atol=1e-8, dense_error=False, **kw)
    assert torch.equal(auto.step_ts, off.step_ts) and torch.equal(auto.ys, off.ys)
    assert auto.stats == off.stats
    forced = solve(p, method, rtol=1e-4, atol=1e-8, dense_error=True, **kw)
    if method != "rosenbrock23":  # the test binds for the stiffly accurate methods here
        assert forced.stats.n_steps > off.stats.n_steps


def test_rosenbrock23_is_not_tested_by_auto():
    """rosenbrock23 is not stiffly accurate: its end point carries the stiff error its own estimate sees, and
    its interpolant errs as much as its end point (Prothero–Robinson: 2e-4 at rtol 1e-3 untested), so
    ``"auto"`` leaves it alone (bit for bit); ``True`` still tests it."""
    p = _prothero_robinson(-1e6, 0.0)
    ts = torch.linspace(0.0, 10.0, 1001, dtype=torch.float64)
    auto = solve(p, "rosenbrock23", rtol=1e-3, atol=1e-6, saveat=ts)
    off = solve(p, "rosenbrock23", rtol=1e-3, atol=1e-6, saveat=ts, dense_error=False)
    forced = solve(p, "rosenbrock23", rtol=1e-3, atol=1e-6, saveat=ts, dense_error=True)
    assert torch.equal(auto.ys, off.ys) and auto.stats == off.stats
    assert forced.stats.nfe > off.stats.nfe
    assert (auto.ys[:, 0] - torch.sin(ts)).abs().max() < 1e-3


@pytest.mark.parametrize("method", ["tsit5", "dp5", "bs3"])
def test_explicit_methods_unaffected(method):
    """Explicit steps are not tested: interior save times leave the step sequence as it is without them
    and the values bit-identical with ``dense_error=False``; ``dense_error=True`` is refused."""
    p = ode.van_der_pol()
    ts = torch.linspace(*p.t_span, 41, dtype=torch.float64)
    sol = solve(p, method, rtol=1e-6, atol=1e-8, saveat=ts)
    off = solve(p, method, rtol=1e-6, atol=1e-8, saveat=ts, dense_error=False)
    ends = solve(p, method, rtol=1e-6, atol=1e-8)
    assert torch.equal(sol.ys, off.ys) and torch.equal(sol.step_ts, ends.step_ts)
    assert sol.stats == off.stats == ends.stats
    with pytest.raises(ValueError, match="dense_error=True"):
        solve(p, method, saveat=ts, dense_error=True)


def test_auto_in_its_tsit5_phase_is_tsit5():
    """``method="auto"`` on a non-stiff problem never leaves Tsit5, whose steps are not tested."""
    p = ode.lotka_volterra()
    ts = torch.linspace(*p.t_span, 41, dtype=torch.float64)
    auto = solve(p, "auto", rtol=1e-6, atol=1e-9, saveat=ts)
    tsit5 = solve(p, "tsit5", rtol=1e-6, atol=1e-9, saveat=ts)
    assert auto.switches == ((0.0, "tsit5"),)
    assert torch.equal(auto.ys, tsit5.ys) and auto.stats.nfe == tsit5.stats.nfe


def test_auto_tests_its_rodas5p_phase():
    p = _prothero_robinson(-1e6, 0.0)
    ts = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    on = solve(p, "auto", rtol=1e-3, atol=1e-6, saveat=ts)
    off = solve(p, "auto", rtol=1e-3, atol=1e-6, saveat=ts, dense_error=False)
    assert any(m == "rodas5p" for _, m in on.switches)
    assert on.stats.n_steps > off.stats.n_steps
    assert (on.ys[:, 0] - torch.sin(ts)).abs().max() < 5e-3 < (off.ys[:, 0] - torch.sin(ts)).abs().max()


def test_dense_error_option_is_checked():
    p = _prothero_robinson(-1e3, 0.0)
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="`dense_error` must be True, False or 'auto'"):
            solve(p, "rodas5p", dense_error=bad)


def test_events_switch_the_test_on():
    """An event function is located on the dense output: ``"auto"`` tests it then."""
    from sciml.solvers.ode.events import EventLocator
    from sciml.solvers.ode.hooks import StepHooks

    sm = importlib.import_module("sciml.solvers.ode.solve")  # the module (the package exports the function)
    rk = implicit_method("rodas5p")
    y0 = torch.zeros(1, dtype=torch.float64)
    locator = EventLocator(lambda t, y: y[0] - 0.5, 0.0, y0, y0.shape, torch.scalar_tensor, 1e-12)
    assert sm._dense_check("auto", rk, [0.0, 1.0], 0.0, 1.0, StepHooks(event=locator))
    assert not sm._dense_check("auto", rk, [0.0, 1.0], 0.0, 1.0, StepHooks())
    assert sm._dense_check("auto", rk, [1.0, 0.5, 0.0], 1.0, 0.0, StepHooks())  # backwards in time
    assert not sm._dense_check(False, rk, [0.0, 0.5, 1.0], 0.0, 1.0, StepHooks(event=locator))


# ------------------------------------------------------------------------------------- work, gradients
@pytest.mark.parametrize("method", ["rodas5p", "radau5", "kvaerno5"])
def test_extra_evaluations_are_counted(method):
    """Every call of ``f`` (the test's included) is in ``nfe`` (those inside Jacobians in ``njev``)."""
    calls = [0]
    lam = -1e6

    def f(t, y):
        calls[0] += 1
        return lam * (y - torch.sin(t)) + torch.cos(t)

    def jac(t, y):
        return torch.full((1, 1), lam, dtype=torch.float64)

    p = ODEProblem(f, torch.zeros(1, dtype=torch.float64), (0.0, 10.0))
    ts = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    sol = solve(p, method, rtol=1e-3, atol=1e-6, saveat=ts, jac=jac)
    assert calls[0] == sol.stats.nfe
    calls[0] = 0
    off = solve(p, method, rtol=1e-3, atol=1e-6, saveat=ts, jac=jac, dense_error=False)
    assert calls[0] == off.stats.nfe
    points = len(implicit_method(method).dense_error_thetas)  # radau5: 1, the others: 2
    assert sol.stats.nfe >= off.stats.nfe + points * sol.stats.n_accepted  # per point and accepted step


@pytest.mark.parametrize("method", ["rodas5p", "radau5", "kvaerno5"])
def test_gradients_with_the_test_on_match_the_continuous_adjoint(method):
    """Backprop and the continuous adjoint agree through solves whose steps the test shaped (it runs without
    autograd history; the step sizes are constants for autograd, as the embedded estimate's decisions)."""
    k = torch.tensor([0.04, 30.0, 10.0], dtype=torch.float64, requires_grad=True)

    def f(t, y):
        a, b, c = y.unbind(-1)
        return torch.stack([-k[0] * a + k[2] * b * c, k[0] * a - k[2] * b * c - k[1] * b * b, k[1] * b * b])

    y0 = torch.tensor([1.0, 0.1, 0.05], dtype=torch.float64)
    ts = torch.linspace(0.0, 2.0, 21, dtype=torch.float64)
    grads = []
    for adjoint in ("backprop", "continuous"):
        sol = solve(
            ODEProblem(f, y0, (0.0, 2.0)), method, rtol=1e-8, atol=1e-10, saveat=ts, adjoint=adjoint,
            adjoint_params=(k,),
        )  # fmt: skip
        (g,) = torch.autograd.grad((sol.ys**2).sum(), k)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-9)
    assert math.isfinite(grads[0].sum().item())


def test_user_norm_and_matrix_free_newton():
    """The test uses the user's norm (``hooks.norm``) and works with ESDIRK's Newton–Krylov solves."""
    from sciml.solvers.ode.hooks import StepHooks

    p = _prothero_robinson(-1e6, 0.0)
    ts = torch.linspace(0.0, 10.0, 101, dtype=torch.float64)
    sol = solve(p, "rodas5p", rtol=1e-3, atol=1e-6, saveat=ts, hooks=StepHooks(norm=lambda v: v.abs().max()))
    assert (sol.ys[:, 0] - torch.sin(ts)).abs().max() < 5e-3
    sol = solve(p, "kvaerno5", rtol=1e-3, atol=1e-6, saveat=ts, jac="krylov")
    assert (sol.ys[:, 0] - torch.sin(ts)).abs().max() < 5e-3 and sol.stats.njvp > 0


@pytest.mark.parametrize("method", ["rodas5p", "rodas4", "rosenbrock23", "radau5", "kvaerno5", "kvaerno3"])
def test_dense_point_is_the_interpolant_and_its_derivative(method):
    """``dense_point`` gives ``interpolate``'s value and its θ-derivative (a central difference agrees)."""
    p = ode.van_der_pol()
    rk = implicit_method(method).for_solve()
    rk.begin(1e-6, 1e-9)
    y = p.y0.clone()
    f = p.rhs
    res = rk.step(lambda t, z: f(torch.as_tensor(t, dtype=torch.float64), z), 0.0, y, 0.1, f(0.0, y))
    for theta in (0.3, 0.5, 0.875):
        value, slope = rk.dense_point(y, res.stages, 0.1, theta)
        ends = rk.interpolate(y, res.stages, 0.1, [theta - 1e-6, theta, theta + 1e-6])
        torch.testing.assert_close(value, ends[1], rtol=0, atol=1e-14)
        torch.testing.assert_close(slope, (ends[2] - ends[0]) / 2e-6, rtol=1e-7, atol=1e-9)


def test_dense_error_true_with_fixed_steps_is_refused():
    p = ODEProblem(lambda t, y: -y, torch.tensor([1.0], dtype=torch.float64), (0.0, 4.0))
    with pytest.raises(ValueError, match="fixed steps .* drop `dt`"):
        solve(p, "rodas5p", dt=0.5, saveat=[0.0, 0.25, 4.0], dense_error=True)
    solve(p, "rodas5p", dt=0.5, saveat=[0.0, 0.25, 4.0])  # "auto": fixed steps are simply not tested

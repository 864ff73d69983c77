"""The SDE solvers: strong orders on exact solutions, weak moments, the embedded estimate against the true
local error, agreement with torchsde's own steppers, gradients of the estimates, accounting, bad input."""

import math

import numpy as np
import pytest
import torch
import torchsde
from sciml.problems import sde
from sciml.problems.sde import SDEProblem
from sciml.solvers.sde import (
    METHODS,
    SRA_TABLEAUS,
    SRI_TABLEAUS,
    ConstantSteps,
    SolveError,
    SRITableau,
    Status,
    brownian_interval,
    get_method,
    sdeint,
    single_step,
    solve,
)

SRI = list(SRI_TABLEAUS)
SRA = list(SRA_TABLEAUS)


pytestmark = pytest.mark.usefixtures("one_thread")


def _slope(hs, errors):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


def _end_times(problem):
    return torch.tensor(problem.t_span, dtype=torch.float64)


@pytest.fixture(scope="module")
def paths():
    """One batch of Brownian paths per problem, with the exact solution at t1 on each (the OU quadrature
    takes a second, so it is computed once)."""
    out = {}
    for name, kwargs in (("gbm", {}), ("gbm-strat", {"sde_type": "stratonovich"}), ("linear_scalar", {}),
                         ("ornstein_uhlenbeck", {})):  # fmt: skip
        problem = sde.get(name.split("-")[0], batch=400, **kwargs)
        bm = brownian_interval(problem, entropy=11)
        out[name] = (problem, bm, problem.solution(_end_times(problem), bm)[-1])
    return out


def _strong_errors(problem, bm, exact, method, hs):
    """Kloeden & Platen's strong error E|y_h(T) − y(T)| over the batch of paths, for each step size."""
    return [(solve(problem, method, bm=bm, dt=h).ys[-1] - exact).abs().mean().item() for h in hs]


# ------------------------------------------------------------------------------------------ tableaus
def test_tableaus_check_their_order_conditions():
    good = SRI_TABLEAUS["sriw1"]
    names = ("name", "a0", "b0", "a1", "b1", "alpha", "beta1", "beta2", "beta3", "beta4",
             "deterministic_order", "stiffness_stages")  # fmt: skip
    fields = {k: getattr(good, k) for k in names}
    SRITableau(**fields)  # the published coefficients pass
    with pytest.raises(ValueError, match="β4·B1B1e = 1"):
        SRITableau(**{**fields, "b1": ((), (1 / 2,), (-1.0, 0.0), (-5.0, 3.0, 0.6))})
    with pytest.raises(ValueError, match="row 1 of a stage matrix"):
        SRITableau(**{**fields, "a0": ((), (0.75, 0.0), (0.0, 0.0), (0.0, 0.0, 0.0))})


def test_stability_sizes_of_the_drift_parts():
    assert SRI_TABLEAUS["sriw1"].stability_size == pytest.approx(2.0)  # R(z) = 1 + z + z²/2
    assert SRA_TABLEAUS["sra3"].stability_size == pytest.approx(2.5127, abs=1e-4)  # Kutta's third order
    # the stability-optimised methods (Rackauckas & Nie) reach about five times as far
    assert SRI_TABLEAUS["sosri"].stability_size > 9.5 and SRI_TABLEAUS["sosri2"].stability_size > 10
    assert SRA_TABLEAUS["sosra"].stability_size > 5 and SRA_TABLEAUS["sosra2"].stability_size > 5


# ------------------------------------------------------------------------------------------ strong orders
@pytest.mark.parametrize(
    "name, method, order",
    [("gbm", "euler", 0.5), ("gbm", "milstein", 1.0), *(("gbm", m, 1.5) for m in SRI),
     ("linear_scalar", "milstein", 1.0), ("linear_scalar", "sriw1", 1.5), ("linear_scalar", "sosri", 1.5),
     ("gbm-strat", "milstein", 1.0), ("gbm-strat", "euler_heun", 1.0)],
)  # fmt: skip
def test_strong_order_by_log_log_slope(paths, name, method, order):
    problem, bm, exact = paths[name]
    hs = [2.0**-k for k in (3, 4, 5, 6, 7)]
    errors = _strong_errors(problem, bm, exact, method, hs)
    assert _slope(hs, errors) == pytest.approx(order, abs=0.2), errors


@pytest.mark.parametrize("method", ["euler", "milstein", *SRA])
def test_additive_noise_orders(paths, method):
    # Euler–Maruyama and Milstein are order 1 for additive noise; the SRA methods show order 2 here
    # (linear drift; their guaranteed strong order is 1.5)
    problem, bm, exact = paths["ornstein_uhlenbeck"]
    hs = [2.0**-k for k in (2, 3, 4, 5)]
    errors = _strong_errors(problem, bm, exact, method, hs)
    slope = _slope(hs, errors)
    assert (slope > 1.8) if method in SRA else (slope == pytest.approx(1.0, abs=0.15)), errors


@pytest.mark.parametrize("method", ["sosri", "sriw1", "milstein"])
def test_adaptive_error_falls_with_the_tolerance(paths, method):
    problem, bm, exact = paths["gbm"]
    errors, nfes = [], []
    for tol in (1e-2, 1e-3, 1e-4):
        sol = solve(problem, method, bm=bm, rtol=tol, atol=tol)
        errors.append((sol.ys[-1] - exact).pow(2).mean().sqrt().item())
        nfes.append(sol.stats.nfe)
    assert errors[2] < errors[1] < errors[0] and nfes[0] < nfes[1] < nfes[2]
    assert errors[-1] < 3e-3, errors


# ------------------------------------------------------------------------------------------ weak moments
def test_weak_moments_of_gbm_and_ou():
    n = 4000
    gbm = sde.gbm(batch=n)
    sol = solve(gbm, "sosri", entropy=5, rtol=1e-3, atol=1e-3)
    mu, sigma = (p.numpy() for p in gbm.params)
    y0 = gbm.y0[0].numpy()
    yT = sol.ys[-1].numpy()
    mean, second = y0 * np.exp(mu), y0**2 * np.exp(2 * mu + sigma**2)
    se_mean = np.sqrt((second - mean**2) / n)
    assert np.all(np.abs(yT.mean(0) - mean) < 4 * se_mean), (yT.mean(0), mean)
    assert np.all(np.abs((yT**2).mean(0) / second - 1) < 0.1)

    ou = sde.ornstein_uhlenbeck(batch=n)
    yT = solve(ou, "sosra", entropy=6, rtol=1e-3, atol=1e-3).ys[-1].numpy()
    theta, target, S = (p.numpy() for p in ou.params)
    mean = target + np.exp(-theta) * (ou.y0[0].numpy() - target)
    # covariance: ∫_0^1 e^{−(θ_i+θ_j)(1−s)} (1 + ½ sin s)² ds (SSᵀ)_ij, by quadrature
    s = np.linspace(0, 1, 20001)
    kernel = np.exp(-(theta[:, None] + theta[None, :])[..., None] * (1 - s)) * (1 + 0.5 * np.sin(s)) ** 2
    cov = np.trapezoid(kernel, s, axis=-1) * (S @ S.T)
    assert np.all(np.abs(yT.mean(0) - mean) < 4 * np.sqrt(np.diag(cov) / n))
    np.testing.assert_allclose(np.cov(yT.T), cov, atol=4 * np.sqrt(2 / n) * np.diag(cov).max())


# ------------------------------------------------------------------------------------------ the estimate
@pytest.mark.parametrize("name, method", [("gbm", "sosri"), ("gbm", "sriw1"), ("ornstein_uhlenbeck", "sosra"),
                                          ("gbm", "milstein")])  # fmt: skip
def test_embedded_estimate_tracks_the_true_local_error(name, method):
    """ẽ = y1 − ŷ estimates the local error of the embedded lower-order solution ŷ: measured against the exact
    one-step solution on the same path, the estimate's relative error shrinks with h, and its size has the
    embedded method's local order (1.5 for SRA/SRI, 1 for Milstein)."""
    problem = sde.get(name, batch=1000)
    k = get_method(method, problem.noise_type, problem.sde_type).error_exponent
    sizes, mismatch = [], []
    hs = [2.0**-j for j in (3, 5, 7)]
    for h in hs:
        local = problem.replace(t_span=(0.0, h))
        bm = brownian_interval(local, entropy=2)
        step = single_step(local, method, 0.0, local.y0, bm, h)
        exact = local.solution(torch.tensor([0.0, h], dtype=torch.float64), bm)[-1]
        true_error = exact - (step.y1 - step.y_error)  # the embedded solution's actual local error
        sizes.append(step.y_error.pow(2).mean().sqrt().item())
        mismatch.append((step.y_error - true_error).pow(2).mean().sqrt().item() / sizes[-1])
    assert _slope(hs, sizes) == pytest.approx(k, abs=0.25), sizes
    assert mismatch[-1] < 0.35 and mismatch[-1] < mismatch[0], mismatch


def _smooth_problem(y0, weight, noise_type):
    def f(t, y):
        return torch.tanh(y @ weight) - 0.3 * y * torch.cos(t)

    if noise_type == "additive":

        def g(t, y):  # additive: a function of t (and of the parameters) only
            return (0.3 + 0.1 * torch.tanh(weight.sum()) * torch.sin(t)) * torch.ones_like(y).unsqueeze(-1)

    else:

        def g(t, y):
            return 0.2 * torch.sigmoid(y @ weight.T) * (1 + y**2).sqrt()

    return SDEProblem(f, g, y0, (0.0, 1.0), noise_type)


@pytest.mark.parametrize("method, noise_type", [("sosri", "diagonal"), ("sriw1", "diagonal"),
                                                ("milstein", "diagonal"), ("sosra", "additive")])  # fmt: skip
def test_gradients_of_solution_and_estimates_match_finite_differences(method, noise_type):
    y0 = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 2, dtype=torch.float64, requires_grad=True)
    bm = brownian_interval(_smooth_problem(y0.detach(), weight.detach(), noise_type), entropy=4)

    def outputs(a, w):  # on a fixed path and fixed steps the solve is a smooth map
        sol = solve(_smooth_problem(a, w, noise_type), method, bm=bm, dt=0.125, rtol=1e-3, atol=1e-4)
        assert sol.differentiable_estimates
        return sol.ys[-1], (sol.error_estimates * sol.step_sizes).sum(), sol.stiffness_estimates.sum()

    for index in range(3):
        assert torch.autograd.gradcheck(lambda a, w, i=index: outputs(a, w)[i], (y0, weight), eps=1e-6,
                                        atol=1e-7, rtol=1e-4)  # fmt: skip


def test_estimates_carry_no_history_without_grad():
    problem = sde.gbm(batch=4)
    with torch.no_grad():
        sol = solve(problem, entropy=0)
    assert not sol.differentiable_estimates and not sol.error_estimates.requires_grad


def test_stiffness_index_is_exact_on_linear_drift():
    lam = 40.0
    problem = SDEProblem(lambda t, y: -lam * y, lambda t, y: 0.1 * torch.ones(2, 3, 1, dtype=torch.float64),
                         torch.ones(2, 3, dtype=torch.float64), (0.0, 1.0), "additive")  # fmt: skip
    for method in ("sosra", "sra1", "milstein"):
        sol = solve(problem, method, entropy=1, rtol=1e-3, atol=1e-3)
        size = get_method(method, "additive", "ito").stability_size
        expected = lam * sol.step_sizes / size
        torch.testing.assert_close(sol.stiffness_estimates, expected, rtol=1e-9, atol=0)
    # a stability-optimised method takes longer steps on this mildly stiff problem
    steps = {m: solve(problem, m, entropy=1, rtol=1e-2, atol=1e-2).stats.n_steps for m in ("sosra", "sra1")}
    assert steps["sosra"] < steps["sra1"], steps


# ------------------------------------------------------------------------------------------ accounting, path
class _Recorder:
    """A Brownian motion that records its queries."""

    def __init__(self, bm):
        self.bm, self.queries = bm, []
        self.shape, self.dtype, self.device = bm.shape, bm.dtype, bm.device
        self.levy_area_approximation = bm.levy_area_approximation

    def __call__(self, ta, tb, return_U=False):
        self.queries.append((ta, tb))
        return self.bm(ta, tb, return_U=return_U)


@pytest.mark.parametrize("method", ["sosri", "sriw1", "milstein"])
def test_accounting_and_rejections_reuse_the_same_path(method):
    calls = {"f": 0, "g": 0}
    base = sde.gbm(batch=16)

    def f(t, y, p):
        calls["f"] += 1
        return base.f(t, y, p)

    def g(t, y, p):
        calls["g"] += 1
        return base.g(t, y, p)

    problem = base.replace(f=f, g=g)
    bm = _Recorder(brownian_interval(problem, entropy=3))
    ts = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    sol = solve(problem, method, bm=bm, rtol=1e-4, atol=1e-4, saveat=ts)
    st = sol.stats
    assert (st.nfe_drift, st.nfe_diffusion) == (calls["f"], calls["g"]) and st.nfe == sum(calls.values())
    assert st.n_steps == st.n_accepted + st.n_rejected == len(bm.queries) and st.n_rejected > 0
    assert torch.equal(sol.ts, ts) and sol.ys.shape == (3, 16, 2)
    n = st.n_accepted
    assert [len(x) for x in (sol.step_ts, sol.step_sizes, sol.error_estimates)] == [n] * 3
    torch.testing.assert_close(sol.step_ts[1:], (sol.step_ts + sol.step_sizes)[:-1])
    assert (sol.error_estimates <= 1).all() and 0.3 in sol.step_ts.tolist()  # a step lands on 0.3
    # every rejected query starts where the accepted step then starts: a sub-interval of the same path, and
    # the accepted increments add up to the path's total increment
    accepted = list(zip(sol.step_ts.tolist(), (sol.step_ts + sol.step_sizes).tolist()))
    assert all(q[0] in sol.step_ts.tolist() for q in bm.queries)
    total = sum(bm.bm(a, b) for a, b in accepted)
    torch.testing.assert_close(total, bm.bm(0.0, 1.0), rtol=0, atol=1e-12)


def test_fixed_steps_record_estimates_and_land_on_save_times():
    problem = sde.gbm(batch=4)
    ts = torch.tensor([0.0, 0.35, 1.0], dtype=torch.float64)
    sol = solve(problem, "sosri", entropy=0, dt=0.1, saveat=ts)
    assert sol.stats.n_steps == 11 and sol.stats.n_rejected == 0  # 4 steps to 0.35 (the last shortened)
    assert len(sol.error_estimates) == 11 and torch.equal(sol.ts, ts)
    assert solve(problem, "euler", entropy=0, dt=0.1).error_estimates.numel() == 0


# ------------------------------------------------------------------------------------------ torchsde API
class _TorchsdeModel(torch.nn.Module):
    """A user's torchsde model, unchanged."""

    def __init__(self, noise_type="diagonal", sde_type="ito"):
        super().__init__()
        self.noise_type, self.sde_type = noise_type, sde_type
        self.mu = torch.nn.Parameter(torch.tensor([0.5, -0.2], dtype=torch.float64))

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        if self.noise_type == "diagonal":
            return 0.3 * y
        if self.noise_type == "general":  # three Brownian channels mixed into two states, state-dependent
            mix = torch.tensor([[0.3, -0.1, 0.2], [0.1, 0.2, -0.3]], dtype=y.dtype)
            return mix * torch.cos(y).unsqueeze(-1)
        return (0.3 * torch.ones_like(y)).unsqueeze(-1)


@pytest.mark.parametrize(
    "ours, theirs, noise_type, options",
    [("sriw2", "srk", "diagonal", None), ("sra1", "srk", "additive", None),
     ("euler", "euler", "diagonal", None), ("milstein", "milstein", "diagonal", {"grad_free": True}),
     ("euler", "euler", "general", None), ("euler_heun", "euler_heun", "general", None)],
)  # fmt: skip
def test_fixed_steps_agree_with_torchsde_to_rounding(ours, theirs, noise_type, options):
    # torchsde's diagonal SRK is Rößler's SRI2 (our "sriw2") and its additive SRK is SRA1; its Euler,
    # Euler–Heun and derivative-free Itô Milstein are the same formulas as ours: on the same path and
    # steps the implementations must agree to rounding (general noise: three channels, bmm products)
    model = _TorchsdeModel(noise_type, "stratonovich" if ours == "euler_heun" else "ito")
    y0 = torch.rand(5, 2, dtype=torch.float64) + 0.5
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)  # on the step grid: torchsde interpolates between steps
    m = {"diagonal": 2, "general": 3}.get(noise_type, 1)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(5, m), dtype=torch.float64, entropy=9,
                                   levy_area_approximation="space-time")  # fmt: skip
    with torch.no_grad():
        a = sdeint(model, y0, ts, bm=bm, method=ours, adaptive=False, dt=1 / 32, options=options)
        b = torchsde.sdeint(model, y0, ts, bm=bm, method=theirs, dt=1 / 32, options=options)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_sdeint_runs_torchsde_models_adaptively_and_trains():
    model = _TorchsdeModel()
    y0 = torch.full((64, 2), 1.0, dtype=torch.float64)
    ts = torch.linspace(0, 1, 5, dtype=torch.float64)
    ys = sdeint(model, y0, ts, entropy=0)
    assert ys.shape == (5, 64, 2)
    (ys[-1].mean() ** 2).backward()
    assert model.mu.grad is not None and torch.isfinite(model.mu.grad).all()

    class Renamed(_TorchsdeModel):
        def drift(self, t, y):
            return self.f(t, y)

    renamed = sdeint(Renamed(), y0, ts, entropy=0, names={"drift": "drift"})
    torch.testing.assert_close(renamed, ys.detach())


# ------------------------------------------------------------------------------------------ bad input
def test_bad_input_is_named():
    gbm = sde.gbm(batch=2)
    ou = sde.ornstein_uhlenbeck(batch=2)
    with pytest.raises(ValueError, match="methods for this SDE: .*sosra"):
        solve(ou, "sosri")
    with pytest.raises(ValueError, match="not 'diagonal' noise with sde_type='stratonovich'"):
        solve(sde.gbm(sde_type="stratonovich"), "sosri")
    with pytest.raises(ValueError, match="unknown SDE method 'rk45'"):
        solve(gbm, "rk45")
    with pytest.raises(ValueError, match="no error estimate"):
        solve(gbm, "euler")
    with pytest.raises(ValueError, match="diffusion `g` returned shape \\(2, 2, 1\\)"):
        solve(gbm.replace(g=lambda t, y, p: y[..., None]))
    with pytest.raises(ValueError, match="drift `f` returned shape"):
        solve(gbm.replace(f=lambda t, y, p: y[:, :1]))
    for bad in (float("nan"), 0.0):
        with pytest.raises(ValueError, match="`dt0` must be a positive finite"):
            solve(gbm, "sosri", entropy=0, dt0=bad)
    with pytest.raises(ValueError, match="not finite"):
        solve(gbm.replace(f=lambda t, y, p: y / 0.0))
    with pytest.raises(ValueError, match="Lévy area"):
        solve(gbm, "sosri", bm=brownian_interval(gbm, levy_area=False))
    with pytest.raises(ValueError, match="`bm` has shape"):
        solve(gbm, bm=brownian_interval(sde.gbm(batch=3)))
    with pytest.raises(ValueError, match="`bm` spans"):
        solve(gbm.replace(t_span=(0.0, 2.0)), bm=brownian_interval(gbm))
    with pytest.raises(ValueError, match="shape \\(batch, d\\)"):
        SDEProblem(gbm.f, gbm.g, torch.ones(2, dtype=torch.float64), (0.0, 1.0))
    with pytest.raises(ValueError, match="t0 < t1"):
        gbm.replace(t_span=(1.0, 0.0))
    with pytest.raises(ValueError, match="`noise_type` must be one of"):
        gbm.replace(noise_type="diag")
    with pytest.raises(ValueError, match="strictly increasing"):
        solve(gbm, saveat=[0.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="`rtol` must be positive"):
        solve(gbm, rtol=0.0)
    with pytest.raises(TypeError):
        solve(gbm, rtoll=1e-3)  # typos are errors, not warnings

    class NoDiffusion:
        noise_type, sde_type = "diagonal", "ito"

        def f(self, t, y):
            return y

    with pytest.raises(ValueError, match="must define one of `g`, `f_and_g`, `g_prod`"):
        sdeint(NoDiffusion(), gbm.y0, [0.0, 1.0])
    with pytest.raises(ValueError, match="`dt` must be a positive"):
        sdeint(_TorchsdeModel(), gbm.y0, [0.0, 1.0], dt=0.0)
    with pytest.raises(ValueError, match="`h` must be a positive"):
        single_step(gbm, "sosri", 0.0, gbm.y0, brownian_interval(gbm), -0.1)


def test_failures_return_partial_solutions_with_a_status():
    problem = sde.gbm(batch=8)
    with pytest.raises(SolveError, match="max_steps=5"):
        solve(problem, entropy=0, rtol=1e-6, atol=1e-6, max_steps=5)
    sol = solve(problem, entropy=0, rtol=1e-6, atol=1e-6, max_steps=5, throw=False)
    assert sol.status is Status.MAX_STEPS and sol.stats.n_steps == 5 and not sol.success
    blow_up = SDEProblem(
        lambda t, y: y**3, lambda t, y: 0.1 * y, torch.ones(4, 1, dtype=torch.float64), (0.0, 2.0)
    )
    sol = solve(blow_up, entropy=0, throw=False)  # y' = y³ from 1 blows up at t = 1/2
    assert sol.status in (Status.NON_FINITE, Status.STEP_SIZE_UNDERFLOW) and "blow up" in sol.message
    assert 0.3 < sol.step_ts[-1] < 0.55 and sol.step_sizes[-1] < 1e-6
    # fixed steps: from 2, Euler overflows to inf by t = 2 (2, 4, 20, 2020, ...)
    fixed = solve(blow_up.replace(y0=2 * blow_up.y0), "euler", entropy=0, controller=ConstantSteps(dt=0.25),
                  throw=False)  # fmt: skip
    assert fixed.status is Status.NON_FINITE


def test_methods_declare_what_they_support():
    for name in METHODS:
        for noise_type in ("diagonal", "additive", "scalar", "general"):
            for sde_type in ("ito", "stratonovich"):
                try:
                    method = get_method(name, noise_type, sde_type)
                except ValueError:
                    continue
                assert noise_type in method.noise_types and sde_type in method.sde_types
                assert not method.levy_area or name in (*SRA, *SRI, "log_ode")
    assert get_method("srk", "additive", "ito").name == "sosra"
    assert get_method("srk", "scalar", "ito").name == "sosri"
    assert math.isclose(get_method("sosri", "diagonal", "ito").error_exponent, 1.5)

"""odeint / odeint_adjoint / odeint_event behave as torchdiffeq documents (checked here in our own words;
tests/compat/run_torchdiffeq.py runs torchdiffeq's own suite)."""

import math

import numpy as np
import pytest
import torch
from sciml.solvers.ode import SolveError, odeint, odeint_adjoint, odeint_event
from sciml.solvers.ode.adams import adams_weights

F64 = torch.float64
ADAPTIVE = ["dopri8", "dopri5", "bosh3", "fehlberg2", "adaptive_heun", "tsit5"]
FIXED = ["euler", "midpoint", "heun2", "heun3", "rk4", "explicit_adams", "implicit_adams", "fixed_adams",
         "radauIIA5"]  # fmt: skip


def decay(t, y):
    return -y


def _t(*values):
    return torch.tensor(values, dtype=F64)


class Linear(torch.nn.Module):
    """y' = a y + b sin(t) with trainable a, b (nonlinear in t, smooth)."""

    def __init__(self):
        super().__init__()
        self.a = torch.nn.Parameter(torch.tensor(-0.7, dtype=F64))
        self.b = torch.nn.Parameter(torch.tensor(0.3, dtype=F64))

    def forward(self, t, y):
        return self.a * y + self.b * torch.sin(t) * y**2


def test_a_single_time_point_returns_the_initial_state():
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    ys = odeint(decay, y0, _t(0.5))
    assert ys.shape == (1, 2) and torch.equal(ys[0], y0)
    a, b = odeint(lambda t, y: (-y[0], y[1]), (y0, y0 * 2), _t(0.5))
    assert a.shape == b.shape == (1, 2)


@pytest.mark.parametrize("method", ADAPTIVE + FIXED + ["scipy_solver"])
def test_every_torchdiffeq_method_name_solves_decay(method):
    t = torch.linspace(0, 1, 41, dtype=F64)
    ys = odeint(decay, torch.ones(2, dtype=F64), t, method=method)
    tol = {"euler": 2e-2, "midpoint": 1e-4, "heun2": 1e-4, "adaptive_heun": 1e-5, "fehlberg2": 1e-5}
    assert (ys[:, 0] - torch.exp(-t)).abs().max() < tol.get(method, 1e-6)


def test_implicit_methods_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match=r"not offered.*radauIIA5.*scipy_solver.*'Radau'.*rodas5p"):
        odeint(decay, torch.ones(1, dtype=F64), _t(0, 1), method="gl4")


def test_radau_iia5_converges_at_order_5_on_a_stiff_linear_system_and_backpropagates():
    """torchdiffeq's fixed-step radauIIA5 runs our Radau IIA stepper on the given step size."""
    lam = torch.tensor([-1.0, -1000.0], dtype=F64, requires_grad=True)  # stiff: h·|λ| up to 100
    y0 = torch.ones(2, dtype=F64)
    t = _t(0.0, 0.5, 1.0)
    hs, errors = [0.1, 0.05, 0.025], []
    for h in hs:
        ys = odeint(lambda t, y: lam * y, y0, t, method="radauIIA5", options={"step_size": h})
        errors.append((ys[-1, 0] - math.exp(-1.0)).abs().item())
        assert abs(ys[-1, 1].item()) < 1e-6  # L-stable: the stiff mode is damped, not amplified
    assert _slope(hs, errors) > 4.5, errors
    ys[-1, 0].backward()  # d y(1) / d λ₀ = 1 · e^{-1}
    assert lam.grad[0].item() == pytest.approx(math.exp(-1.0), rel=1e-8)


def test_radau_iia5_on_long_grid_steps_float32_and_adjoint():
    """On a grid whose steps cannot shrink, Newton is not abandoned early: a float32 state with odeint's
    default rtol (below float32 resolution) and the adjoint's augmented state both solve."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(2, 10), torch.nn.Tanh(), torch.nn.Linear(10, 2), torch.nn.Tanh()
    )
    ys = odeint(lambda t, y: net(y), torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), method="radauIIA5")
    ref = odeint(
        lambda t, y: net(y), torch.tensor([1.0, 2.0]), torch.tensor([0.0, 1.0]), rtol=1e-6, atol=1e-6
    )
    assert torch.isfinite(ys).all() and (ys - ref).abs().max() < 1e-3  # one step of h = 1, order 5
    model = Linear()
    y0 = torch.tensor([0.5], dtype=F64)
    t = torch.linspace(0.0, 4.0, 6, dtype=F64)
    (g_adj,) = torch.autograd.grad(odeint_adjoint(model, y0, t, method="radauIIA5").sum(), model.a)
    (g_bp,) = torch.autograd.grad(odeint(model, y0, t, method="radauIIA5").sum(), model.a)
    assert g_adj.item() == pytest.approx(g_bp.item(), rel=1e-3)


def test_fixed_steps_default_to_the_t_grid_step_size_and_grid_constructor():
    growth = lambda t, y: y  # noqa: E731
    y0 = torch.ones((), dtype=F64)
    assert odeint(growth, y0, _t(0, 0.5, 1), method="euler")[-1].item() == pytest.approx(1.5**2)
    ys = odeint(growth, y0, _t(0, 1), method="euler", options={"step_size": 0.1})
    assert ys[-1].item() == pytest.approx(1.1**10)
    grid = lambda f, y0, t: torch.linspace(0, 1, 5)  # noqa: E731
    ys = odeint(growth, y0, _t(0, 1), method="euler", options={"grid_constructor": grid})
    assert ys[-1].item() == pytest.approx(1.25**4)


@pytest.mark.parametrize("perturb", [False, True])
def test_perturb_evaluates_just_inside_each_step(perturb):
    seen = []

    def f(t, y):
        seen.append(t.item())
        return -y

    odeint(
        f, torch.ones(1, dtype=F64), _t(0, 1), method="rk4", options={"step_size": 0.5, "perturb": perturb}
    )
    on_grid = {0.0, 0.5, 1.0} & set(seen)
    assert on_grid == (set() if perturb else {0.0, 0.5, 1.0})


def _slope(hs, errors):
    return np.polyfit(np.log(hs), np.log(errors), 1)[0]


@pytest.mark.parametrize("method,order", [("explicit_adams", 4), ("implicit_adams", 5)])
def test_adams_methods_converge_at_their_order(method, order):
    hs = [0.1, 0.05, 0.025]
    errors = []
    for h in hs:
        ys = odeint(decay, torch.ones(1, dtype=F64), _t(0, 2), method=method, options={"step_size": h},
                    rtol=1e-13, atol=1e-13)  # fmt: skip
        errors.append(abs(ys[-1].item() - math.exp(-2)))
    assert _slope(hs, errors) == pytest.approx(order, abs=0.35), errors


def test_adams_weights_integrate_polynomials_exactly():
    nodes = np.array([0.0, -1.0, -2.5, -3.0])  # a non-uniform history
    beta = adams_weights(nodes)
    for m in range(4):
        assert beta @ nodes**m == pytest.approx(1 / (m + 1))


NEW_METHODS = ["dopri8", "fehlberg2", "adaptive_heun", "heun2", "heun3", "explicit_adams", "implicit_adams"]


@pytest.mark.parametrize("method", NEW_METHODS)
def test_float64_gradcheck_of_new_methods(method):
    t = torch.linspace(0, 1, 4, dtype=F64)
    options = {"step_size": 0.05} if method in FIXED + ["heun2", "heun3"] else {}
    # second-order pairs would need ~10^5 steps at 1e-10; a looser tolerance keeps the check about seconds
    rtol = 1e-7 if method in ("fehlberg2", "adaptive_heun") else 1e-10

    y0 = torch.tensor([0.5, -0.2], dtype=F64, requires_grad=True)

    def through_params(y0, a, b):
        field = lambda t, y: a * y + b * torch.sin(t) * y**2  # noqa: E731
        return odeint(field, y0, t, method=method, options=options, rtol=rtol, atol=rtol * 1e-2)

    a = torch.tensor(-0.7, dtype=F64, requires_grad=True)
    b = torch.tensor(0.3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(through_params, (y0, a, b))


@pytest.mark.parametrize("adjoint", [False, True])
def test_gradients_with_respect_to_the_times(adjoint):
    t = _t(0.2, 1.0).requires_grad_(True)
    y0 = torch.tensor([1.5], dtype=F64)
    solve = odeint_adjoint if adjoint else odeint
    kwargs = {"adjoint_params": ()} if adjoint else {}
    ys = solve(decay, y0, t, rtol=1e-10, atol=1e-12, **kwargs)
    (grad,) = torch.autograd.grad(ys[-1].sum(), t)
    y1 = 1.5 * math.exp(-0.8)
    torch.testing.assert_close(grad, _t(y1, -y1), atol=1e-7, rtol=1e-7)  # d/dt0 = +y1, d/dt1 = -y1


@pytest.mark.parametrize("method", ["dopri5", "bosh3", "dopri8", "rk4"])
@pytest.mark.parametrize("adjoint", [False, True])
def test_event_time_is_found_and_differentiable(method, adjoint):
    """y' = -y from y0 crosses 0.5 at t* = log(2 y0): dt*/dy0 = 1/y0."""
    y0 = torch.tensor([1.3], dtype=F64, requires_grad=True)
    options = {"step_size": 0.01} if method == "rk4" else {}
    kwargs = {"adjoint_params": ()} if adjoint else {}
    t_event, ys = odeint_event(decay, y0, _t(0.0), event_fn=lambda t, y: y.sum() - 0.5, method=method,
                               options=options, odeint_interface=odeint_adjoint if adjoint else odeint,
                               rtol=1e-10, atol=1e-12, **kwargs)  # fmt: skip
    assert t_event.item() == pytest.approx(math.log(2.6), abs=1e-6)
    assert ys.shape == (2, 1) and ys[-1].item() == pytest.approx(0.5, abs=1e-6)
    (grad,) = torch.autograd.grad(t_event, y0)
    assert grad.item() == pytest.approx(1 / 1.3, rel=1e-4)


def test_callbacks_are_called_for_every_step():
    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.counts = {"step": 0, "accept": 0, "reject": 0}
            self.callback_step = lambda t, y, dt: self._count("step")
            self.callback_accept_step = lambda t, y, dt: self._count("accept")
            self.callback_reject_step = lambda t, y, dt: self._count("reject")

        def _count(self, name):
            self.counts[name] += 1

        def forward(self, t, y):
            return torch.cos(20 * t) * y

    f = Field()
    odeint(f, torch.ones(2, dtype=F64), _t(0, 1), method="dopri5")
    c = f.counts
    assert c["step"] > 0 and c["accept"] + c["reject"] == c["step"]
    fixed = Field()
    fixed.callback_accept_step = None
    fixed.callback_reject_step = None
    odeint(fixed, torch.ones(2, dtype=F64), _t(0, 1), method="rk4", options={"step_size": 0.1})
    assert fixed.counts["step"] == 10


def test_jump_t_saves_work_at_a_discontinuity():
    def make():
        calls = [0]

        def f(t, y):
            calls[0] += 1
            return -y if t < 0.5 else y**2

        return f, calls

    plain, n_plain = make()
    jump, n_jump = make()
    y0 = torch.tensor([1.0, 2.0], dtype=F64)
    a = odeint(plain, y0, _t(0, 1), rtol=1e-8, atol=1e-8)
    b = odeint(jump, y0, _t(0, 1), rtol=1e-8, atol=1e-8, options={"jump_t": _t(0.5)})
    assert n_jump[0] < n_plain[0]
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_step_t_and_max_step_shape_the_steps():
    starts = []
    f = lambda t, y: -y  # noqa: E731
    g = type("G", (torch.nn.Module,), {"forward": lambda self, t, y: f(t, y)})()
    g.callback_accept_step = lambda t, y, dt: starts.append((t.item(), dt.item()))
    odeint(g, torch.ones(1, dtype=F64), _t(0, 1), options={"step_t": _t(0.37), "max_step": 0.1})
    assert any(abs(t - 0.37) < 1e-12 for t, _ in starts) and max(dt for _, dt in starts) <= 0.1 + 1e-12


def test_norm_option_and_adjoint_norms_are_used():
    calls = {"forward": 0, "adjoint": 0}

    def norm(x):
        calls["forward"] += 1
        assert x.shape == (2,)
        return x.abs().max()

    def adjoint_norm(parts):
        calls["adjoint"] += 1
        t_, y, a, p = parts
        return torch.stack([y.abs().max(), a.abs().max(), p.abs().max()]).max()

    p = torch.tensor(0.5, dtype=F64, requires_grad=True)
    field = lambda t, y: -p * y  # noqa: E731
    ys = odeint_adjoint(
        field, torch.ones(2, dtype=F64), _t(0, 1), options={"norm": norm}, adjoint_params=(p,),
        adjoint_options={"norm": adjoint_norm},
    )  # fmt: skip
    ys[-1].sum().backward()
    assert calls["forward"] > 0 and calls["adjoint"] > 0
    assert p.grad.item() == pytest.approx(-2 * math.exp(-0.5), rel=1e-5)


def test_seminorm_takes_no_more_backward_steps_than_the_full_norm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 64), torch.nn.Tanh(), torch.nn.Linear(64, 2)).double()
    f = type("F", (torch.nn.Module,), {})()
    counts = []
    f.net = net
    f.forward = lambda t, y: (counts.__setitem__(0, counts[0] + 1), net(y))[1]
    nfe = {}
    for name, opts in (("full", {}), ("seminorm", {"norm": "seminorm"})):
        counts[:] = [0]
        ys = odeint_adjoint(f, torch.ones(2, dtype=F64), _t(0, 1), adjoint_options=opts,
                            adjoint_params=tuple(net.parameters()), rtol=1e-8, atol=1e-8)  # fmt: skip
        counts[:] = [0]
        ys.sum().backward()
        nfe[name] = counts[0]
    assert nfe["seminorm"] <= nfe["full"]


def test_complex_states():
    t = torch.linspace(0, 2, 5, dtype=F64)
    ys = odeint(lambda t, y: 1j * y, torch.ones(1, dtype=torch.complex128), t, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(ys[:, 0], torch.exp(1j * t), atol=1e-8, rtol=1e-8)


def test_adjoint_when_f_ignores_the_state_and_has_no_parameters():
    y0 = torch.tensor([1.0, 2.0], dtype=F64, requires_grad=True)
    ys = odeint_adjoint(lambda t, y: torch.ones(2, dtype=F64), y0, _t(0, 1), adjoint_params=())
    ys[-1].sum().backward()
    torch.testing.assert_close(y0.grad, torch.ones(2, dtype=F64))
    torch.testing.assert_close(ys[-1].detach(), y0.detach() + 1)


def test_adjoint_options_method_and_tolerances():
    f = Linear()
    y0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    ref = odeint(f, y0, _t(0, 1), rtol=1e-10, atol=1e-12)
    (g_ref,) = torch.autograd.grad(ref[-1].sum(), f.a)
    ys = odeint_adjoint(
        f, y0, _t(0, 1), rtol=1e-10, atol=1e-12, adjoint_method="rk4",
        adjoint_options={"step_size": 0.01}, adjoint_rtol=1e-6, adjoint_atol=1e-8,
    )  # fmt: skip
    (g,) = torch.autograd.grad(ys[-1].sum(), f.a)
    assert g.item() == pytest.approx(g_ref.item(), rel=1e-6)


def test_scipy_solver_forward_and_adjoint():
    f = Linear()
    y0 = torch.tensor([0.5], dtype=F64, requires_grad=True)
    ref = odeint(f, y0, _t(0, 1), rtol=1e-10, atol=1e-12)
    (g_ref,) = torch.autograd.grad(ref[-1].sum(), y0)
    ys = odeint_adjoint(f, y0, _t(0, 1), method="scipy_solver", options={"solver": "DOP853"}, rtol=1e-10,
                        atol=1e-12)  # fmt: skip
    torch.testing.assert_close(ys.detach(), ref.detach(), atol=1e-8, rtol=1e-8)
    (g,) = torch.autograd.grad(ys[-1].sum(), y0)
    assert g.item() == pytest.approx(g_ref.item(), rel=1e-6)


def test_a_stiff_solve_stops_in_bounded_steps_and_says_it_is_stiff():
    def vdp(t, y, mu=1000.0):
        return torch.stack([y[1], mu * (1 - y[0] ** 2) * y[1] - y[0]])

    with pytest.raises(SolveError, match="(?s)max_num_steps.*|stiff") as err:
        odeint(vdp, _t(2.0, 0.0), _t(0, 3000), options={"max_num_steps": 1500})
    assert "stiff" in str(err.value) and "max_num_steps" in str(err.value)


def test_neural_ode_torchdiffeq_backend_without_saveat_integrates():
    pytest.importorskip("torchdiffeq")
    from sciml.neural_de import NeuralODE
    from sciml.neural_de.tasks import TimeConcatField

    torch.manual_seed(0)
    field = TimeConcatField(4, 16).double()
    x = torch.randn(8, 4, dtype=F64)
    ours = NeuralODE(field, (0.0, 1.0), rtol=1e-8, atol=1e-8, backend="backprop")(x).ys
    theirs = NeuralODE(field, (0.0, 1.0), rtol=1e-8, atol=1e-8, backend="torchdiffeq")(x).ys
    assert theirs.shape == ours.shape == (1, 8, 4)
    assert (theirs - x).abs().max() > 1e-2  # not the input handed back
    torch.testing.assert_close(theirs, ours, atol=1e-6, rtol=1e-6)


def test_an_adaptive_implicit_method_name_points_to_solve():
    f = lambda t, y: -y  # noqa: E731
    with pytest.raises(ValueError, match=r"'radauIIA5'.*'rodas5p' is an adaptive implicit method .*solve\("):
        odeint(f, torch.ones(1), torch.linspace(0, 1, 3), method="rodas5p")

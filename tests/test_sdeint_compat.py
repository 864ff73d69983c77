"""torchsde drop-in: ``sdeint``/``sdeint_adjoint`` defaults, contract, new methods, orders, gradients."""

import math

import pytest
import torch
import torchsde
from sciml.solvers.sde import sdeint, sdeint_adjoint

from sciml import sdeint as top_level_sdeint

DT = torch.float64


class GBM(torch.nn.Module):
    """dY = mu Y dt + sigma Y dW (diagonal noise); exact Stratonovich solution y0 exp(mu t + sigma W)."""

    noise_type = "diagonal"

    def __init__(self, sde_type="stratonovich", mu=0.4, sigma=0.6):
        super().__init__()
        self.sde_type = sde_type
        self.mu = torch.nn.Parameter(torch.tensor([mu, -mu], dtype=DT))
        self.sigma = torch.nn.Parameter(torch.tensor([sigma, 0.5 * sigma], dtype=DT))

    def f(self, t, y):
        return self.mu * y

    def g(self, t, y):
        return self.sigma * y

    def h(self, t, y):
        return self.mu * y


class General(torch.nn.Module):
    noise_type = "general"

    def __init__(self, sde_type="stratonovich"):
        super().__init__()
        self.sde_type = sde_type
        self.w = torch.nn.Parameter(torch.tensor([[0.3, -0.2, 0.1], [0.2, 0.1, -0.3]], dtype=DT))

    def f(self, t, y):
        return -0.5 * y + torch.sin(t)

    def g(self, t, y):
        return self.w * torch.cos(y).unsqueeze(-1)


def _bm(batch, m, area="none", entropy=3, t1=1.0):
    return torchsde.BrownianInterval(0.0, t1, size=(batch, m), dtype=DT, entropy=entropy,
                                     levy_area_approximation=area)  # fmt: skip


@pytest.mark.parametrize(
    "model, method, area",
    [(GBM("ito"), None, "space-time"), (General("ito"), None, "none"), (GBM(), None, "none"),
     (General(), "heun", "none"), (General(), "reversible_heun", "none"), (General(), "log_ode", "foster"),
     (GBM(), "milstein", "none"), (GBM("ito"), "milstein", "none")],
)  # fmt: skip
def test_fixed_steps_match_torchsde_on_the_same_path(model, method, area):
    y0 = torch.rand(4, 2, dtype=DT) + 0.5
    ts = torch.linspace(0, 1, 5, dtype=DT)
    m = 3 if model.noise_type == "general" else 2
    with torch.no_grad():
        ours = sdeint(model, y0, ts, bm=_bm(4, m, area), method=method, dt=1 / 32)
        theirs = torchsde.sdeint(model, y0, ts, bm=_bm(4, m, area), method=method, dt=1 / 32)
    torch.testing.assert_close(ours, theirs, rtol=1e-11, atol=1e-11)


def test_defaults_are_torchsdes_fixed_steps_and_adaptive_is_one_keyword_away():
    model, y0 = GBM("ito"), torch.ones(8, 2, dtype=DT)
    assert top_level_sdeint is sdeint
    with torch.no_grad():
        fixed = sdeint(model, y0, [0.0, 1.0], bm=_bm(8, 2, "space-time"))
        exact_dt = sdeint(model, y0, [0.0, 1.0], bm=_bm(8, 2, "space-time"), method="sriw2", dt=1e-3)
        adaptive = sdeint(
            model, y0, [0.0, 1.0], bm=_bm(8, 2, "space-time"), adaptive=True, rtol=1e-4, atol=1e-4
        )
    torch.testing.assert_close(fixed, exact_dt, rtol=0, atol=0)  # default: srk = SRI2 on dt = 1e-3
    torch.testing.assert_close(adaptive, fixed, rtol=3e-3, atol=0)  # same path, another discretisation


@pytest.mark.parametrize("method", ["midpoint", "heun", "reversible_heun", "milstein"])
def test_strong_order_one_on_stratonovich_gbm(method):
    model, y0 = GBM(), torch.full((256, 2), 1.0, dtype=DT)
    bm = _bm(256, 2, entropy=11)
    W1 = bm(0.0, 1.0)
    exact = y0 * torch.exp(model.mu.detach() + model.sigma.detach() * W1)
    errors, steps = [], [2**-k for k in range(4, 8)]
    with torch.no_grad():
        for dt in steps:
            y1 = sdeint(model, y0, [0.0, 1.0], bm=bm, method=method, dt=dt)[-1]
            errors.append(float((y1 - exact).abs().mean()))
    slope = (math.log(errors[0]) - math.log(errors[-1])) / (math.log(steps[0]) - math.log(steps[-1]))
    assert 0.8 < slope < 1.4, (method, errors, slope)


def test_logqp_extra_and_reversible_heun_round_trip():
    model, y0 = GBM(), torch.full((4, 2), 0.5, dtype=DT)
    ts = torch.linspace(0, 1, 11, dtype=DT)
    ys, log_ratio = sdeint(model, y0, ts, dt=0.1, logqp=True, bm=_bm(4, 3))
    assert ys.shape == (11, 4, 2) and log_ratio.shape == (10, 4)
    assert float(log_ratio.detach().abs().max()) == 0.0  # prior drift h = f: no penalty
    bm = _bm(4, 2)
    ys, (f, g, z) = sdeint(model, y0, ts, bm=bm, method="reversible_heun", dt=0.1, extra=True)

    class Minus(torch.nn.Module):
        noise_type, sde_type = "diagonal", "stratonovich"

        def f(self, t, y):
            return -model.f(-t, y)

        def g(self, t, y):
            return -model.g(-t, y)

    back = sdeint(Minus(), ys[-1], -ts.flip(0), bm=torchsde.ReverseBrownian(bm), method="reversible_heun",
                  dt=0.1, extra_solver_state=(-f, -g, z))  # fmt: skip
    torch.testing.assert_close(back.flip(0), ys, rtol=1e-10, atol=1e-10)


def test_f_and_g_and_g_prod_contracts_give_identical_results():
    class FG(General):
        def f_and_g(self, t, y):
            return self.f(t, y), self.g(t, y)

    class Prod(torch.nn.Module):
        noise_type, sde_type = "general", "stratonovich"

        def __init__(self, base):
            super().__init__()
            self.base = base

        def f_and_g_prod(self, t, y, v):
            return self.base.f(t, y), torch.bmm(self.base.g(t, y), v.unsqueeze(-1)).squeeze(-1)

    base, y0 = General(), torch.rand(3, 2, dtype=DT)
    fg = FG()
    fg.load_state_dict(base.state_dict())
    outs = [sdeint(sde, y0, [0.0, 1.0], bm=_bm(3, 3), dt=0.05)[-1] for sde in (base, fg, Prod(base))]
    assert all(torch.equal(o, outs[0]) for o in outs[1:])


@pytest.mark.parametrize("method", ["milstein", "srk", "midpoint", "reversible_heun"])
def test_adjoint_gradients_equal_backprop(method):
    model = GBM("ito" if method in ("milstein", "srk") else "stratonovich")
    y0 = torch.full((4, 2), 0.7, dtype=DT, requires_grad=True)
    ts = torch.linspace(0, 1, 4, dtype=DT)
    grads = []
    for fn in (sdeint, sdeint_adjoint):
        bm = _bm(4, 2, "space-time")
        ys = fn(model, y0, ts, bm=bm, method=method, dt=0.05)
        grads.append(torch.autograd.grad((ys**2).sum(), (y0, *model.parameters())))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("logqp", [False, True])
def test_adjoint_output_joins_autograd_when_the_solution_ignores_the_parameters(logqp):
    # torchsde's sdeint_adjoint output requires grad whenever the SDE has parameters requiring grad; ours was
    # a constant when f and g used none of them, and loss.backward() raised (torchsde's test_basic)
    class Constant(torch.nn.Module):
        noise_type, sde_type = "diagonal", "ito"

        def __init__(self):
            super().__init__()
            self.unused = torch.nn.Parameter(torch.ones(3, dtype=DT))

        def f(self, t, y):
            return torch.full_like(y, 0.5)

        def g(self, t, y):
            return torch.full_like(y, 0.2)

        def h(self, t, y):
            return torch.zeros_like(y)

    sde, y0 = Constant(), torch.zeros(5, 3, dtype=DT)
    if logqp:
        ys, log_ratio = sdeint_adjoint(sde, y0, [0.0, 1.0], method="milstein", dt=0.1, logqp=True)
        (ys.sum() + log_ratio.sum()).backward()
    else:
        ys = sdeint_adjoint(sde, y0, [0.0, 1.0], bm=_bm(5, 3), method="milstein", dt=0.1)
        ys.sum().backward()
        torch.testing.assert_close(ys[-1], torch.full((5, 3), 0.5, dtype=DT) + _bm(5, 3)(0.0, 1.0) * 0.2)
    assert torch.equal(sde.unused.grad, torch.zeros(3, dtype=DT))
    with torch.no_grad():
        assert not sdeint_adjoint(sde, y0, [0.0, 1.0], bm=_bm(5, 3), method="milstein", dt=0.1).requires_grad


def test_gradcheck_of_new_methods_in_float64():
    model = General()
    bm = _bm(2, 3, "foster")
    for method in ("heun", "log_ode", "reversible_heun"):

        def fn(y0, method=method):
            return sdeint(model, y0, [0.0, 0.5], bm=bm, method=method, dt=0.1)[-1]

        assert torch.autograd.gradcheck(fn, (torch.rand(2, 2, dtype=DT, requires_grad=True),))


def test_what_torchsde_refuses_and_what_we_cannot_match_are_named():
    model, y0 = GBM(), torch.ones(2, 2, dtype=DT)
    with pytest.raises(ValueError, match="'srk' supports SDE types \\['ito'\\]"):
        sdeint(model, y0, [0.0, 1.0], method="srk")
    with pytest.raises(ValueError, match="'davie' or 'foster'"):
        sdeint(model, y0, [0.0, 1.0], method="log_ode", bm=_bm(2, 2))
    with pytest.raises(ValueError, match="only method option is 'grad_free'"):
        sdeint(model, y0, [0.0, 1.0], method="milstein", options={"grad_fre": True})
    with pytest.raises(ValueError, match="adjoint SDE.*torchsde.sdeint_adjoint"):
        sdeint_adjoint(model, y0, [0.0, 1.0], method="midpoint", adjoint_method="heun")
    with pytest.raises(ValueError, match="leave them at their defaults"):
        sdeint_adjoint(model, y0, [0.0, 1.0], adjoint_rtol=1e-3)
    with pytest.raises(ValueError, match="strictly increasing"):
        sdeint(model, y0, [0.0, 0.0])

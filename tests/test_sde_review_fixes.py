"""Fixes from the SDE review: Milstein's autograd term on scalar noise, the initial step (its exponent and
the underflow limit), sdeint's input checks and warning, log-ODE's default Brownian motion, and messages."""

import numpy as np
import pytest
import torch
import torchsde
from sciml.problems.sde import SDEProblem
from sciml.solvers.controllers import IController
from sciml.solvers.sde import brownian_interval, sdeint, single_step, solve

from sciml.neural_de.sde import NeuralSDE

DT = torch.float64
pytestmark = pytest.mark.usefixtures("one_thread")

# dy = A y dt + B y dW, one Brownian channel, d = 2, ∂g = B not symmetric; A and B commute: closed form
B = torch.tensor([[0.2, 0.5], [-0.3, 0.1]], dtype=DT)
A = -0.5 * torch.eye(2, dtype=DT) + 0.4 * B


class ScalarLinear(torch.nn.Module):
    noise_type = "scalar"

    def __init__(self, sde_type):
        super().__init__()
        self.sde_type = sde_type

    def f(self, t, y):
        return y @ A.T

    def g(self, t, y):
        return (y @ B.T)[..., None]


@pytest.mark.parametrize("sde_type", ["ito", "stratonovich"])
def test_milstein_autograd_term_has_strong_order_one_on_scalar_noise_in_two_dimensions(sde_type):
    y0 = torch.tensor([1.0, 0.5], dtype=DT).expand(200, 2).clone()
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(200, 1), dtype=DT, entropy=7)
    drift = A - 0.5 * B @ B if sde_type == "ito" else A
    exact = (torch.linalg.matrix_exp(drift + B * bm(0.0, 1.0)[..., None]) @ y0[..., None]).squeeze(-1)
    dts = [2.0**-k for k in range(3, 8)]
    errors = {}
    with torch.no_grad():
        for grad_free in (False, True):  # sdeint's default options: grad_free=False (g ∂g by autograd)
            errors[grad_free] = [
                float((sdeint(ScalarLinear(sde_type), y0, [0.0, 1.0], bm=bm, method="milstein", dt=dt,
                              options={"grad_free": grad_free})[-1] - exact).abs().mean())
                for dt in dts
            ]  # fmt: skip
    for grad_free, errs in errors.items():
        assert 0.9 < np.polyfit(np.log(dts), np.log(errs), 1)[0] < 1.15, (grad_free, errs)
    assert 0.7 < errors[False][-1] / errors[True][-1] < 1.3, errors  # both converge to the same solution


def test_automatic_initial_step_stays_above_the_underflow_limit():
    # the reviewer's repro: the automatic step (1e-10) was below the limit 1e-9·(t1 − t0) on the first step
    stiff = SDEProblem(lambda t, y: -1000.0 * (y - torch.cos(t)), lambda t, y: 0.2 * y,
                       torch.zeros(8, 1, dtype=DT), (0.0, 1.0))  # fmt: skip
    bm = brownian_interval(stiff, entropy=2)
    with torch.no_grad():
        y1 = solve(stiff, "milstein", bm=bm, rtol=1e-2, atol=1e-2).ys[-1]
        reference = solve(stiff, "sosri", bm=bm, dt=2**-9, stiffness=False).ys[-1]  # 2e-3 from dt = 2^-13's
    assert float((y1 - reference).abs().max()) < 1e-2
    # with dt_min = 0.01 the automatic step (5e-4) started below dt_min and the solve ended in an underflow
    gbm = SDEProblem(lambda t, y: -y, lambda t, y: 0.3 * y, torch.ones(64, 1, dtype=DT), (0.0, 1.0))
    bm = brownian_interval(gbm, entropy=3)
    sol = solve(gbm, "milstein", bm=bm, rtol=1e-3, atol=1e-3, controller=IController(dt_min=1e-2))
    exact = torch.exp(-1.045 + 0.3 * bm(0.0, 1.0))
    assert float(sol.step_sizes.min()) >= 1e-2 and float((sol.ys[-1] - exact).abs().mean()) < 2e-2
    # an underflow before any step is accepted is not a blow-up
    sol = solve(gbm, "milstein", bm=bm, rtol=1e-6, atol=1e-6, controller=IController(dt_min=0.1), throw=False)
    assert sol.stats.n_accepted == 0 and "first step" in sol.message and "blow up" not in sol.message


def test_scaled_error_at_the_automatic_initial_step_is_near_hairers_target():
    # the drift's part of every embedded estimate is O(h²): with exponent 1/k it was E ≈ 1e-4 … 1e-5
    y0 = torch.randn(64, 2, dtype=DT, generator=torch.Generator().manual_seed(0))
    cases = [(lambda t, y: -y, lambda t, y: 0.3 * y), (lambda t, y: 10 * (1 - y), lambda t, y: 0.5 * y),
             (lambda t, y: -3 * y, lambda t, y: 1e-9 * y)]  # fmt: skip
    for f, g in cases:
        problem = SDEProblem(f, g, y0, (0.0, 1.0))
        bm = brownian_interval(problem, entropy=0)
        for method in ("sosri", "milstein"):
            step = single_step(problem, method, 0.0, y0, bm, None, rtol=1e-3, atol=1e-3, stiffness=False)
            assert 2e-3 < float(step.error_estimate) < 5e-2, (method, step.h, float(step.error_estimate))


class Diagonal(torch.nn.Module):
    noise_type, sde_type = "diagonal", "ito"

    def f(self, t, y):
        return -y

    def g(self, t, y):
        return 0.3 * y


def _bm_for(y0):
    return torchsde.BrownianInterval(
        0.0, 1.0, size=y0.shape, dtype=y0.dtype, entropy=3, levy_area_approximation="space-time"
    )


def test_sdeint_checks_its_input_like_solve():
    y0, ts = torch.ones(4, 2, dtype=DT), [0.0, 1.0]
    with pytest.raises(ValueError, match="`rtol` must be positive"):
        sdeint(Diagonal(), y0, ts, adaptive=True, rtol=-1e-3, atol=-1e-3)
    with pytest.raises(ValueError, match="`rtol` must be positive"):
        sdeint(Diagonal(), y0, ts, adaptive=True, rtol=0.0, atol=0.0)
    with pytest.raises(ValueError, match="`y0` must be finite"):
        sdeint(Diagonal(), torch.full((4, 2), float("nan"), dtype=DT), ts, dt=0.1)
    # fixed steps ignore the tolerances, as torchsde's do: a script passing rtol=0 still runs
    fixed = sdeint(Diagonal(), y0, ts, dt=0.1, rtol=0.0, atol=0.0, bm=_bm_for(y0))
    torch.testing.assert_close(fixed, sdeint(Diagonal(), y0, ts, dt=0.1, bm=_bm_for(y0)), rtol=0, atol=0)
    single = type("Single", (Diagonal,), {"f": lambda self, t, y: (-y).float()})
    with pytest.raises(ValueError, match="`f` returned torch.float32 .* for y0 of torch.float64"):
        sdeint(single(), y0, ts, dt=0.1)


class GeneralIto(torch.nn.Module):
    noise_type, sde_type = "general", "ito"

    def f(self, t, y):
        return -y

    def g(self, t, y):
        return torch.stack([0.3 * y, 0.2 * y.flip(-1)], -1)


def test_sdeint_adaptive_default_method_on_general_noise_warns_as_torchsde():
    with pytest.warns(UserWarning, match="not guaranteed to converge"):
        sdeint(GeneralIto(), torch.ones(2, 2, dtype=DT), [0.0, 1.0], adaptive=True, rtol=1e-2, atol=1e-2)


def _noncommuting(t, y):
    """Two Brownian channels ``(0.3 y2, 0)`` and ``(0, 0.2 y1)``: their Lie bracket is not zero."""
    zero = torch.zeros_like(y[:, 0])
    return torch.stack([torch.stack([0.3 * y[:, 1], zero], -1), torch.stack([zero, 0.2 * y[:, 0]], -1)], 1)


def test_log_ode_gets_a_brownian_motion_with_levy_area_or_a_clear_refusal():
    problem = SDEProblem(lambda t, y: -y, _noncommuting, torch.ones(4, 2, dtype=DT), (0.0, 1.0), "general",
                         "stratonovich")  # fmt: skip
    with torch.no_grad():
        default = solve(problem, "log_ode", dt=0.1, entropy=5).ys[-1]
        foster = brownian_interval(problem, entropy=5, levy_area_approximation="foster")
        assert torch.equal(default, solve(problem, "log_ode", bm=foster, dt=0.1).ys[-1])
        # the Lévy-area term is there: without it (midpoint) the non-commuting noise gives another value
        assert float((default - solve(problem, "midpoint", bm=foster, dt=0.1).ys[-1]).abs().max()) > 1e-4
    with pytest.raises(ValueError, match="levy_area_approximation 'davie' or 'foster'"):
        solve(problem, "log_ode", bm=brownian_interval(problem, entropy=5), dt=0.1)


def test_scalar_noise_with_two_channels_names_the_shape_of_g():
    g = lambda t, y: torch.stack([y, y], -1)  # noqa: E731
    problem = SDEProblem(lambda t, y: -y, g, torch.ones(4, 2, dtype=DT), (0.0, 1.0), "scalar")
    expected = r"`g` returned shape \(4, 2, 2\) but 'scalar' noise needs \(batch, d, 1\) = \(4, 2, 1\)"
    with pytest.raises(ValueError, match=expected):
        solve(problem, "sosri")
    sde = type("Scalar2", (Diagonal,), {"noise_type": "scalar", "g": lambda self, t, y: g(t, y)})
    with pytest.raises(ValueError, match=expected):
        sdeint(sde(), problem.y0, [0.0, 1.0], dt=0.1)


@pytest.mark.parametrize("types", [{"noise_type": "diag"}, {"sde_type": "Ito"}])
def test_neural_sde_names_the_valid_noise_and_sde_types(types):
    name = next(iter(types))
    valid = {"noise_type": "'diagonal', 'additive'", "sde_type": "'ito', 'stratonovich'"}[name]
    with pytest.raises(ValueError, match=f"`{name}` must be one of .*{valid}"):
        NeuralSDE(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2), **types)


class ProductOnly(torch.nn.Module):
    noise_type, sde_type = "general", "stratonovich"

    def f_and_g_prod(self, t, y, v):
        return -y, torch.stack([0.3 * y[:, 1] * v[:, 0], 0.2 * y[:, 0] * v[:, 1]], -1)


class WithG(ProductOnly):
    def f(self, t, y):
        return -y

    def g(self, t, y):
        return _noncommuting(t, y)


def test_an_sde_with_only_g_prod_is_pointed_to_the_methods_that_work():
    y0 = torch.ones(4, 2, dtype=DT)
    bm = torchsde.BrownianInterval(0.0, 1.0, size=(4, 2), dtype=DT, entropy=1)
    with pytest.raises(ValueError, match="define `g` .*, or choose midpoint or heun \\(") as refusal:
        sdeint(ProductOnly(), y0, [0.0, 1.0], bm=bm, method="euler_heun", dt=0.1)
    assert "euler" not in str(refusal.value).split("choose")[1]
    for method in ("midpoint", "heun"):  # the named methods run on g_prod alone and match the g-defined SDE
        ours = sdeint(ProductOnly(), y0, [0.0, 1.0], bm=bm, method=method, dt=0.1)
        torch.testing.assert_close(ours, sdeint(WithG(), y0, [0.0, 1.0], bm=bm, method=method, dt=0.1))

"""The stiff neural-ODE task: its data generator, gradients through the implicit solver, training."""

import numpy as np
import pytest
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import solve

from sciml.neural_de import ErrorEstimateRegularizer, NeuralODE
from sciml.neural_de.kinetics import (
    NOISE,
    OBSERVATION_TIMES,
    RATES,
    SCALES,
    KineticsField,
    _kinetics_data,
    kinetics_data,
    kinetics_rhs,
    log_time,
)
from sciml.neural_de.tasks import get_task


@pytest.fixture(scope="module")
def small_data():
    return kinetics_data(3, seed=5)


def test_generator_is_deterministic_conserves_mass_and_stays_positive(small_data):
    c0, truth, observed = small_data
    again = _kinetics_data.__wrapped__(3, 5)  # generated afresh, not from the cache
    for a, b in zip(small_data, again):
        np.testing.assert_array_equal(a, b)
    assert truth.shape == observed.shape == (3, len(OBSERVATION_TIMES), 4)
    mass = np.broadcast_to(c0.sum(-1)[:, None], truth.shape[:2])
    np.testing.assert_allclose(truth.sum(-1), mass, rtol=0, atol=1e-12)  # A + B + C + D
    assert truth.min() > -1e-14  # mass action keeps concentrations non-negative
    # the noise is what the docstring says: scaled observations minus the truth, std NOISE
    residual = observed - truth / np.asarray(SCALES)
    assert abs(residual.std() / NOISE - 1) < 0.15


def test_generator_agrees_with_scipy_radau(small_data):
    from scipy.integrate import solve_ivp

    c0, truth, _ = small_data
    times = np.asarray(OBSERVATION_TIMES)
    k1, k2, k3, k4 = RATES

    def jac(t, y):  # exact Jacobian (scipy's difference quotients overflow on this problem)
        a, b, c, _ = y
        return np.array([[-k1, k3 * c, k3 * b, 0], [k1, -2 * k2 * b - k3 * c, -k3 * b, 0],
                         [0, 2 * k2 * b, -k4, 0], [0, 0, k4, 0]])  # fmt: skip

    ref = solve_ivp(lambda t, y: kinetics_rhs(y), (0, times[-1]), c0[0], method="Radau", t_eval=times,
                    rtol=1e-9, atol=1e-15, jac=jac).y.T  # fmt: skip
    scale = np.asarray(SCALES)
    np.testing.assert_allclose(truth[0] / scale, ref / scale, rtol=0, atol=1e-6)


def test_rates_span_many_decades_and_the_problem_is_stiff():
    assert max(RATES) / min(RATES) >= 1e6
    field = KineticsField(torch.log(torch.tensor(RATES, dtype=torch.float64))).double()
    x = torch.tensor([[0.5, 1.0, 0.5, 0.0]], dtype=torch.float64)  # B at 1e-5
    tau = torch.tensor(log_time(1e3), dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda y: field(tau, y), x).reshape(4, 4)
    # the fast eigenvalue (in log-time) is far beyond any explicit method's stability region
    assert torch.linalg.eigvals(J).real.min() < -1e6


def _tiny_node():
    torch.manual_seed(0)
    field = KineticsField(torch.log(torch.tensor(RATES, dtype=torch.float64)), width=3).double()
    with torch.no_grad():
        field.correction[-1].weight.normal_(0.0, 0.1)  # a nonzero correction, so every parameter matters
    node = NeuralODE(field, (0.0, log_time(1e-2)), method="rodas5p", rtol=1e-4, atol=1e-6, jac="batched")
    x0 = torch.tensor([[0.9, 0.5, 0.1, 0.0], [0.7, 2.0, 0.3, 0.0]], dtype=torch.float64)
    return node, x0


def test_error_regularizer_gradient_flows_through_rodas5p():
    node, x0 = _tiny_node()
    out = node(x0, regularizer=ErrorEstimateRegularizer("sum"))
    stats = out.solution.stats
    assert stats.njev > 0 and out.work == stats.nfe + 4 * stats.njev  # n = 4 species per Jacobian block
    grads = torch.autograd.grad(out.regularization, list(node.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)
    assert all(g.abs().sum() > 0 for g in grads)


def test_error_regularizer_gradient_matches_finite_differences():
    """Σ E_j |h_j| of Rodas5P steps on the kinetics field: float64 gradcheck with respect to the log rates
    and the correction's output bias (fixed steps, as the step sizes are constants of an adaptive solve)."""
    node, x0 = _tiny_node()
    field = node.field
    tau1 = node.t_span[1]

    def regularizer(log_k, bias):
        def f(t, x):
            params = {"log_k": log_k, "correction.4.bias": bias}
            return torch.func.functional_call(field, params, (t, x))

        sol = solve(ODEProblem(f, x0, (0.0, tau1)), "rodas5p", dt=tau1 / 30, jac="batched", rtol=1e-4,
                    atol=1e-6)  # fmt: skip
        return (sol.error_estimates * sol.step_sizes.abs()).sum()

    inputs = (field.log_k.detach().clone().requires_grad_(True),
              field.correction[4].bias.detach().normal_(0, 0.1).requires_grad_(True))  # fmt: skip
    # E_j is a difference of nearly equal stage sums: round-off ~1e-9 in it sets eps and atol
    assert torch.autograd.gradcheck(regularizer, inputs, eps=1e-4, atol=1e-4, rtol=1e-3, fast_mode=True)


@pytest.mark.slow
def test_kinetics_task_splits():
    data = get_task("kinetics", "node").data()
    assert [len(data[k][0]) for k in ("train", "val", "test")] == [200, 50, 50]
    c0 = torch.cat([data[k][0] for k in ("train", "val", "test")])
    assert torch.unique(c0[:, 0]).numel() == 300  # disjoint splits


@pytest.mark.slow  # ~15 s alone, a minute on a loaded machine: three backprops through ~90 Rodas5P steps
def test_kinetics_task_trains_a_few_steps_and_its_loss_decreases(small_data):
    task = get_task("kinetics", "node")
    c0, truth, observed = small_data
    scales = np.asarray(SCALES)
    batch = tuple(torch.from_numpy(a) for a in (c0 / scales, observed, truth / scales))
    torch.manual_seed(0)
    model = task.model("backprop")
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
    losses = []
    for _ in range(3):
        out = model(batch, regularizer=ErrorEstimateRegularizer())
        loss = out.loss + 1e-4 * out.result.regularization
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]
    model.eval()
    with torch.no_grad():
        assert model(batch).loss.item() < losses[0]


def test_kinetics_task_model_takes_a_regularized_rodas5p_step_with_finite_gradients(small_data):
    """The task's own model (full horizon, Rodas5P, batched Jacobians): one training step with the error
    regularizer gives finite gradients that reach the rate constants and the correction's output layer."""
    task = get_task("kinetics", "node")
    c0, truth, observed = small_data
    scales = np.asarray(SCALES)
    batch = tuple(torch.from_numpy(a[:2]) for a in (c0 / scales, observed, truth / scales))
    torch.manual_seed(0)
    model = task.model("backprop")
    assert model.node.method == "rodas5p" and model.node.jac == "batched"
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=task.lr)
    out = model(batch, regularizer=ErrorEstimateRegularizer())
    assert out.result.solution.stats.njev > 0 and torch.isfinite(out.result.regularization)
    (out.loss + 1e-5 * out.result.regularization).backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    field = model.node.field
    assert field.log_k.grad.abs().min() > 0  # every rate constant is identified by the data
    assert field.correction[-1].weight.grad.abs().sum() > 0  # the (zero-initialised) correction learns
    optimizer.step()
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_plot_runs_writes_the_tradeoff_figure(tmp_path):
    from sciml.neural_de.kinetics import plot_runs

    rows = [{"method": "vanilla", "val_mse": 3e-4, "val_work": 1200.0},
            {"method": "error 1e-05", "val_mse": 4e-4, "val_work": 1100.0},
            {"method": "true mechanism", "val_mse": 1e-4, "val_work": 1220.0},
            {"method": "true mechanism, tolerances x10", "val_mse": 1e-4, "val_work": 970.0}]  # fmt: skip
    plot_runs(rows, tmp_path / "t.png")
    assert (tmp_path / "t.png").read_bytes()[:4] == b"\x89PNG"

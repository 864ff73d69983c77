"""Regressions from a second round of user reports on ``sciml.neural_de``: default regularization weights
borrowed from the digits task, gradients silently missing with the adjoint backends (captured tensors, plain
functions, save times), a misleading error under ``torch.no_grad()``, general noise in ``NeuralSDE``,
``NeuralSDE``'s ``work`` and a negative ``--seed``."""

import dataclasses

import pytest
import torch
from torch import nn

from sciml.cli import main as cli_main
from sciml.neural_de import (
    Autonomous,
    ErrorEstimateRegularizer,
    LocalErrorRegularizer,
    NeuralODE,
    StiffnessRegularizer,
)
from sciml.neural_de import tasks as task_registry
from sciml.neural_de.sde import SPIRAL_SDE, DiagonalAffine, NeuralSDE
from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import TrainConfig, make_variant, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _mlp_field(dtype=torch.float32):
    torch.manual_seed(0)
    return Autonomous(nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 2))).to(dtype)


# ----------------------------------------------------------------------------- 1. default weights
def test_each_task_trains_at_its_own_calibrated_weight_and_documented_defaults_stay():
    from sciml.bench.sde import WEIGHTS as BENCH_SDE

    # `sciml train sde` uses the weights `sciml bench sde` trains with
    for task, weights in BENCH_SDE.items():
        for variant, weight in weights.items():
            _, schedule = make_variant(variant, TASKS[task], TASKS[task].epochs)
            _, bench = make_variant(variant, TASKS[task], TASKS[task].epochs, weight=weight)
            assert schedule(0) == weight, (task, variant)
            assert [schedule(e) for e in range(10)] == [bench(e) for e in range(10)], (task, variant)
    _, kinetics = make_variant("stiffness", TASKS["kinetics"], 20)  # the README's sweep chose 3e-11
    assert kinetics(0) == kinetics(19) == 3e-11
    _, kinetics = make_variant("error", TASKS["kinetics"], 20)
    assert kinetics(0) == 1e-4 and kinetics(19) == pytest.approx(1e-5)
    # the documented defaults of the ODE tasks are unchanged
    documented = {("digits", "error"): (3.0, 0.3), ("latent", "error"): (1e-3, 1e-4),
                  ("spiral", "error"): (1.0, 0.1), ("mnist1d", "error"): (1.0, 0.1),
                  ("digits", "stiffness"): (0.05, 0.05), ("mnist1d", "error-squared"): (0.3, 0.3),
                  ("digits", "local-unbiased"): (100.0, 10.0)}  # fmt: skip
    for (task, variant), (start, end) in documented.items():
        _, schedule = make_variant(variant, TASKS[task], 10)
        assert schedule(0) == start and schedule(9) == pytest.approx(end), (task, variant)


@pytest.mark.parametrize(
    ("task", "kind", "reg"),
    [("spiral-sde", "sde", "error-squared"), ("digits-sde", "sde", "error-squared"),
     ("kinetics", "node", "error-squared"), ("kinetics", "node", "local-unbiased")],
)  # fmt: skip
def test_a_pair_without_a_calibrated_weight_asks_for_weight_and_never_borrows_one(
    task, kind, reg, tmp_path, monkeypatch
):
    if task == "spiral-sde":  # small, should training start anyway
        small = dataclasses.replace(SPIRAL_SDE, iterations=1, paths=8, test_paths=16, data_paths=100, width=4)
        monkeypatch.setitem(task_registry.TASKS, "spiral-sde", small)
    _, schedule = make_variant(reg, TASKS[task], 2)
    with pytest.raises(ValueError, match=f"--reg {reg} has no calibrated .* --task {task}.*pass --weight"):
        schedule(0)
    out = tmp_path / "run"
    config = TrainConfig(task=task, kind=kind, reg=reg, epochs=1, out=str(out), backend="backprop",
                         progress=False)  # fmt: skip
    with pytest.raises(ValueError, match="pass --weight"):
        train(config)
    assert not out.exists()
    _, given = make_variant(reg, TASKS[task], 2, weight=0.5)  # an explicit --weight is taken as given
    assert given(0) == 0.5


# ----------------------------------------------------------------------------- 2. captured tensors
class _CondField(nn.Module):
    """A conditional field: the context (an encoder's output) is stored on the module."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.context = None

    def forward(self, t, y):
        return torch.tanh(self.lin(y)) * self.context


@pytest.mark.parametrize("backend", ["continuous", "torchdiffeq"])
def test_adjoint_backends_refuse_a_field_with_captured_tensors_instead_of_dropping_their_gradient(backend):
    torch.manual_seed(0)
    encoder, c, x = nn.Linear(3, 2), torch.randn(4, 3), torch.randn(4, 2)
    field = _CondField()
    field.context = encoder(c)
    node = NeuralODE(field, (0.0, 1.0), backend=backend)
    with pytest.raises(ValueError, match=r"neither its parameters nor the state.*backend='backprop'"):
        node(x)
    with pytest.raises(ValueError, match="silently missing"):
        node(x, regularizer=LocalErrorRegularizer())
    with torch.no_grad():  # nothing is differentiated: no check, no error
        assert torch.isfinite(node(x).ys).all()
    # backprop differentiates the encoder through the context
    NeuralODE(field, (0.0, 1.0), backend="backprop")(x).ys.sum().backward()
    assert encoder.weight.grad is not None and encoder.weight.grad.norm() > 0
    # not refused: an encoded state (its history is the adjoint's business) and a detached context
    encoder.zero_grad()
    field.context = encoder(c).detach()
    node(encoder(c)).ys.sum().backward()
    assert encoder.weight.grad.norm() > 0 and field.lin.weight.grad.norm() > 0


# ----------------------------------------------------------------------------- 3. plain functions
def test_plain_function_fields_are_refused_at_construction_by_the_adjoint_backends():
    W = torch.randn(2, 2, requires_grad=True)

    def f(t, y):
        return torch.tanh(y @ W)

    for backend in ("continuous", "torchdiffeq"):
        with pytest.raises(TypeError, match=rf"backend='{backend}'.*plain function.*wrap it in an nn.Module"):
            NeuralODE(f, backend=backend)
    out = NeuralODE(f)(torch.randn(4, 2), regularizer=ErrorEstimateRegularizer())  # backprop: works
    (out.ys.sum() + out.regularization).backward()
    assert W.grad is not None and W.grad.norm() > 0


# ----------------------------------------------------------------------------- 4. no_grad, training mode
def test_global_regularizers_under_no_grad_in_training_mode_return_their_value():
    x = torch.randn(8, 2, dtype=torch.float64)  # float32 estimates differ with the kernels of the two modes
    node = NeuralODE(_mlp_field(torch.float64))
    for reg in (ErrorEstimateRegularizer(), StiffnessRegularizer()):
        with torch.no_grad():
            value = node(x, regularizer=reg).regularization
        expected = node(x, regularizer=reg).regularization.item()
        assert value.item() == pytest.approx(expected, rel=1e-5), type(reg).__name__
    torch.manual_seed(0)
    sde = NeuralSDE(_mlp_field(torch.float64), DiagonalAffine(2, 0.1).double(), (0.0, 1.0))
    with torch.no_grad():
        value = sde(x, regularizer=ErrorEstimateRegularizer(), entropy=3).regularization
    expected = sde(x, regularizer=ErrorEstimateRegularizer(), entropy=3).regularization.item()
    assert value.item() == pytest.approx(expected, rel=1e-5)
    # with grad enabled a continuous adjoint is still refused, with the right reason
    continuous = NeuralODE(_mlp_field(torch.float64), backend="continuous")
    with pytest.raises(ValueError, match="continuous adjoint the steps are not part of the graph"):
        continuous(x, regularizer=ErrorEstimateRegularizer())


# ----------------------------------------------------------------------------- 5. general noise
class _GeneralDiffusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 6)

    def forward(self, t, y):
        return 0.1 * torch.tanh(self.lin(y)).view(-1, 3, 2)


@pytest.mark.parametrize("sde_type", ["ito", "stratonovich"])
@pytest.mark.parametrize("method", [None, "sosri", "milstein", "euler"])
def test_general_noise_is_refused_at_construction_saying_which_noise_types_work(sde_type, method):
    drift = Autonomous(nn.Linear(3, 3))
    with pytest.raises(ValueError, match=r"noise_type='general'.*adaptive.*Use noise_type 'diagonal'"):
        NeuralSDE(drift, _GeneralDiffusion(), noise_type="general", sde_type=sde_type, method=method)
    assert '``"general"``' not in NeuralSDE.__doc__  # no longer offered as a noise type


def test_a_method_without_error_estimate_names_the_adaptive_ones():
    with pytest.raises(ValueError, match=r"'euler' has no error estimate.*\['milstein'.*'sosri'"):
        NeuralSDE(_mlp_field(), DiagonalAffine(2), method="euler")


# ----------------------------------------------------------------------------- 6. --seed
@pytest.mark.parametrize("seed", ["-1", str(2**32)])
def test_a_seed_out_of_range_names_the_flag_and_creates_nothing(seed, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "node", "--task", "digits", "--seed", seed, "--epochs", "1", "--out", str(out)]
    assert cli_main(argv) == 2
    assert "--seed must be a whole number in [0, 2**32 - 1]" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="--seed"):
        train(TrainConfig(task="digits", seed=int(seed), epochs=1, out=str(out), progress=False))
    assert not out.exists()


# ----------------------------------------------------------------------------- 7. work, saveat gradients
def test_neural_sde_work_is_its_evaluation_count():
    torch.manual_seed(0)
    out = NeuralSDE(_mlp_field(), DiagonalAffine(2, 0.1), (0.0, 1.0))(torch.randn(8, 2), entropy=1)
    stats = out.solution.stats
    assert out.work == stats.nfe == stats.nfe_drift + stats.nfe_diffusion > 0


def test_save_times_that_require_grad_get_their_gradient():
    from sciml.solvers.ode import odeint

    field, x = _mlp_field(torch.float64), torch.randn(4, 2, dtype=torch.float64)
    node = NeuralODE(field, (0.0, 1.0), rtol=1e-10, atol=1e-10)
    weights = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)

    def loss(ts):
        return (node(x, saveat=ts).ys.sum((1, 2)) * weights).sum()

    ts = torch.tensor([0.25, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    loss(ts).backward()
    assert ts.grad is not None
    eps = 1e-6
    for i in range(2):  # interior times: central differences
        up, down = ts.detach().clone(), ts.detach().clone()
        up[i] += eps
        down[i] -= eps
        assert ts.grad[i].item() == pytest.approx((loss(up) - loss(down)).item() / (2 * eps), rel=1e-5)
    # the same as odeint's gradient for the save times after the start
    full = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64, requires_grad=True)
    ys = odeint(field, x, full, rtol=1e-10, atol=1e-10)
    (ys[1:].sum((1, 2)) * weights).sum().backward()
    assert torch.allclose(ts.grad, full.grad[1:], rtol=1e-6)


def test_local_dtype_float64_computes_the_local_step_of_a_float32_model_in_float64():
    # in float32 the local estimate (Hairer's initial step, accurate by design) is mostly round-off:
    # 1e5x its float64 value at initialisation, gradients nearly unrelated (examples/local_error_precision.py)
    import copy

    from sciml.neural_de import Autonomous, NeuralODE

    torch.manual_seed(0)
    field = Autonomous(torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2)))
    y = torch.randn(16, 2)
    f32 = NeuralODE(field, rtol=1e-6, atol=1e-6)
    cast = NeuralODE(copy.deepcopy(field), rtol=1e-6, atol=1e-6, local_dtype=torch.float64)
    f64 = NeuralODE(copy.deepcopy(field).double(), rtol=1e-6, atol=1e-6)
    values, grads = [], []
    for node, state in ((f32, y), (cast, y), (f64, y.double())):
        value = node.local_error(0.3, state)
        value.backward()
        values.append(value)
        grads.append(torch.cat([p.grad.flatten().double() for p in node.parameters()]))
    assert values[1].dtype == torch.float32 and values[1].requires_grad
    assert abs(float(values[1]) / float(values[2]) - 1) < 1e-5  # the float64 value, returned in float32
    assert float(values[0]) / float(values[2]) > 100  # float32 is round-off
    cosine = torch.nn.functional.cosine_similarity(grads[1], grads[2], dim=0)
    assert cosine > 0.9999
    with pytest.raises(ValueError, match="local_dtype"):
        NeuralODE(field, local_dtype=torch.int64)

"""``--reg local-exact``: the local regularizer whose gradient is the derivative of its own value (the step's
first stage differentiable, computed in float64), against finite differences; the paper's gradient is not
that derivative; a float32 model gets a float64 copy's value and gradient; the variant is refused where it
cannot apply and trains end to end."""

import copy
import dataclasses
import json

import pytest
import torch
from torch import nn

import sciml.neural_de.model as model_module
from sciml.cli import main as cli_main
from sciml.neural_de.model import NeuralODE
from sciml.neural_de.regularizers import LocalErrorRegularizer
from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import TrainConfig, calibrated_weight, check_variant, make_variant, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _node(dtype=torch.float64, seed=0) -> NeuralODE:
    torch.manual_seed(seed)
    field = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 3)).to(dtype)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = field

        def forward(self, t, y):
            return self.net(y) * (1 + 0.3 * torch.sin(3 * t))

    return NeuralODE(Field(), (0.0, 1.0), rtol=1e-6, atol=1e-6)


@pytest.fixture
def fixed_h(monkeypatch):
    """Hold the step size at its first value: the value is then a smooth function of the parameters."""
    real, seen = model_module.initial_step_size, []

    def initial_step_size(*args, **kwargs):
        if not seen:
            seen.append(real(*args, **kwargs))
        return seen[0]

    monkeypatch.setattr(model_module, "initial_step_size", initial_step_size)
    return seen


def _directional(node, y, exact):
    params = list(node.parameters())
    value = node.local_error(0.3, y, exact=exact)
    grads = torch.autograd.grad(value, params)
    gen = torch.Generator().manual_seed(1)
    direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    along = sum((g * d).sum() for g, d in zip(grads, direction))
    eps, values = 1e-3, []  # the value is a cancellation: smaller steps meet its round-off
    for sign in (1, -1):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(sign * eps * d)
            values.append(node.local_error(0.3, y, exact=exact))
            for p, d in zip(params, direction):
                p.sub_(sign * eps * d)
    return float(along), float((values[0] - values[1]) / (2 * eps)), float(value.detach())


def test_the_exact_gradient_is_the_values_derivative(fixed_h):
    node = _node()
    y = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]], dtype=torch.float64)
    along, difference, value = _directional(node, y, exact=True)
    assert value > 0 and difference != 0
    assert along == pytest.approx(difference, rel=2e-4)


def test_the_papers_gradient_is_not(fixed_h):
    node = _node()
    y = torch.tensor([[0.5, -0.2, 0.1], [0.3, 0.4, -0.6]], dtype=torch.float64)
    along, difference, _ = _directional(node, y, exact=False)
    # holding the first stage fixed adds a first-order term the value does not have
    assert abs(along - difference) > 10 * abs(difference)


def test_a_float32_model_gets_a_float64_copys_value_and_gradient(fixed_h):
    node32 = _node(torch.float32)
    node64 = copy.deepcopy(node32).double()
    y = torch.tensor([[0.5, -0.2, 0.1]], dtype=torch.float32)
    v32 = node32.local_error(0.3, y, exact=True)
    g32 = torch.autograd.grad(v32, list(node32.parameters()))
    v64 = node64.local_error(0.3, y.double(), exact=True)
    g64 = torch.autograd.grad(v64, list(node64.parameters()))
    assert v32.dtype == torch.float32 and all(g.dtype == torch.float32 for g in g32)
    assert float(v32.detach()) == pytest.approx(float(v64.detach()), rel=1e-6)
    flat32 = torch.cat([g.double().flatten() for g in g32])
    flat64 = torch.cat([g.flatten() for g in g64])
    assert torch.nn.functional.cosine_similarity(flat32, flat64, dim=0) > 0.9999
    # the paper's float32 step is mostly round-off: its value is far from the float64 one
    assert float(node32.local_error(0.3, y).detach()) > 10 * float(v64.detach())


def test_the_regularizer_passes_exact_and_keeps_the_papers_call_otherwise():
    calls = []

    class Model:
        def local_error(self, t, y, **kwargs):
            calls.append(kwargs)
            return torch.zeros(())

    ys, index = torch.zeros(1, 2), {0.5: 0}
    LocalErrorRegularizer("unbiased", exact=True)(Model(), None, ys, index, 0.5)
    LocalErrorRegularizer("unbiased")(Model(), None, ys, index, 0.5)
    assert calls == [{"exact": True}, {}]


@pytest.fixture
def tiny(monkeypatch):
    """mnist1d, small: a renamed copy takes mnist1d's calibrated local-exact weight."""
    task = dataclasses.replace(TASKS["mnist1d"], name="tiny-exact", n_samples=200, channels=4, batch_size=50)
    monkeypatch.setitem(TASKS, task.name, task)
    return task.name


def test_trains_end_to_end_in_float64_with_mnist1ds_weight(tiny, tmp_path):
    assert calibrated_weight("local-exact", TASKS[tiny]) == (1e7, 1e6)
    out = tmp_path / "run"
    summary = train(TrainConfig(task=tiny, reg="local-exact", backend="backprop", epochs=1, out=str(out),
                                progress=False))  # fmt: skip
    assert summary["local_step_dtype"] == "float64" and summary["weight"] == 1e7  # the weight used
    history = json.loads((out / "metrics.json").read_text())["history"]
    assert history[0]["weight"] == 1e7 and history[0]["regularization"] > 0


def test_the_default_backend_is_the_continuous_adjoint_and_it_trains(tiny, tmp_path):
    assert check_variant(TASKS[tiny], "local-exact") == "continuous"
    summary = train(TrainConfig(task=tiny, reg="local-exact", epochs=1, out=str(tmp_path / "c"),
                                progress=False))  # fmt: skip
    assert summary["backend"] == "continuous" and summary["test_metric"] is not None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "tiny-exact", "--local-dtype", "float64"], "always computes its step in float64"),
        (["--task", "tiny-exact", "--local-dtype", "float32"], "always computes its step in float64"),
        (["--task", "spiral"], "no calibrated regularization weight"),
    ],
)
def test_refused_before_any_work(tiny, tmp_path, capsys, argv, message):
    out = tmp_path / "r"
    code = cli_main(["train", "node", "--reg", "local-exact", *argv, "--out", str(out), "--no-progress"])
    assert code != 0 and message in capsys.readouterr().err
    assert not out.exists()


def test_the_neural_sde_tasks_refuse_it(tmp_path):
    config = TrainConfig(task="spiral-sde", kind="sde", reg="local-exact", backend="backprop", weight=1.0,
                         epochs=1, out=str(tmp_path / "run"))  # fmt: skip
    with pytest.raises(ValueError, match="built for neural ODE models; use local-unbiased"):
        train(config)
    assert not (tmp_path / "run").exists()


def test_latent_hard_starts_it_in_the_last_fifth_as_the_error_form():
    _, schedule = make_variant("local-exact", TASKS["latent-hard"], 25)
    assert [schedule(e) for e in (0, 19)] == [0.0, 0.0]
    assert schedule(20) == 3e4 and schedule(24) == pytest.approx(3e3)


def test_no_weight_is_borrowed_from_another_task():
    for task in ("digits", "latent", "spiral"):
        _, schedule = make_variant("local-exact", TASKS[task], 5)
        with pytest.raises(ValueError, match="--weight"):
            schedule(0)
    _, schedule = make_variant("local-exact", TASKS["spiral"], 5, weight=3.0)
    assert schedule(0) == 3.0 and schedule(4) == pytest.approx(0.3)


def test_an_implicit_models_exact_gradient_on_a_time_dependent_field(fixed_h):
    """Rodas5P's step takes ∂f/∂t by forward-mode AD in the local step as in ``solve``: with differences
    its noise was of the size of the estimate itself, and the value was not smooth in the parameters."""
    torch.manual_seed(0)

    class Field(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(2, 12), nn.Softplus(), nn.Linear(12, 2)).double()

        def forward(self, t, y):
            return self.net(y) * torch.cos(0.7 * t) - 0.5 * y

    node = NeuralODE(Field(), (0.0, 1.0), method="rodas5p", rtol=1e-5, atol=1e-6)
    y = torch.tensor([[0.5, -0.2], [0.3, 0.9]], dtype=torch.float64)
    along, difference, _ = _directional(node, y, exact=True)
    assert along == pytest.approx(difference, rel=2e-3)


def test_a_plain_function_field_that_cannot_run_in_float64_is_refused_clearly():
    w = torch.randn(2, 2)  # float32, closed over: exact=True cannot cast it

    node = NeuralODE(lambda t, y: y @ w, (0.0, 1.0), rtol=1e-5, atol=1e-6)
    y = torch.tensor([[0.5, -0.2]])
    assert torch.isfinite(node.local_error(0.3, y))  # the paper's step, in the state's dtype
    with pytest.raises(ValueError, match="plain-function field .* make the field an nn.Module"):
        node.local_error(0.3, y, exact=True)

"""Neural ODEs: regularizer values and gradients, backends, training, resume, divergence, DDP."""

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest
import torch

from sciml.neural_de import (
    RNODE,
    Autonomous,
    ErrorEstimateRegularizer,
    ExponentialSchedule,
    LocalErrorRegularizer,
    NeuralODE,
    Steer,
    StiffnessRegularizer,
    TayNODE,
)
from sciml.neural_de.tasks import TASKS, DigitsTask, TimeConcatField
from sciml.neural_de.training import TrainConfig, TrainingDiverged, train


def _node(backend="backprop", dtype=torch.float64):
    torch.manual_seed(0)
    return NeuralODE(TimeConcatField(4, 16).to(dtype), (0.0, 1.0), rtol=1e-5, atol=1e-5, backend=backend)


def _x(dtype=torch.float64):
    return torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=dtype)


@pytest.mark.parametrize("backend", ["backprop", "torchdiffeq"])
def test_end_times_that_float32_cannot_hold_work(backend):
    torch.manual_seed(0)
    node = NeuralODE(TimeConcatField(4, 8), (0.0, 0.3), rtol=1e-4, atol=1e-4, backend=backend).eval()
    assert node(_x(torch.float32)).ys.shape == (1, 8, 4)  # float32 state, t1 = 0.3
    node64 = NeuralODE(TimeConcatField(4, 8).double(), (0.0, 0.3), rtol=1e-4, atol=1e-4, backend=backend)
    out = node64.eval()(_x(), saveat=[0.1, 0.3])  # a list is taken exactly, not through float32
    assert out.ys.shape == (2, 8, 4) and out.solution.ts.dtype == torch.float64


def test_forward_shapes_and_eval_mode_ignores_the_regularizer():
    node = _node()
    out = node(_x(), saveat=[0.25, 1.0], regularizer=ErrorEstimateRegularizer())
    assert out.ys.shape == (2, 8, 4) and out.regularization is not None
    node.eval()
    plain = node(_x(), saveat=[0.25, 1.0], regularizer=Steer(0.5))
    assert plain.regularization is None and plain.solution.ts.tolist() == [0.25, 1.0]


def test_global_error_regularizer_is_the_weighted_sum_and_has_gradients():
    node = _node()
    out = node(_x(), regularizer=ErrorEstimateRegularizer("sum"))
    sol = out.solution
    expected = (sol.error_estimates * sol.step_sizes.abs()).sum()
    torch.testing.assert_close(out.regularization, expected)
    grads = torch.autograd.grad(out.regularization, list(node.parameters()))
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0
    weighted = sol.error_estimates * sol.step_sizes.abs()
    torch.testing.assert_close(ErrorEstimateRegularizer("mean")(node, sol, None, None, None), weighted.mean())
    squared = node(_x(), regularizer=ErrorEstimateRegularizer("squared"))  # a fresh graph for its gradients
    torch.testing.assert_close(squared.regularization, squared.solution.error_estimates.pow(2).sum())
    squared = squared.regularization
    assert all(
        g is not None and torch.isfinite(g).all()
        for g in torch.autograd.grad(squared, list(node.parameters()))
    )
    assert StiffnessRegularizer("max")(node, sol, None, None, None) == sol.stiffness_estimates.max()


@pytest.mark.parametrize("backend", ["continuous", "torchdiffeq"])
def test_global_regularizers_need_backprop_and_say_so(backend):
    with pytest.raises(ValueError, match="local-unbiased|LocalErrorRegularizer"):
        _node(backend)(_x(), regularizer=ErrorEstimateRegularizer())


@pytest.mark.parametrize("backend", ["backprop", "continuous", "torchdiffeq"])
def test_local_unbiased_works_with_every_backend(backend):
    node = _node(backend)
    y0 = _x().requires_grad_(True)
    out = node(y0, regularizer=LocalErrorRegularizer("unbiased", torch.Generator().manual_seed(3)))
    assert out.ys.shape == (1, 8, 4) and out.regularization > 0
    # the sampled time is removed from the output, and no gradient reaches the state through the local term
    (g_y0,) = torch.autograd.grad(out.regularization, y0, allow_unused=True)
    assert g_y0 is None or g_y0.abs().max() == 0
    grads = torch.autograd.grad(out.regularization, list(node.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_local_biased_samples_accepted_step_starts():
    node = _node()
    out = node(_x(), saveat=[0.5, 1.0], regularizer=LocalErrorRegularizer("biased"))
    assert out.ys.shape == (2, 8, 4) and out.regularization > 0
    assert len(out.solution.ts) == len(out.solution.step_ts) + 2  # t0, every step end, and the save time 0.5
    with pytest.raises(ValueError, match="unbiased"):
        _node("torchdiffeq")(_x(), regularizer=LocalErrorRegularizer("biased"))


def test_local_error_matches_one_manual_step():
    node = _node()
    value = node.local_error(0.3, _x())
    from sciml.solvers.ode import error_ratio, get_method, initial_step_size

    f = node.field
    y = _x().reshape(-1)

    def flat(t, z):
        return f(torch.tensor(t, dtype=torch.float64), z.view(8, 4)).reshape(-1)

    h = initial_step_size(flat, 0.3, y, flat(0.3, y), 1.0, 4, 1e-5, 1e-5)
    step = get_method("tsit5").step(flat, 0.3, y, h, flat(0.3, y))
    torch.testing.assert_close(value, error_ratio(step.y_error, y, step.y1, 1e-5, 1e-5) * h)


@pytest.mark.parametrize("reg", [RNODE(), TayNODE(2)])
def test_augmented_baselines_return_positive_differentiable_values(reg):
    node = _node(dtype=torch.float32)
    out = node(_x(torch.float32), regularizer=reg)
    assert out.ys.shape == (1, 8, 4) and out.regularization > 0
    grads = torch.autograd.grad(out.regularization, list(node.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_steer_samples_end_times_within_the_band():
    steer = Steer(0.5, torch.Generator().manual_seed(0))
    ends = [steer.end_time((0.0, 1.0)) for _ in range(200)]
    assert 0.5 <= min(ends) < 0.6 and 1.4 < max(ends) <= 1.5
    with pytest.raises(ValueError, match="smaller than the interval"):
        Steer(2.0).end_time((0.0, 1.0))


def test_exponential_schedule_endpoints():
    s = ExponentialSchedule(100.0, 10.0, 75)
    assert s(0) == pytest.approx(100.0) and s(75) == pytest.approx(10.0) and s(200) == pytest.approx(10.0)
    assert s(37.5) == pytest.approx(100.0 * 0.1**0.5)


# ------------------------------------------------------------------------------------------ training
@pytest.fixture
def tiny_digits(monkeypatch):
    task = DigitsTask("tiny-digits", "node", "accuracy", True, epochs=2, batch_size=256, lr=3e-3, rtol=1e-4,
                      atol=1e-4, hidden=16)  # fmt: skip
    monkeypatch.setitem(TASKS, "tiny-digits", task)
    return task


def _config(out, **kw):
    base = dict(task="tiny-digits", reg="error", seed=0, epochs=2, out=str(out), progress=False, weight=1.0)
    return TrainConfig(**(base | kw))


def test_training_writes_metrics_checkpoint_and_plot(tiny_digits, tmp_path):
    full = train(_config(tmp_path / "full"))
    assert {"checkpoint.pt", "metrics.json", "summary.json", "curves.png"} <= set(
        os.listdir(tmp_path / "full")
    )
    history = json.loads((tmp_path / "full" / "metrics.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0]["regularization"] > 0
    assert full["predict_nfe"] > 0 and full["test_metric"] > 50


def test_resume_after_a_crash_continues_the_decaying_schedule_exactly(tiny_digits, tmp_path, crash_at_epoch):
    full = train(_config(tmp_path / "full", epochs=3))  # weight 1.0 decaying 10x over the 3 epochs
    with crash_at_epoch(3), pytest.raises(RuntimeError, match="simulated crash"):
        train(_config(tmp_path / "split", epochs=3))
    resumed = train(_config(tmp_path / "split", epochs=3, resume=True))
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert resumed["test_metric"] == full["test_metric"]
    history = json.loads((tmp_path / "split" / "metrics.json").read_text())["history"]
    assert [h["weight"] for h in history] == pytest.approx([1.0, 10**-0.5, 0.1])
    for changed in ({"lr": 1e-2}, {"weight": 50.0}, {"batch_size": 64}, {"epochs": 4}):
        key = next(iter(changed))
        with pytest.raises(ValueError, match=f"differs in {key}"):
            train(_config(tmp_path / "split", **({"epochs": 3, "resume": True} | changed)))


def test_bad_training_input_fails_before_training(tiny_digits, tmp_path):
    with pytest.raises(ValueError, match="unknown task"):
        train(_config(tmp_path, task="mnist"))
    with pytest.raises(ValueError, match="unknown --reg"):
        train(_config(tmp_path, reg="l2"))
    for reg in ("error", "error-squared", "stiffness"):
        with pytest.raises(ValueError, match=f"--reg {reg} .*backprop"):
            train(_config(tmp_path, reg=reg, backend="continuous"))
    with pytest.raises(ValueError, match="no checkpoint"):
        train(_config(tmp_path / "empty", resume=True))
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out"):
        train(_config(blocker / "sub"))
    train(_config(tmp_path / "a", epochs=1))
    with pytest.raises(ValueError, match="is from"):
        train(_config(tmp_path / "a", reg="vanilla", weight=None, resume=True))


@dataclass(frozen=True)
class _ExplodingDigits(DigitsTask):
    """Digits whose model returns a NaN loss from the second epoch on."""

    def model(self, backend):
        model = super().model(backend)
        forward = model.forward
        calls = {"n": 0}

        def exploding(batch, regularizer=None):
            out = forward(batch, regularizer)
            calls["n"] += model.training
            return out._replace(loss=out.loss * float("nan")) if calls["n"] > 6 else out

        model.forward = exploding
        return model


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path):
    task = _ExplodingDigits("boom", "node", "accuracy", True, epochs=3, batch_size=256, lr=3e-3, rtol=1e-4,
                            atol=1e-4, hidden=16)  # fmt: skip
    monkeypatch.setitem(TASKS, "boom", task)
    with pytest.raises(TrainingDiverged, match=r"epoch 2.*last good checkpoint \(epoch 1\)"):
        train(_config(tmp_path, task="boom", epochs=3))
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["epoch"] == 0


def test_ddp_training_with_torchrun(tmp_path):
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "sciml.cli", "train", "node", "--task", "digits", "--epochs", "2", "--rtol", "1e-4", "--atol",
        "1e-4", "--batch-size", "256", "--out", str(tmp_path), "--no-progress", "--reg", "error",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    history = json.loads((tmp_path / "metrics.json").read_text())["history"]
    assert summary["world_size"] == 2 and len(history) == 2
    assert history[1]["train_loss"] < history[0]["train_loss"] < 2.3  # cross-entropy at chance is ln 10


def test_torchdiffeq_backend_integrates_from_t0_when_only_the_end_is_saved():
    torch.manual_seed(0)
    field = TimeConcatField(4, 8).double()
    ours = NeuralODE(field, (0.0, 1.0), rtol=1e-8, atol=1e-8).eval()(_x())
    theirs = NeuralODE(field, (0.0, 1.0), rtol=1e-8, atol=1e-8, backend="torchdiffeq").eval()(_x())
    assert theirs.ys.shape == ours.ys.shape == (1, 8, 4)
    torch.testing.assert_close(theirs.ys, ours.ys, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(theirs.ys[0], _x())


def _small_field():
    torch.manual_seed(0)
    return Autonomous(torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)))


def test_fixed_step_method_is_refused_when_built():
    with pytest.raises(ValueError, match="no error estimate.*'tsit5'"):
        NeuralODE(_small_field(), method="rk4")


@pytest.mark.parametrize(
    "method, reg", [("radau5", LocalErrorRegularizer()), ("kvaerno5", StiffnessRegularizer())]
)
def test_a_regularizer_without_gradient_is_an_error_not_a_silent_no_op(method, reg):
    node = NeuralODE(_small_field(), method=method)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="gives no gradient with method"):
        node(x, regularizer=reg)


@pytest.mark.parametrize("reg", [RNODE(), TayNODE(order=2)])
def test_augmented_regularizers_take_one_unbatched_state(reg):
    node = NeuralODE(_small_field().double(), rtol=1e-8, atol=1e-8)
    x = torch.tensor([0.3, -0.7], dtype=torch.float64)
    torch.manual_seed(5)
    one = node(x, saveat=[0.5, 1.0], regularizer=reg)
    torch.manual_seed(5)
    batch = node(x[None], saveat=[0.5, 1.0], regularizer=reg)
    assert one.ys.shape == (2, 2) and batch.ys.shape == (2, 1, 2)
    torch.testing.assert_close(one.ys, batch.ys[:, 0])
    torch.testing.assert_close(one.regularization, batch.regularization)


def test_torchdiffeq_backend_takes_save_times_that_round_to_one_float32():
    node = NeuralODE(_small_field(), (1000.0, 1001.0), backend="torchdiffeq")
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    ys = node(x, saveat=[1000.5, 1000.5 + 1e-6, 1001.0]).ys  # the first two are one float32
    assert ys.shape == (3, 3, 2)
    torch.testing.assert_close(ys[0], ys[1])


def test_torchdiffeq_backend_counts_its_backward_evaluations():
    calls = []

    class Field(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 2)

        def forward(self, t, y):
            calls.append(1)
            return torch.tanh(self.lin(y))

    node = NeuralODE(Field(), backend="torchdiffeq")
    out = node(torch.randn(3, 2, generator=torch.Generator().manual_seed(0)))
    forward = len(calls)
    assert out.solution.stats.nfe == forward and out.solution.stats.nfe_adjoint == 0
    out.ys.sum().backward()
    assert out.solution.stats.nfe_adjoint == len(calls) - forward > 0


@pytest.mark.parametrize("backend", ["backprop", "continuous", "torchdiffeq"])
def test_save_times_outside_t_span_are_refused_by_every_backend(backend):
    node = NeuralODE(_small_field(), (0.0, 1.0), backend=backend)
    with pytest.raises(ValueError, match="must lie within t_span"):
        node(torch.zeros(2, 2), saveat=[0.0, 2.0])

"""Neural SDEs: the neural-ODE regularizers on SDE solves (values, gradients, hooks), the local step's
gradients, the SDE tasks, and training with checkpoints and resume."""

import dataclasses
import json

import pytest
import torch
from sciml.problems.sde import SDEProblem
from sciml.solvers.sde import brownian_interval, single_step

from sciml.neural_de import (
    RNODE,
    ErrorEstimateRegularizer,
    LocalErrorRegularizer,
    Steer,
    StiffnessRegularizer,
)
from sciml.neural_de import tasks as task_registry
from sciml.neural_de.sde import (
    DIGITS_SDE,
    SPIRAL_SDE,
    CubicDrift,
    DiagonalAffine,
    NeuralSDE,
)
from sciml.neural_de.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")


def _sde(dtype=torch.float64, rtol=1e-2):
    torch.manual_seed(0)
    return NeuralSDE(
        CubicDrift(16).to(dtype), DiagonalAffine(2, 0.2).to(dtype), (0.0, 1.0), rtol=rtol, atol=rtol
    )


def _y0(n=16, dtype=torch.float64):
    return torch.tensor([[1.0, 0.5]], dtype=dtype).expand(n, 2).clone()


def test_float32_sde_with_an_end_time_float32_cannot_hold():
    torch.manual_seed(0)
    model = NeuralSDE(CubicDrift(8), DiagonalAffine(2, 0.2), (0.0, 0.3), rtol=1e-2, atol=1e-2)
    out = model(_y0(4, torch.float32), entropy=0, regularizer=LocalErrorRegularizer("unbiased"))
    assert out.ys.shape == (1, 4, 2) and out.solution.ts.dtype == torch.float64
    assert model.eval()(_y0(4, torch.float32), entropy=0, saveat=[0.1, 0.3]).ys.shape == (2, 4, 2)


def test_forward_shapes_noise_seeds_and_eval_mode():
    sde = _sde()
    a = sde(_y0(), saveat=[0.5, 1.0], entropy=3)
    b = sde(_y0(), saveat=[0.5, 1.0], entropy=3)
    c = sde(_y0(), saveat=[0.5, 1.0], entropy=4)
    assert a.ys.shape == (2, 16, 2) and torch.equal(a.ys, b.ys) and not torch.equal(a.ys, c.ys)
    assert a.solution.stats.nfe == a.solution.stats.nfe_drift + a.solution.stats.nfe_diffusion > 0
    sde.eval()
    plain = sde(_y0(), saveat=[0.5, 1.0], regularizer=Steer(0.5), entropy=3)
    assert plain.regularization is None and torch.equal(plain.ys, a.ys)


def test_global_regularizers_read_the_sde_estimates_and_have_gradients():
    sde = _sde()
    out = sde(_y0(), regularizer=ErrorEstimateRegularizer("sum"), entropy=1)
    sol = out.solution
    torch.testing.assert_close(out.regularization, (sol.error_estimates * sol.step_sizes.abs()).sum())
    for reg in (out.regularization, StiffnessRegularizer("sum")(sde, sol, None, None, None)):
        grads = torch.autograd.grad(reg, list(sde.parameters()), retain_graph=True)
        assert all(torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads[:4]) > 0  # the drift network
    # the diffusion's parameters reach the error estimate through the noise terms
    grads = torch.autograd.grad(out.regularization, list(sde.diffusion.parameters()))
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("sampling", ["unbiased", "biased"])
def test_local_regularizer_takes_one_step_on_the_same_path(sampling):
    sde = _sde()
    y0 = _y0().requires_grad_(True)
    reg = LocalErrorRegularizer(sampling, torch.Generator().manual_seed(2))
    out = sde(y0, saveat=[0.5, 1.0], regularizer=reg, entropy=5)
    assert out.ys.shape == (2, 16, 2) and out.regularization > 0
    if sampling == "biased":  # every step saved: t0, each step end (0.5 is one of them)
        assert len(out.solution.ts) == len(out.solution.step_ts) + 1
    (g_y0,) = torch.autograd.grad(out.regularization, y0, retain_graph=True, allow_unused=True)
    assert g_y0 is None or g_y0.abs().max() == 0  # no gradient through the state at t_r
    grads = torch.autograd.grad(out.regularization, list(sde.parameters()), allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_state_augmenting_baselines_are_refused():
    with pytest.raises(ValueError, match="not defined for neural SDEs"):
        _sde()(_y0(), regularizer=RNODE())
    steer = _sde()(_y0(), saveat=[1.0], regularizer=Steer(0.5, torch.Generator().manual_seed(0)), entropy=0)
    assert steer.solution.ts[-1] != 1.0  # the end time was sampled from (0.5, 1.5)


def test_save_times_that_require_grad_are_refused():
    """A sample path has no time derivative: NeuralSDE refuses a saveat that asks for one (NeuralODE gives
    save times their gradient; here it used to be silently None)."""
    sde = _sde()
    saveat = torch.tensor([0.5, 1.0], dtype=torch.float64, requires_grad=True)
    with pytest.raises(ValueError, match="saveat.detach"):
        sde(_y0(), saveat=saveat, entropy=0)
    assert sde(_y0(), saveat=saveat.detach(), entropy=0).ys.shape == (2, 16, 2)


def test_local_step_estimate_matches_finite_differences():
    """The local regularizer's step on a fixed path with a fixed h: E is differentiable in the state and in
    the parameters of the drift and the diffusion."""
    w = torch.tensor([[0.3, -1.0], [0.8, 0.2]], dtype=torch.float64, requires_grad=True)
    s = torch.tensor([0.2, 0.1], dtype=torch.float64, requires_grad=True)
    y = _y0(4).requires_grad_(True)
    probe = SDEProblem(
        lambda t, z: torch.tanh(z @ w.detach()), lambda t, z: s.detach() * z, y.detach(), (0.0, 1.0)
    )
    bm = brownian_interval(probe, entropy=7)

    def estimate(z, w, s):
        problem = probe.replace(f=lambda t, x: torch.tanh(x @ w), g=lambda t, x: s * x)
        return single_step(problem, "sosri", 0.3, z, bm, 0.05, rtol=1e-2, atol=1e-2).error_estimate

    assert torch.autograd.gradcheck(estimate, (y, w, s), eps=1e-6, atol=1e-7, rtol=1e-4)


def test_sde_tasks_are_registered_and_need_backprop():
    assert task_registry.get_task("spiral-sde", "sde") is SPIRAL_SDE
    assert task_registry.get_task("digits-sde", "sde") is DIGITS_SDE
    with pytest.raises(ValueError, match="--backend backprop"):
        SPIRAL_SDE.model("continuous")


def test_digits_sde_averages_logits_over_noise_draws():
    task = dataclasses.replace(DIGITS_SDE, hidden=16, draws=3)
    x, labels = (t[:8] for t in task.data()["test"])
    torch.manual_seed(0)
    model = task.model("backprop")
    out = model((x, labels))
    assert out.result.ys.shape == (1, 24, 64) and out.metric_count == 8  # 3 draws of 8 images
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    first, again = model((x, labels)), model((x, labels))  # evaluation uses a fixed noise seed
    assert first.metric_sum == again.metric_sum


def test_spiral_sde_training_checkpoints_resumes_and_regularizes(tmp_path, monkeypatch, crash_at_epoch):
    small = dataclasses.replace(SPIRAL_SDE, iterations=2, paths=16, test_paths=64, data_paths=400, width=8)
    monkeypatch.setitem(task_registry.TASKS, "spiral-sde", small)
    common = dict(task="spiral-sde", kind="sde", backend="backprop", progress=False)
    full = train(TrainConfig(reg="error", epochs=2, out=str(tmp_path / "full"), weight=1.0, **common))
    with crash_at_epoch(2), pytest.raises(RuntimeError, match="simulated crash"):  # killed, then resumed
        train(TrainConfig(reg="error", epochs=2, out=str(tmp_path / "resumed"), weight=1.0, **common))
    resumed = train(TrainConfig(reg="error", epochs=2, out=str(tmp_path / "resumed"), weight=1.0, resume=True,
                                **common))  # fmt: skip
    history = json.loads((tmp_path / "full" / "metrics.json").read_text())["history"]
    assert len(history) == 2 and history[-1]["regularization"] > 0
    assert resumed["test_metric"] == pytest.approx(full["test_metric"], rel=1e-6)
    assert full["predict_nfe"] > 0 and (tmp_path / "full" / "curves.png").exists()
    with pytest.raises(ValueError, match="--backend backprop"):
        train(TrainConfig(reg="local-unbiased", epochs=1, out=str(tmp_path / "local"), task="spiral-sde",
                          kind="sde", progress=False))  # fmt: skip

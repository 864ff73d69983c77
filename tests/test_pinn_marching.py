"""Time-marching (``TrainConfig.time_windows``): windows, dispatch, initial data handed on, budget, resume."""

import math

import pytest
import torch
from sciml.problems.pde import (
    Box,
    Dirichlet,
    InitialValue,
    InitialVelocity,
    Interval,
    Observations,
    PDEProblem,
)
from torch import nn

from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer, train
from sciml.pinn import trainer as trainer_module
from sciml.pinn.strategies import TimeWindows, window_edges, window_problems

pytestmark = pytest.mark.usefixtures("one_thread")


def _wave() -> PDEProblem:
    """``u_tt = u_xx / π²`` on [0, 1] × [0, 2], ``u = sin(πx)(cos t + sin t)`` (initial value, velocity)."""
    return PDEProblem(
        "wave-test",
        Interval(0.0, 1.0).times(0.0, 2.0),
        ("u",),
        lambda x, d, p: d["u_tt"] - d["u_xx"] / math.pi**2,
        (
            Dirichlet(),
            InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0])),
            InitialVelocity(value=lambda x: torch.sin(math.pi * x[:, 0])),
        ),
        exact=lambda x: torch.sin(math.pi * x[:, 0]) * (torch.cos(x[:, 1]) + torch.sin(x[:, 1])),
        test_shape=(21, 21),
    )


def _pinn(problem, seed=0, hidden=(16, 16), constrained=False, kind="pinn"):
    d = problem.domain
    g = torch.Generator().manual_seed(seed)
    if kind == "pig":
        net = PIG(2, 1, 30, sigma=0.2, lower=d.lower, upper=d.upper, generator=g)
    else:
        net = PINN(2, 1, hidden, lower=d.lower, upper=d.upper, generator=g)
    return Constrained(net, problem.constraint) if constrained else net


class _Constant(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x[:, :1], self.value)


# ------------------------------------------------------------------------------ windows and dispatch
def test_windows_cover_the_time_interval_exactly():
    problem = _wave()
    edges = window_edges(problem.domain, 3)
    assert edges[0] == 0.0 and edges[-1] == 2.0 and len(edges) == 4
    torch.testing.assert_close(torch.tensor(edges).diff(), torch.full((3,), 2 / 3, dtype=torch.float32))
    wrapper, problems = window_problems(problem, _pinn(problem), 3)
    for k, p in enumerate(problems):
        assert (p.domain.lower[-1], p.domain.upper[-1]) == (edges[k], edges[k + 1])
        assert p.domain.lower[:-1] == problem.domain.lower[:-1] and p.exact is None
        assert p.domain.upper[:-1] == problem.domain.upper[:-1] and p.domain.time == "t"
    assert wrapper.edges == tuple(edges) and len(wrapper.windows) == 3


def test_wrapper_dispatches_on_time_with_shared_times_to_the_later_window():
    wrapper = TimeWindows([_Constant(0.0), _Constant(1.0), _Constant(2.0)], [0.0, 1.0, 2.0, 3.0], 1)
    t = torch.tensor([0.0, 0.999, 1.0, 1.5, 2.0, 2.5, 3.0, 0.5, 1.0 - 1e-6])
    x = torch.stack([torch.zeros_like(t), t], dim=1)
    torch.testing.assert_close(wrapper(x)[:, 0], torch.tensor([0, 0, 1, 1, 2, 2, 2, 0, 0.0]))
    with pytest.raises(ValueError, match="increasing"):
        TimeWindows([_Constant(0.0), _Constant(1.0)], [0.0, 1.0, 1.0], 1)


# ------------------------------------------------------------------------------ initial data handed on
def _trained(problem, model, windows=3, **kw):
    config = TrainConfig(
        adam_iterations=30, lr=1e-2, n_residual=64, n_condition=16, eval_every=10, time_windows=windows, **kw
    )
    trainer = Trainer(problem, model, config)
    return trainer, trainer.fit(progress=False)


def test_each_window_starts_from_the_previous_prediction_value_and_velocity():
    problem = _wave()
    trainer, result = _trained(problem, _pinn(problem))
    wrapper = result.model
    assert wrapper is trainer.model and isinstance(wrapper, TimeWindows)
    g = torch.Generator().manual_seed(3)
    for k in (1, 2):
        p = trainer.window_problems[k]
        x = p.domain.sample_initial(7, g)
        assert torch.all(x[:, 1] == wrapper.edges[k])
        value, velocity = p.condition("initial").value, p.condition("initial-velocity").value
        torch.testing.assert_close(value(x), wrapper.windows[k - 1](x)[:, 0])
        xr = x.clone().requires_grad_(True)
        (du,) = torch.autograd.grad(wrapper.windows[k - 1](xr).sum(), xr)
        torch.testing.assert_close(velocity(x), du[:, 1])
        # the initial-value loss of window k is the mismatch to window k - 1 at the shared time
        mismatch = (wrapper.windows[k](x) - wrapper.windows[k - 1](x))[:, 0].detach()
        d = trainer.window_problems[k]
        from sciml.problems.pde.derivatives import AutogradDerivatives

        dd = AutogradDerivatives(wrapper.windows[k], x, d.domain.names, d.fields)
        torch.testing.assert_close(d.condition("initial").residual(d.domain, dd.x, dd, {}).detach(), mismatch)
    # window k started from window k - 1's weights: they moved, but not far in 10 steps
    assert result.iterations == 30 and [h["window"] for h in result.history] == [0, 1, 2]
    assert [h["iteration"] for h in result.history] == [10, 20, 30]


@pytest.mark.parametrize("kind", ["pinn", "pig"])
def test_a_hard_initial_constraint_moves_to_each_window_start(kind, heat_problem):
    problem = heat_problem(constraint="auto")
    trainer, result = _trained(problem, _pinn(problem, constrained=True, kind=kind))
    assert result.rel_l2 < 1.0 and len(result.history) == 3
    wrapper = result.model
    g = torch.Generator().manual_seed(4)
    for k in (1, 2):
        x = trainer.window_problems[k].domain.sample_initial(9, g)
        # window k equals window k - 1 at their shared time exactly (up to round-off): no loss term needed
        torch.testing.assert_close(wrapper.windows[k](x), wrapper.windows[k - 1](x), rtol=0, atol=1e-6)
        # and keeps the Dirichlet walls
        walls = trainer.window_problems[k].domain.sample_boundary(6, g)
        torch.testing.assert_close(wrapper.windows[k](walls), torch.zeros(6, 1), rtol=0, atol=1e-6)
    sub = trainer_module._WindowTrainer(trainer, 1, None)
    assert "initial" not in sub.weights and "dirichlet" not in sub.weights


# ------------------------------------------------------------------------------ plain run, budget, errors
def test_one_window_is_the_plain_trainer_and_windows_share_the_budget(heat_problem):
    problem = heat_problem()
    base = TrainConfig(adam_iterations=20, lbfgs_iterations=5, n_residual=64, n_condition=16, eval_every=5)
    a = Trainer(problem, _pinn(problem), base).fit(progress=False)
    b = Trainer(problem, _pinn(problem), base.replace(time_windows=1)).fit(progress=False)
    assert [h["loss"] for h in a.history] == [h["loss"] for h in b.history]
    assert a.rel_l2 == b.rel_l2 and a.params == b.params
    trainer = Trainer(problem, _pinn(problem), base.replace(time_windows=3, decay_every=900))
    shares = [trainer._window_config(k) for k in range(3)]
    assert [c.adam_iterations for c in shares] == [7, 7, 6] and [c.lbfgs_iterations for c in shares] == [
        2,
        2,
        1,
    ]
    assert {c.decay_every for c in shares} == {300} and [c.seed for c in shares] == [0, 1, 2]
    assert all(c.time_windows == 1 for c in shares)


def test_bad_input_is_refused_with_a_message(heat_problem):
    with pytest.raises(ValueError, match="time_windows"):
        TrainConfig(time_windows=0)
    steady = PDEProblem(
        "steady",
        Box(("x",), (0.0,), (1.0,)),
        ("u",),
        lambda x, d, p: d["u_xx"],
        (Dirichlet(),),
        exact=lambda x: 0 * x[:, 0],
        test_shape=(11,),
    )
    net = PINN(1, 1, (8,), lower=(0,), upper=(1,))
    with pytest.raises(ValueError, match="no time coordinate.*time_windows=1"):
        Trainer(steady, net, TrainConfig(time_windows=2))
    problem = heat_problem()
    with pytest.raises(ValueError, match="at least 4 iterations"):
        Trainer(problem, _pinn(problem), TrainConfig(adam_iterations=3, time_windows=4))
    with pytest.raises(ValueError, match="unknowns"):
        Trainer(
            problem.replace(params={"D": 1.0}), _pinn(problem), TrainConfig(time_windows=2), unknowns={"D": 1}
        )
    data = problem.replace(conditions=(*problem.conditions, Observations(points=[[0.5, 0.5]], values=[0.3])))
    with pytest.raises(ValueError, match="Observations.*time_windows=1"):
        Trainer(data, _pinn(problem), TrainConfig(time_windows=2))


# ------------------------------------------------------------------------------ accuracy and resume
def test_heat_with_two_windows_reaches_a_small_error_over_the_whole_domain(heat_problem):
    problem = heat_problem(constraint="auto")
    config = TrainConfig(
        adam_iterations=200, lbfgs_iterations=200, lr=1e-2, n_residual=256, n_condition=64, eval_every=100,
        dtype="float64", time_windows=2,
    )  # fmt: skip
    result = train(problem, _pinn(problem, constrained=True), config, progress=False)
    assert result.rel_l2 < 5e-3, result.rel_l2
    assert result.history[-1]["iteration"] == 400 and result.history[-1]["rel_l2"] == result.rel_l2


def test_resume_across_windows_is_exact(tmp_path, monkeypatch):
    problem = _wave()
    config = TrainConfig(
        adam_iterations=24, lbfgs_iterations=6, lr=1e-2, n_residual=64, n_condition=16, resample_every=3,
        eval_every=4, checkpoint_every=4, time_windows=3, rad=True, causal_chunks=4,
    )  # fmt: skip
    straight = Trainer(problem, _pinn(problem), config, checkpoint=tmp_path / "a.pt").fit(progress=False)

    original = trainer_module._WindowTrainer.loss

    def interrupted(self, points):
        path = tmp_path / "b.pt"
        if path.exists():
            state = torch.load(path, weights_only=True)
            if state["window"] == 1 and state["inner"] is not None and state["inner"]["iteration"] == 4:
                raise KeyboardInterrupt  # in window 2, after its checkpoint at its iteration 4
        return original(self, points)

    monkeypatch.setattr(trainer_module._WindowTrainer, "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Trainer(problem, _pinn(problem), config, checkpoint=tmp_path / "b.pt").fit(progress=False)
    monkeypatch.setattr(trainer_module._WindowTrainer, "loss", original)
    # other initial weights: everything must come from the checkpoint
    again = Trainer(problem, _pinn(problem, seed=5), config, checkpoint=tmp_path / "b.pt")
    resumed = again.fit(progress=False, resume=True)
    assert resumed.iterations == straight.iterations == 30
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    drop = ("seconds", "cpu_seconds")
    assert [{k: v for k, v in h.items() if k not in drop} for h in straight.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in resumed.history
    ]
    assert resumed.rel_l2 == straight.rel_l2
    # a finished run resumes to the same result; another window count is another run
    final = Trainer(problem, _pinn(problem, seed=6), config, checkpoint=tmp_path / "b.pt").fit(
        progress=False, resume=True
    )
    assert final.rel_l2 == straight.rel_l2 and final.iterations == 30
    with pytest.raises(ValueError, match="another run"):
        Trainer(problem, _pinn(problem), config.replace(time_windows=2), checkpoint=tmp_path / "b.pt").fit(
            progress=False, resume=True
        )

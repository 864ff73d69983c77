"""Fixes from the review of the differentiable ODE solvers and neural ODEs (odeint, solve, NeuralODE, the
``sciml train node`` and ``sciml bench node`` commands): each test failed before its fix."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.ode import solve
from sciml.solvers.solution import SolveError
from torch import nn

import sciml
from sciml.cli import main as cli_main
from sciml.neural_de import Autonomous, ErrorEstimateRegularizer, LocalErrorRegularizer, NeuralODE

_A = torch.tensor([[-0.3, 1.0], [-1.0, -0.2]], dtype=torch.float64)


def _field(t, y):
    return torch.tanh(y @ _A.T) * (1 + 0.3 * torch.sin(t))


def _oscillator(t, y):
    return torch.stack([y[1], -25 * y[0]])


class _Decay(nn.Module):
    def __init__(self, rate: float = 1.0):
        super().__init__()
        self.rate = rate

    def forward(self, t, y):
        return -self.rate * y


# ----------------------------------------------------------------------------- D1: step_size, adaptive
def test_an_adaptive_method_warns_about_step_size_and_stays_adaptive():
    t = torch.linspace(0, 4, 5, dtype=torch.float64)
    y0 = torch.tensor([1.0, 0.0], dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"ignores options \['step_size'\]"):
        ys = sciml.odeint(
            _oscillator, y0, t, method="dopri5", rtol=1e-10, atol=1e-10, options={"step_size": 0.9}
        )
    assert (ys[:, 0] - torch.cos(5 * t)).abs().max() < 1e-7  # was 2.6e3: fixed steps of 0.9


@pytest.mark.parametrize(
    "method, option", [("dopri5", "grid_constructor"), ("tsit5", "perturb"), ("rk4", "first_step")]
)
def test_options_a_method_does_not_use_are_named_in_a_warning(method, option):
    value = {"grid_constructor": lambda f, y0, t: t, "perturb": True, "first_step": 0.1}[option]
    t = torch.linspace(0, 1, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match=option):
        sciml.odeint(_field, torch.ones(1, 2, dtype=torch.float64), t, method=method, options={option: value})


# ----------------------------------------------------------------------------- D2: t gradient, fixed grids
@pytest.mark.parametrize(
    "method", ["euler", "midpoint", "heun3", "rk4", "explicit_adams", "implicit_adams", "radauIIA5"]
)
@pytest.mark.parametrize("options", [None, {"step_size": 0.07}], ids=["grid-t", "step_size"])
def test_the_t_gradient_of_a_fixed_grid_method_is_that_of_its_returned_values(method, options):
    y0 = torch.tensor([[0.5, -0.3]], dtype=torch.float64)
    # six steps on t (Adams past its RK4 start); no interval a whole number of steps of 0.07
    t = torch.tensor([0.0, 0.213, 0.437, 0.71, 0.923, 1.117, 1.37], dtype=torch.float64, requires_grad=True)

    def values(t):
        return sciml.odeint(_field, y0, t, method=method, options=options, rtol=1e-12, atol=1e-12)

    assert torch.autograd.gradcheck(values, (t,), atol=1e-6, rtol=1e-5)


def test_the_t_gradient_of_fixed_steps_follows_a_grid_constructor_and_tuple_states():
    def grid(f, y0, t):  # moves with t[0] and t[-1]
        return t[0] + (t[-1] - t[0]) * torch.linspace(0, 1, 7, dtype=t.dtype)

    def pair(t, y):
        return y[1] * torch.cos(t), -y[0]

    t = torch.tensor([0.0, 0.3, 0.85], dtype=torch.float64, requires_grad=True)
    y0 = (torch.tensor([0.5], dtype=torch.float64), torch.tensor([0.2], dtype=torch.float64))
    for method in ("rk4", "explicit_adams"):
        assert torch.autograd.gradcheck(
            lambda t, method=method: sciml.odeint(
                _field, y0[0].expand(1, 2), t, method=method, options={"grid_constructor": grid}
            ),
            (t,),
        )
        assert torch.autograd.gradcheck(
            lambda t, method=method: sciml.odeint(pair, y0, t, method=method)[0], (t,)
        )


def test_an_adaptive_method_keeps_the_documented_t_gradient():
    """Adaptive steps do not move with t: d y(t_i) / d t_i is the field there (README)."""
    t = torch.tensor([0.0, 0.7], dtype=torch.float64, requires_grad=True)
    y0 = torch.tensor([[0.5, -0.3]], dtype=torch.float64)
    ys = sciml.odeint(_field, y0, t, method="dopri5")
    (grad,) = torch.autograd.grad(ys[-1].sum(), t)
    assert grad[1].item() == pytest.approx(_field(t[1].detach(), ys[-1].detach()).sum().item(), rel=1e-12)


# ----------------------------------------------------------------------------- D3, D4, D5: save times
def test_a_float32_saveat_on_a_short_span_keeps_its_times():
    problem = ODEProblem(lambda t, y: -1e6 * y, torch.ones(1, dtype=torch.float64), t_span=(0.0, 1e-6))
    saveat = torch.tensor([2.5e-7, 7.5e-7])  # float32
    sol = solve(problem, "tsit5", rtol=1e-9, atol=1e-12, saveat=saveat)
    assert sol.ts.tolist() == saveat.double().tolist()  # were [0, 1e-6]
    assert torch.allclose(sol.ys.flatten(), torch.exp(-1e6 * saveat.double()), rtol=1e-6)
    node = NeuralODE(_Decay(1e6), t_span=(0.0, 1e-6), rtol=1e-8, atol=1e-8)
    ys = node(torch.ones(1, 1, dtype=torch.float64), saveat=torch.tensor([0.0, 2.5e-7, 1e-6])).ys.flatten()
    assert ys.tolist() == pytest.approx([1.0, 0.7788007831, 0.3678794412], rel=1e-6)  # was 1.0 at 2.5e-7


def test_a_float32_saveat_still_lands_on_an_end_it_cannot_hold():
    problem = ODEProblem(lambda t, y: -y, torch.ones(1), t_span=(0.0, 0.3))
    assert solve(problem, saveat=torch.tensor([0.1, 0.3])).ts.tolist()[-1] == 0.3


@pytest.mark.parametrize(
    "saveat",
    [list(itertools.accumulate([0.1] * 10)), [0.5, 1.0 - 1e-15], [0.5, 1.0 - 1e-12], [1e-15, 1.0]],
    ids=["accumulated", "ulp-below-t1", "1e-12-below-t1", "just-after-t0"],
)
def test_neural_ode_takes_save_times_near_the_ends(saveat):
    node = NeuralODE(_Decay(), t_span=(0.0, 1.0))
    ys = node(torch.ones(1, 1, dtype=torch.float64), saveat=saveat).ys  # KeyError before
    expected = torch.exp(-torch.tensor(saveat, dtype=torch.float64))
    assert torch.allclose(ys.flatten(), expected, rtol=1e-4)


def test_neural_ode_refuses_a_two_dimensional_saveat():
    node = NeuralODE(_Decay())
    with pytest.raises(ValueError, match="one-dimensional"):
        node(torch.ones(2, 1), saveat=torch.tensor([[0.1, 0.5], [0.2, 0.6]]))
    with pytest.raises(ValueError, match="one-dimensional"):
        node(torch.ones(2, 1), saveat=[[0.1, 0.5], [0.2, 0.6]])


# ----------------------------------------------------------------------------- D6, D7: odeint messages
def test_event_handling_refuses_more_than_two_times():
    t = torch.tensor([0.0, 0.2, 0.4, 0.6])
    with pytest.raises(ValueError, match=r"len\(t\)=4.*t\[:2\]"):
        sciml.odeint(lambda t, y: torch.stack([y[1], -9.81 + 0 * y[1]]), torch.tensor([1.0, 2.0]), t,
                     event_fn=lambda t, y: y[0])  # fmt: skip


def test_the_step_limit_message_names_max_num_steps():
    with pytest.raises(SolveError) as info:
        sciml.odeint(
            lambda t, y: -y, torch.tensor([1.0]), torch.linspace(0, 1, 3), options={"max_num_steps": 2}
        )
    assert "options['max_num_steps']" in str(info.value) and "`max_steps`" not in str(info.value)


# ----------------------------------------------------------------------------- D8: torchdiffeq backend
def test_the_torchdiffeq_backend_refuses_a_global_regularizer_naming_itself():
    node = NeuralODE(Autonomous(nn.Linear(2, 2)), backend="torchdiffeq")
    for grad in (True, False):
        with torch.set_grad_enabled(grad), pytest.raises(ValueError, match="backend='torchdiffeq'") as info:
            node(torch.randn(4, 2), regularizer=ErrorEstimateRegularizer())
        assert "continuous adjoint" not in str(info.value)
    with pytest.raises(ValueError, match="local-biased|samples a step"):
        node(torch.randn(4, 2), regularizer=LocalErrorRegularizer("biased"))


@pytest.mark.parametrize("method", ["no-such-method", "rodas5p", "rk4"])
def test_the_torchdiffeq_backend_refuses_a_method_it_cannot_run(method):
    with pytest.raises(ValueError, match="dopri5"):
        NeuralODE(Autonomous(nn.Linear(2, 2)), backend="torchdiffeq", method=method)


def test_the_torchdiffeq_backend_runs_the_method_named(monkeypatch):
    import torchdiffeq

    used = []
    original = torchdiffeq.odeint_adjoint
    monkeypatch.setattr(
        torchdiffeq, "odeint_adjoint", lambda *a, **k: used.append(k["method"]) or original(*a, **k)
    )
    for method in ("tsit5", "bs3", "dopri8"):
        NeuralODE(Autonomous(nn.Linear(2, 2)), backend="torchdiffeq", method=method)(torch.randn(3, 2))
    assert used == ["dopri5", "bosh3", "dopri8"]


# ----------------------------------------------------------------------------- the commands
def _help(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit):
        cli_main(argv)
    return capsys.readouterr().out


def test_train_help_describes_every_option_variant_and_backend(capsys):
    from sciml.neural_de.training import VARIANTS

    text = _help(["train", "node", "--help"], capsys)
    for flag in ("--lr LR ", "--batch-size BATCH_SIZE"):
        line = text[text.index(flag) :].split("\n")
        assert len(" ".join(line[:2]).split()) > 4, flag  # the flag has a help text
    rows = {
        line.split()[0]: line for line in text.splitlines() if line.startswith("  ") and len(line.split()) > 3
    }
    for name in (*VARIANTS, "backprop", "continuous", "torchdiffeq"):
        assert name in rows, name
    assert "rnode" not in _help(["train", "sde", "--help"], capsys).split("--reg (")[-1]


def test_bench_help_lists_the_tasks_and_a_train_only_task_is_named_so(capsys, tmp_path):
    text = "".join(_help(["bench", "node", "--help"], capsys).split())
    assert "digits,latent,latent-hard,mnist1d" in text
    assert cli_main(["bench", "node", "--tasks", "spiral", "--out", str(tmp_path / "b")]) == 2
    assert "does not benchmark it" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "node", "--task", "spiral", "--init-from", "missing.pt"],
        ["bench", "node", "--sweep", "--tolerance", "-1"],
        ["bench", "node", "--local-dtype", "float64"],
        ["bench", "node", "--tasks", "spiral"],
    ],
    ids=["init-from", "tolerance", "local-dtype", "task"],
)
def test_a_refused_invocation_creates_no_output_folder(argv, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli_main([*argv, "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    assert not out.exists()


def test_summary_records_the_weight_used_and_curves_have_whole_epochs(tmp_path, monkeypatch):
    import sciml.neural_de.training as training

    figures = []
    monkeypatch.setattr(training, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    out = tmp_path / "run"
    cli_main(["train", "node", "--task", "spiral", "--reg", "error", "--epochs", "1", "--out", str(out),
              "--no-progress"])  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["weight"] == training.calibrated_weight("error", training.get_task("spiral"))[0]
    )  # was None
    fig = figures[0]
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        ticks = [v for v in ax.get_xticks() if lo <= v <= hi]
        assert ticks and all(v == int(v) for v in ticks), ticks  # were 0.945, 0.96, ...
        assert ax.get_ylabel()
    assert fig.axes[1].get_ylabel() == "mse"

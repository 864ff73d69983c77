"""A review of inverse problems as a new user meets them: ``sciml pde --unknowns`` (parsing, the fitted values
in the outputs, clean refusals, --resume), warnings for data that carry no weight or no gradient, messages
about condition names and time-marching, the aspect of ``fields.png``, the ``--iterations`` help, and a
``Box`` called without names."""

import json
import math
import textwrap
import warnings

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.cli import main
from sciml.pinn import PINN, Constrained, TrainConfig, Trainer
from sciml.pinn.trainer import CheckpointMismatch

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = {"adam_iterations": 2, "lbfgs_iterations": 0, "n_residual": 32, "n_condition": 8, "eval_every": 1}

#: a user's file: an inverse heat problem on [0, 1] × [0, 1] (true D = 0.1) with sensors, and the same
#: problem without data
PROBLEM_FILE = textwrap.dedent(
    """
    import math
    import numpy as np
    import torch
    import sciml.problems.pde as pde

    def heat(observed=True):
        g = np.random.default_rng(0)
        points = g.uniform(0.05, 0.95, (20, 2))
        values = np.exp(-0.1 * math.pi**2 * points[:, 1]) * np.sin(math.pi * points[:, 0])
        data = (pde.Observations(points=points, values=values, name="sensors"),) if observed else ()
        initial = pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]))
        return pde.PDEProblem(
            name="heat-inv", domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=("u",),
            residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"], params={"D": 0.1},
            conditions=(pde.Dirichlet(), initial, *data), test_shape=(11, 6),
        )

    def forward():
        return heat(observed=False)
    """
)


def _file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(PROBLEM_FILE)
    return str(path)


def _pde(*options):
    return ["pde", "--model", "pinn", "--iterations", "2", "--no-progress", *options]


def _observed(scale=1.0, **weights):
    """``-k (u'' + 1) = 0`` (times ``scale``) on [0, 1] with u(0) = u(1) = 0 and observations of
    u = x (1 − x) / 2."""
    x = np.linspace(0.1, 0.9, 9)[:, None]
    return pde.PDEProblem(
        name="bar", domain=pde.Interval(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: -scale * p["k"] * (d["u_xx"] + 1.0), params={"k": 1.0},
        conditions=(pde.Dirichlet(), pde.Observations(points=x, values=x[:, 0] * (1 - x[:, 0]) / 2)),
        loss_weights=weights,
    )  # fmt: skip


def _net(seed=0):
    return PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------- 1: sciml pde --unknowns
@pytest.mark.parametrize(
    "value, message",
    [
        ("D", "'D' is not NAME=GUESS"),
        ("D=0.2,", "'' is not NAME=GUESS"),
        ("=1", "'=1' is not NAME=GUESS"),
        ("D=abc", "the initial guess of 'D' is 'abc', not a finite number"),
        ("D=nan", "the initial guess of 'D' is 'nan', not a finite number"),
        ("D=1,D=2", "'D' is given twice"),
    ],
)
def test_cli_unknowns_syntax_errors_name_the_option(tmp_path, capsys, value, message):
    with pytest.raises(SystemExit) as exit_:
        main(_pde("--problem", "x.py:heat", "--unknowns", value))
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "argument --unknowns" in err and message in err, err


def test_cli_fits_unknowns_reports_them_and_resumes_only_with_the_same_ones(tmp_path, capsys):
    spec, out = _file(tmp_path) + ":heat", tmp_path / "run"
    argv = _pde("--problem", spec, "--unknowns", "D=0.5", "--out", str(out))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    fitted = metrics["unknowns"]
    assert list(fitted) == ["D"] and fitted["D"] != 0.5 and math.isfinite(fitted["D"])
    assert f"fitted unknowns: D = {fitted['D']:.6g} (initial guess 0.5)" in printed
    with h5py.File(out / "fields.h5") as f:
        assert f.attrs["unknown_D"] == pytest.approx(fitted["D"])
    # another guess, or another coefficient, is another run: refused, in the command line's words
    for other, why in (("D=0.7", "unknowns.D: 0.5 in the checkpoint, 0.7 now"), ("D=0.5,E=1", "not coeff")):
        assert main([*argv[:-4], "--unknowns", other, "--out", str(out), "--resume"]) == 2
        err = capsys.readouterr().err
        assert why in err and "Traceback" not in err, err
    assert "--unknowns" in err  # (E is not a coefficient: the option is named)
    assert main([*argv, "--resume"]) == 0  # the same options continue the run
    # a forward problem's metrics say so: no unknowns
    assert main(_pde("--problem", spec[:-5] + ":forward", "--out", str(tmp_path / "fw"))) == 0
    assert json.loads((tmp_path / "fw" / "metrics.json").read_text())["unknowns"] == {}


def test_cli_unknowns_refused_with_time_windows_in_the_command_lines_words(tmp_path, capsys):
    spec = _file(tmp_path) + ":heat"
    argv = _pde("--problem", spec, "--unknowns", "D=0.5", "--time-windows", "2")
    assert main([*argv, "--out", str(tmp_path / "tw")]) == 2
    err = capsys.readouterr().err
    assert "time-marching does not fit --unknowns" in err and "drop --time-windows" in err, err
    assert not (tmp_path / "tw").exists()


def test_cli_iterations_help_says_the_generic_preset_trains_with_adam_alone(capsys):
    with pytest.raises(SystemExit):
        main(["pde", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "generic preset (a problem without a suite preset, e.g. from a file) trains with Adam alone" in text
    )
    assert "--unknowns NAME=GUESS[,NAME=GUESS...]" in text


# ------------------------------------------------------------------------- 2: data of weight 0
@pytest.mark.parametrize("where", ["config", "problem"])
def test_unknowns_with_observations_of_weight_zero_warn(where):
    problem = _observed(data=0.0) if where == "problem" else _observed()
    config = TrainConfig(**SMALL, weights={"data": 0.0} if where == "config" else {})
    with pytest.warns(UserWarning, match=r"without any Observations condition that is trained on \(the "):
        Trainer(problem, _net(), config, unknowns={"k": 2.0})


# ------------------------------------------------------------------------- 3: data without gradient
@pytest.mark.parametrize("adam", [2, 0])
def test_badly_scaled_inverse_problem_warns_once_at_the_first_loss(adam):
    config = TrainConfig(**{**SMALL, "adam_iterations": adam, "lbfgs_iterations": 2 - adam})
    with warnings.catch_warnings():  # not for a forward problem, nor for a well-scaled inverse one
        warnings.simplefilter("error")
        Trainer(_observed(scale=1e6), _net(), config).fit(progress=False)
        Trainer(_observed(), _net(), config, unknowns={"k": 2.0}).fit(progress=False)
    trainer = Trainer(_observed(scale=1e6), _net(), config, unknowns={"k": 2.0})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(progress=False)
    scale = [str(w.message) for w in caught if "carry almost no gradient" in str(w.message)]
    assert len(scale) == 1, [str(w.message) for w in caught]
    assert "driven by the residual rather than the data" in scale[0]
    assert "Non-dimensionalise" in scale[0]
    # grad-norm balancing acts in the Adam phase only: not offered to an L-BFGS-only run
    assert ("balance='grad_norm'" in scale[0]) == (adam > 0)
    assert "TrainConfig(weights={'data': " in scale[0]


def test_the_scale_warning_survives_a_data_term_of_exactly_zero_and_is_not_repeated_on_resume(tmp_path):
    # sensors at t = 0, where the hard constraint builds in the initial value: their term is exactly 0
    x = np.linspace(0.1, 0.9, 5)
    before, later = np.c_[x, np.zeros(5)], np.c_[x, np.full(5, 0.5)]
    problem = pde.PDEProblem(
        name="heat0", domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: 1e6 * (d["u_t"] - p["k"] * d["u_xx"] - 1.0), params={"k": 1.0},
        conditions=(
            pde.InitialValue(value=0.0, name="ic"),
            pde.Observations(points=before, values=np.zeros(5), name="snapshot"),
            pde.Observations(points=later, values=np.full(5, 0.3), name="sensors"),
        ),
        constraint="auto",
    )  # fmt: skip

    def trainer(adam):
        net = PINN(2, 1, (8,), lower=(0, 0), upper=(1, 1), generator=torch.Generator().manual_seed(0))
        config = TrainConfig(**{**SMALL, "adam_iterations": adam, "checkpoint_every": 2})
        return Trainer(problem, Constrained(net, problem.constraint), config, unknowns={"k": 2.0},
                       checkpoint=tmp_path / "c.pt")  # fmt: skip

    with pytest.warns(UserWarning, match="carry almost no gradient") as caught:
        trainer(2).fit(progress=False)  # (it divided by the zero term)
    assert any("weights={'sensors': " in str(w.message) for w in caught)
    state = load_checkpoint(tmp_path / "c.pt")
    state["iteration"] = 1  # a run that stopped after its first iteration
    save_checkpoint(state, tmp_path / "c.pt")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer(2).fit(progress=False, resume=True)
    assert not [w for w in caught if "carry almost no gradient" in str(w.message)]


def test_resume_refuses_another_guess_and_reads_a_checkpoint_of_names_only(tmp_path):
    path, config = tmp_path / "c.pt", TrainConfig(**SMALL)
    Trainer(_observed(), _net(), config, unknowns={"k": 2.0}, checkpoint=path).fit(progress=False)
    with pytest.raises(CheckpointMismatch, match="unknowns.k: 2.0 in the checkpoint, 3.0 now"):
        Trainer(_observed(), _net(), config, unknowns={"k": 3.0}, checkpoint=path).fit(resume=True)
    state = load_checkpoint(path)  # as written before the guesses were part of the fingerprint
    state["fingerprint"]["unknowns"] = ["k"]
    save_checkpoint(state, path)
    Trainer(_observed(), _net(), config, unknowns={"k": 3.0}, checkpoint=path).fit(
        resume=True, progress=False
    )


# ------------------------------------------------------------------------- 4: messages
def test_duplicate_observations_names_get_a_data_like_example():
    data = pde.Observations(points=[[0.5]], values=[0.1])
    with pytest.raises(ValueError, match=r"Observations\(\.\.\., name='sensors'\) instead of 'data'"):
        _observed().replace(conditions=(pde.Dirichlet(), data, data))
    with pytest.raises(ValueError, match=r"Dirichlet\(\.\.\., name='left'\)"):
        _observed().replace(conditions=(pde.Dirichlet(), pde.Dirichlet()))


def test_time_marching_refusal_of_observations_reads_right(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("mine", _file(tmp_path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    problem = module.heat()
    net = PINN(2, 1, (8,), lower=(0.0, 0.0), upper=(1.0, 1.0))
    with pytest.raises(ValueError, match="condition 'sensors' is of type Observations, which it cannot") as e:
        Trainer(problem, net, TrainConfig(**SMALL, time_windows=2))
    assert "is a Observations" not in str(e.value) and "PointCondition are not divided" in str(e.value)


# ------------------------------------------------------------------------- 5: fields.png aspect
@pytest.mark.parametrize("with_reference", [True, False])
def test_fields_png_keeps_the_true_aspect_of_space(monkeypatch, tmp_path, with_reference):
    from sciml.solvers.fd import ReferenceSolution

    import sciml.checkpoint
    from sciml.pinn.cli import plot_fields

    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, **kw: figures.append(fig))
    aspects = []
    for names, upper, time in (
        (("x", "y"), (2.0, 1.0), None),  # space: a disk looks like a disk
        (("x", "t"), (2.0, 1.0), "t"),  # time: fills the panel
        (("x", "y"), (10.0, 1.0), None),  # thin: stays readable
    ):
        axes = (np.linspace(0, upper[0], 5), np.linspace(0, upper[1], 4))
        values = np.random.default_rng(0).normal(size=(5, 4, 1))
        reference = ReferenceSolution(axes=axes, values=values, source="exact") if with_reference else None
        plot_fields(tmp_path / "f.png", reference, values, names, "t", time=time, axes=axes)
        images = [a for a in figures[-1].axes if a.images]
        aspects.append({a.get_aspect() for a in images})
    assert aspects == [{1.0}, {"auto"}, {"auto"}]


# ------------------------------------------------------------------------- 7: Box without names
@pytest.mark.parametrize("args", [((-1, -1), (1, 1)), ((-1, -1), (1, 1), ("x", "y"))])
def test_box_without_names_first_shows_the_signature(args):
    with pytest.raises(ValueError, match=r"Box\(names, lower, upper\), e\.g\. Box\(\('x', 'y'\), \(-1, -1\)"):
        pde.Box(*args)
    assert pde.Box(("x", "y"), (-1, -1), (1, 1)).upper == (1.0, 1.0)  # the signature itself is unchanged


def test_unknowns_with_a_preset_that_marches_get_the_command_lines_words(capsys):
    assert main(_pde("--problem", "allen-cahn", "--budget", "quick", "--unknowns", "gamma=1")) != 0
    err = capsys.readouterr().err
    assert "pass --time-windows 1 (to turn off the preset's time-marching windows)" in err
    assert "time_windows=1" not in err


def test_box_with_names_and_a_missing_bound_says_which():
    with pytest.raises(ValueError, match=r"`upper` is missing"):
        pde.Box(("x", "y"), (0, 0))


def test_unknowns_whose_guess_solves_the_reference_recipe_get_the_command_lines_fix(capsys):
    nu = repr(pde.get("burgers").params["nu"])  # the guess is params' value: the recipe would use it
    assert main(_pde("--problem", "burgers", "--budget", "quick", "--unknowns", f"nu={nu}")) != 0
    err = capsys.readouterr().err
    assert "Pass the true solution with --reference FILE" in err
    assert "start --unknowns from other guesses" in err
    assert "Trainer(" not in err and "reference_solution(" not in err

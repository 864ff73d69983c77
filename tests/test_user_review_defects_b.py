"""A user review's defects: time-marching with a boundary predicate that depends on time, ``--problem`` given
as a file without a function or as a PDEProblem in a file, field names and a gridded reference file in the
CLI's outputs, and enough history entries for a short run of a problem from a file."""

import argparse
import json
import math

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import PINN, TrainConfig, Trainer, cli, strategies

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------ time-marching, a switching wall
def _switching_wall(late_on=None):
    """Heat equation whose right wall is Dirichlet for t < 0.5 and Neumann from t = 0.5 on."""
    exact = lambda x: torch.exp(-(math.pi**2) * x[:, 1] / 4) * torch.sin(math.pi * x[:, 0] / 2)  # noqa: E731
    domain = pde.Interval(0.0, 1.0).times(0.0, 1.0)
    late_on = late_on or (lambda x: (x[:, 0] > 0.5) & (x[:, 1] >= 0.5))
    conditions = (
        pde.Dirichlet(value=0.0, on="x-", name="left"),
        pde.Dirichlet(
            value=lambda x: torch.exp(-(math.pi**2) * x[:, 1] / 4),
            on=lambda x: (x[:, 0] > 0.5) & (x[:, 1] < 0.5),
            name="right-early",
        ),
        pde.Neumann(value=0.0, on=late_on, name="right-late"),
        pde.InitialValue(value=exact),
    )
    return pde.PDEProblem(
        name="switch",
        domain=domain,
        fields=("u",),
        residual=lambda x, d, p: d["u_t"] - d["u_xx"],
        conditions=conditions,
        exact=exact,
        loss_weights={"right-late": 2.0, "right-early": 3.0},
    )


def test_time_marching_keeps_a_condition_only_in_the_windows_its_predicate_reaches():
    problem = _switching_wall()
    model = PINN(2, 1, (8,), lower=problem.domain.lower, upper=problem.domain.upper)
    _, problems = strategies.window_problems(problem, model, 4)
    names = [[c.name for c in p.conditions] for p in problems]
    assert names[0] == names[1] == ["left", "right-early", "initial"]
    assert names[2] == names[3] == ["left", "right-late", "initial"]
    assert problems[0].loss_weights == {"right-early": 3.0}
    assert problems[3].loss_weights == {"right-late": 2.0}
    # a condition that reaches every window is the problem's own
    assert problems[2].condition("left") is problem.condition("left")


def test_time_marching_trains_a_wall_that_switches_condition():
    torch.manual_seed(0)
    problem = _switching_wall()
    model = PINN(2, 1, (8,), lower=problem.domain.lower, upper=problem.domain.upper)
    config = TrainConfig(adam_iterations=8, lbfgs_iterations=0, n_residual=64, n_condition=16, time_windows=4)
    result = Trainer(problem, model, config).fit(progress=False)
    assert result.iterations == 8 and math.isfinite(result.rel_l2)


def test_time_marching_passes_each_window_only_the_weights_and_points_of_its_own_conditions():
    """`weights` and `condition_points` may name a condition that some windows leave out."""
    problem = _switching_wall()
    model = PINN(2, 1, (8,), lower=problem.domain.lower, upper=problem.domain.upper)
    config = TrainConfig(
        adam_iterations=4,
        lbfgs_iterations=0,
        n_residual=32,
        n_condition=16,
        time_windows=4,
        weights={"right-late": 5.0, "right-early": 4.0},
        condition_points={"right-late": 24},
    )
    trainer = Trainer(problem, model, config)
    early, late = trainer._window_config(0), trainer._window_config(3)
    assert early.weights == {"right-early": 4.0} and early.condition_points == {}
    assert late.weights == {"right-late": 5.0} and late.condition_points == {"right-late": 24}
    assert trainer.fit(progress=False).iterations == 4


def test_time_marching_still_refuses_a_predicate_that_selects_no_point_in_any_window():
    state = {"on": True}
    problem = _switching_wall(lambda x: (x[:, 0] > 0.5) & state["on"])
    state["on"] = False  # valid on the whole domain when the problem was built, empty from now on
    model = PINN(2, 1, (8,), lower=problem.domain.lower, upper=problem.domain.upper)
    with pytest.raises(
        ValueError, match="condition 'right-late': its predicate `on` selects no point.*fix `on`"
    ):
        strategies.window_problems(problem, model, 4)


# ------------------------------------------------------------------ --problem FILE.py[:NAME]
_FILE = (
    "import sciml.problems.pde as pde\n"
    "def disk():\n"
    "    return pde.PDEProblem(name='mine', domain=pde.Disk(), fields=('u',),\n"
    "        residual=lambda x, d, p: d['u_xx'] + d['u_yy'] + 4.0, conditions=(pde.Dirichlet(),))\n"
    "problem = disk()\n"
    "NOT_A_FUNCTION = 1\n"
)


def test_problem_file_without_a_function_says_how_to_name_one(tmp_path):
    file = tmp_path / "mine.py"
    file.write_text(_FILE)
    with pytest.raises(ValueError, match=r"FILE\.py:FUNCTION.*disk.*problem") as info:
        cli._load_problem(str(file))
    assert "unknown PDE problem" not in str(info.value)
    with pytest.raises(ValueError, match=r"no file .*FILE\.py:FUNCTION"):
        cli._load_problem(str(tmp_path / "missing.py"))


def test_problem_file_may_name_a_pde_problem_instance(tmp_path):
    file = tmp_path / "mine.py"
    file.write_text(_FILE)
    assert cli._load_problem(f"{file}:problem").name == "mine"
    with pytest.raises(ValueError, match="defines no function 'NOT_A_FUNCTION'.*int"):
        cli._load_problem(f"{file}:NOT_A_FUNCTION")


def test_problem_file_listing_suggests_factories_not_helpers(tmp_path):
    """A helper such as exact(x) is neither suggested nor called; a script's argparse does not end the CLI."""
    file = tmp_path / "helpers_first.py"
    file.write_text(
        "import torch, sciml.problems.pde as pde\n"
        "def exact(x):\n    return torch.sin(x[:, 0])\n"
        "def heat(scale=1.0):\n"
        "    return pde.PDEProblem(name='h', domain=pde.Interval(0.0, 1.0), fields=('u',),\n"
        "                          residual=lambda x, d, p: d['u_xx'], conditions=(pde.Dirichlet(),))\n"
    )
    with pytest.raises(ValueError, match=r"e\.g\. --problem .*:heat \(.* defines heat\)"):
        cli._load_problem(str(file))
    with pytest.raises(ValueError, match=r"'exact' takes arguments.*defines heat"):
        cli._load_problem(f"{file}:exact")
    assert cli._load_problem(f"{file}:heat").name == "h"
    script = tmp_path / "script.py"
    script.write_text("import argparse\nargparse.ArgumentParser().parse_args(['--bad'])\n")
    with pytest.raises(ValueError, match=r"FILE\.py:FUNCTION"):
        cli._load_problem(str(script))


# ------------------------------------------------------------------ outputs of a run from a file
_SYSTEM = (
    "import math, torch\n"
    "import sciml.problems.pde as pde\n"
    "def rd():\n"
    "    return pde.PDEProblem(\n"
    "        name='rd', domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=('u', 'v'), n_equations=2,\n"
    "        residual=lambda x, d, p: torch.stack([d['u_t'] - 0.1 * d['u_xx'] + d['v'],\n"
    "                                              d['v_t'] - 0.05 * d['v_xx'] - d['u']], 1),\n"
    "        conditions=(pde.Dirichlet(field='u', name='ub'), pde.Dirichlet(field='v', name='vb'),\n"
    "            pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]), field='u', name='u0'),\n"
    "            pde.InitialValue(value=lambda x: x[:, 0] * (1 - x[:, 0]), field='v', name='v0')))\n"
)


def _run(tmp_path, monkeypatch, *extra):
    import sciml.checkpoint

    (tmp_path / "rd.py").write_text(_SYSTEM)
    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "run"
    args = ["--problem", f"{tmp_path / 'rd.py'}:rd", "--model", "pinn", "--no-progress", "--out", str(out)]
    assert cli.main(parser.parse_args([*args, *extra])) == 0
    return out, figures


def test_fields_file_names_the_fields_and_a_gridded_reference_file_is_plotted_on_its_grid(
    tmp_path, monkeypatch
):
    x, t = np.meshgrid(np.linspace(0, 1, 11), np.linspace(0, 1, 9), indexing="ij")
    points = np.stack([x.ravel(), t.ravel()], 1)
    values = np.stack([np.sin(np.pi * points[:, 0]), points[:, 0] * (1 - points[:, 0])], 1)
    order = np.random.default_rng(0).permutation(len(points))  # rows in any order
    np.savez(tmp_path / "ref.npz", points=points[order], values=values[order])
    out, figures = _run(
        tmp_path, monkeypatch, "--adam", "2", "--lbfgs", "0", "--reference", str(tmp_path / "ref.npz")
    )
    with h5py.File(out / "fields.h5") as f:
        assert f.attrs["fields"] == "u,v"
        assert f["prediction"].shape == (11, 9, 2)
        np.testing.assert_allclose(f["reference"][:, :, 0], np.sin(np.pi * x))
        np.testing.assert_allclose(f["error"][()], f["prediction"][()] - f["reference"][()])
        np.testing.assert_allclose(f["axes/t"][()], np.linspace(0, 1, 9))
    titles = [a.get_title() for a in figures[0].axes if a.get_title()]
    assert any("reference" in t and "no reference" not in t for t in titles), titles
    assert any("error" in t for t in titles), titles


def test_short_run_of_a_problem_from_a_file_logs_enough_history(tmp_path, monkeypatch):
    out, _ = _run(tmp_path, monkeypatch, "--adam", "40", "--lbfgs", "0")
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) >= 10
    with h5py.File(out / "fields.h5") as f:
        assert f.attrs["fields"] == "u,v"


def test_eval_every_option_sets_the_log_interval(tmp_path, monkeypatch):
    out, _ = _run(tmp_path, monkeypatch, "--adam", "12", "--lbfgs", "0", "--eval-every", "3")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["config"]["eval_every"] == 3
    assert [h["iteration"] for h in metrics["history"]] == [3, 6, 9, 12]


def test_suite_presets_keep_their_log_interval(tmp_path):
    from sciml.pinn.presets import preset

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    out = tmp_path / "run"
    args = ["--problem", "poisson", "--model", "pinn", "--adam", "2", "--lbfgs", "0", "--no-progress"]
    assert cli.main(parser.parse_args([*args, "--out", str(out)])) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["eval_every"] == preset("poisson").config("default", "pinn").eval_every


def test_reference_grid_takes_complete_tensor_grids_only():
    x, t = np.meshgrid(np.linspace(0, 1, 5), np.linspace(0, 2, 4), indexing="ij")
    points = np.stack([x.ravel(), t.ravel()], 1)
    grid = cli.reference_grid(points[::-1], np.arange(20.0)[::-1], "file")
    np.testing.assert_array_equal(grid.values[..., 0], np.arange(20.0).reshape(5, 4))
    assert cli.reference_grid(points[:-1], np.arange(19.0), "file") is None  # a point missing
    duplicate = np.vstack([points[:-1], points[:1]])
    assert cli.reference_grid(duplicate, np.arange(20.0), "file") is None
    line = np.random.default_rng(0).uniform(0, 1, (40, 1))  # in 1-D only evenly spaced points count
    assert cli.reference_grid(line, line[:, 0], "file") is None
    assert cli.reference_grid(np.linspace(0, 1, 11)[:, None], np.ones(11), "file").values.shape == (11, 1)
    noisy = points * (1 + 1e-13 * np.random.default_rng(1).standard_normal(points.shape))  # a text round trip
    grid = cli.reference_grid(noisy, np.arange(20.0), "file")
    assert grid.values.shape == (5, 4, 1)
    np.testing.assert_allclose(grid.axes[1], np.linspace(0, 2, 4), rtol=1e-12)

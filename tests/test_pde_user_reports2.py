"""A new user's reports on the PDE / PINN part (second round): stale hard constraints, incompatible initial
and boundary data, suite presets picked by name, model boxes that miss the domain, runs without a
reference, checkpoints, field plots of 3-D problems and systems, reference errors, and small input
errors."""

import json
import math
import warnings

import matplotlib
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde import Box, Dirichlet, Disk, InitialValue, Interval, PDEProblem, Polygon
from sciml.problems.pde.examples import disk_poisson, lshape_poisson, neumann_poisson
from sciml.solvers.fd.reference import ReferenceSolution
from torch import nn

from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer
from sciml.pinn.presets import PRESETS, preset
from sciml.pinn.trainer import CheckpointMismatch

pytestmark = pytest.mark.usefixtures("one_thread")

matplotlib.use("Agg")


@pytest.fixture(scope="module", autouse=True)
def _imports_done():
    """The one-time imports (the command line's parser, torch's optimiser machinery, ~4 s) happen once
    here, so each test's time is its own."""
    from sciml.cli import build_parser

    build_parser()
    torch.optim.Adam([torch.zeros(1, requires_grad=True)])


_TINY = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8, eval_every=1000)


def _bvp(right: float) -> PDEProblem:
    """``u'' = 0`` on [0, 1], ``u(0) = 0``, ``u(1) = right``, both built into the model."""
    conditions = (Dirichlet(value=0.0, on="x-", name="left"), Dirichlet(value=right, on="x+", name="right"))
    return PDEProblem(
        name="bvp", domain=Interval(0.0, 1.0), fields=("u",), residual=lambda x, d, p: d["u_xx"],
        conditions=conditions, constraint="auto",
    )  # fmt: skip


def _net(in_features: int = 1, domain=None) -> PINN:
    box = {} if domain is None else {"lower": domain.lower, "upper": domain.upper}
    return PINN(in_features, 1, (8,), generator=torch.Generator().manual_seed(0), **box)


def _user_file(tmp_path, source: str):
    path = tmp_path / "user_problems.py"
    path.write_text("import math\nimport torch\nimport sciml.problems.pde as pde\n\n" + source)
    return path


def _capture_figure(monkeypatch) -> list:
    """``plot_fields`` / ``plot_history`` hand their figure to ``save_figure``: keep it instead."""
    import sciml.checkpoint

    figures = []
    monkeypatch.setattr(sciml.checkpoint, "save_figure", lambda fig, path, dpi=None: figures.append(fig))
    return figures


# ------------------------------------------------------------------------------ 1. stale hard constraints
def test_a_constrained_model_built_for_another_problem_is_refused():
    p0 = _bvp(1.0)
    p1 = p0.replace(conditions=_bvp(5.0).conditions)  # new data; p1.constraint is rebuilt
    with pytest.raises(
        ValueError, match=r"condition 'right'.*violates.*Constrained\(net, problem\.constraint\)"
    ):
        Trainer(p1, Constrained(_net(1, p0.domain), p0.constraint), _TINY)
    # the problem's own constraint, or an equal one rebuilt by replace(), is accepted
    Trainer(p1, Constrained(_net(1, p1.domain), p1.constraint), _TINY)
    Trainer(p1, Constrained(_net(1, p1.domain), p1.replace().constraint), _TINY)
    # a constraint that names conditions the problem does not have
    renamed = p0.replace(conditions=(Dirichlet(name="walls"),))
    with pytest.raises(ValueError, match=r"enforces conditions \['left', 'right'\] that bvp does not have"):
        Trainer(renamed, Constrained(_net(1, p0.domain), p0.constraint), _TINY)


# ------------------------------------------------------------------------------ 2. incompatible data
def test_auto_constraint_refuses_initial_data_that_disagree_with_the_dirichlet_data(heat_problem):
    rod = dict(
        name="rod", domain=Interval(0.0, 1.0).times(0.0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - 0.1 * d["u_xx"],
        conditions=(Dirichlet(value=0.0), InitialValue(value=1.0)),
    )  # fmt: skip
    with pytest.raises(
        ValueError, match=r"'initial'.*'dirichlet'.*disagree.*initial 1, boundary 0.*constraint=None"
    ):
        PDEProblem(**rod, constraint="auto")
    PDEProblem(**rod)  # both conditions in the loss: fine
    # compatible data still build: a sine that vanishes on the walls, the repo's examples
    assert heat_problem(constraint="auto").constraint.enforces == ("dirichlet", "initial")
    for make in (disk_poisson, lshape_poisson, neumann_poisson):
        assert make(constraint="auto").constraint is not None


# ------------------------------------------------------------------------------ 3. presets by name
_NAMED_ALLEN_CAHN = """
def rod():  # not the suite's Allen-Cahn: a diffusion problem with u = x that happens to share the name
    return pde.PDEProblem(name="allen-cahn", domain=pde.Interval(0.0, 1.0).times(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - 0.01 * d["u_xx"],
        conditions=(pde.Dirichlet(value=lambda x: x[:, 0]), pde.InitialValue(value=lambda x: x[:, 0])),
        exact=lambda x: x[:, 0], test_shape=(11, 5))
"""


def test_a_user_problem_named_like_a_suite_problem_gets_the_generic_preset(tmp_path, capsys):
    from sciml.cli import main

    suite = pde.get("allen-cahn")
    assert preset(suite) is PRESETS["allen-cahn"]
    assert preset("allen-cahn") is PRESETS["allen-cahn"]
    file = _user_file(tmp_path, _NAMED_ALLEN_CAHN)
    out = tmp_path / "run"
    args = ["pde", "--problem", f"{file}:rod", "--model", "pinn", "--budget", "quick", "--iterations", "1"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "generic preset" in printed and "differs from the suite problem" in printed
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["time_windows"] == 1 and not config["rad"] and config["causal_chunks"] == 0


# ------------------------------------------------------------------------------ 4. model boxes
@pytest.mark.filterwarnings("ignore:.*not wrapped in it:UserWarning")  # unwrapped models on purpose
def test_a_model_whose_box_does_not_cover_the_domain_is_refused():
    domain = Box(("x", "y"), (2.0, 2.0), (4.0, 4.0))
    problem = PDEProblem(
        name="shifted", domain=domain, fields=("u",), residual=lambda x, d, p: d["u_xx"] + d["u_yy"] + 1,
        conditions=(Dirichlet(),), constraint="auto",
    )  # fmt: skip
    for model in (PIG(2, 1, 10), PINN(2, 1, (8,)), Constrained(PINN(2, 1, (8,)), problem.constraint)):
        with pytest.raises(ValueError, match=r"box lower=\[-1, -1\], upper=\[1, 1\].*lower=problem\.domain"):
            Trainer(problem, model, _TINY)
    # boxes that cover the domain (exactly, or more), and modules without a box, are fine
    Trainer(problem, Constrained(_net(2, domain), problem.constraint), _TINY)
    with pytest.warns(UserWarning, match="not wrapped"):  # trained soft: the unused constraint is named
        Trainer(problem, PIG(2, 1, 10, lower=(0.0, 0.0), upper=(5.0, 5.0)), _TINY)
        Trainer(problem, nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)), _TINY)


# ------------------------------------------------------------------------------ 5. no reference
_HEAT = """
def heat():  # the README's heat problem: no known solution
    return pde.PDEProblem(name="my-heat", domain=pde.Interval(0.0, 1.0).times(0.0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - 0.1 * d["u_xx"],
        conditions=(pde.Dirichlet(value=0.0),
                    pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]) ** 3)))
"""


def test_cli_trains_a_problem_without_a_reference_and_resumes_it(tmp_path, capsys):
    from sciml.cli import main

    file = _user_file(tmp_path, _HEAT)
    out = tmp_path / "heat"
    args = ["pde", "--problem", f"{file}:heat", "--model", "pinn", "--budget", "quick", "--out", str(out)]
    args.append("--no-progress")
    assert main([*args, "--iterations", "2"]) == 0
    assert "relative L2 error n/a (no reference" in capsys.readouterr().out
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "metrics.json").read_text())["rel_l2"] is None
    assert main([*args, "--iterations", "2", "--resume"]) == 0
    # another budget is another run: the error names the field, and the command line adds its own way out
    assert main([*args, "--iterations", "3", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "config.lbfgs_iterations: 0 in the checkpoint, 1 now" in err and "another --out" in err


def test_plot_history_without_a_reference_shows_the_residual(monkeypatch, tmp_path):
    from sciml.pinn.cli import plot_history

    figures = _capture_figure(monkeypatch)
    history = [
        {"iteration": i, "phase": "adam", "loss": 1.0 / (i + 1), "loss_residual": 0.5 / (i + 1),
         "rel_l2": None,
         "residual_rms": 2.0 / (i + 1), "residual_max": 5.0 / (i + 1)}
        for i in (0, 10, 20)
    ]  # fmt: skip
    plot_history(tmp_path / "h.png", history, "no reference")
    right = figures[0].axes[1]
    assert "residual" in right.get_ylabel()
    np.testing.assert_allclose(right.get_lines()[0].get_ydata(), [2.0, 2.0 / 11, 2.0 / 21])


# ------------------------------------------------------------------------------ 6. resume and overwrite
def test_fit_resume_needs_an_existing_checkpoint_and_fit_does_not_overwrite_one(tmp_path):
    problem = PDEProblem(
        name="p1", domain=Interval(0.0, 1.0), fields=("u",), residual=lambda x, d, p: d["u_xx"] + 1.0,
        conditions=(Dirichlet(),),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"resume=True.*has none: build it with checkpoint=PATH"):
        Trainer(problem, _net(), _TINY).fit(progress=False, resume=True)
    path = tmp_path / "ck.pt"
    with pytest.raises(FileNotFoundError, match=rf"{path.name} does not exist.*without resume=True"):
        Trainer(problem, _net(), _TINY, checkpoint=path).fit(progress=False, resume=True)
    assert not path.exists()
    first = Trainer(problem, _net(), _TINY, checkpoint=path).fit(progress=False)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match=r"already exists.*fit\(resume=True\)"):
        Trainer(problem, _net(), _TINY, checkpoint=path).fit(progress=False)
    assert path.read_bytes() == before
    again = Trainer(problem, _net(), _TINY, checkpoint=path).fit(progress=False, resume=True)
    assert again.iterations == first.iterations == 2


# ------------------------------------------------------------------------------ 7. field plots
def _grid(axes, fn, n_fields=1):
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    return ReferenceSolution(
        tuple(axes), np.stack([fn(mesh) * (k + 1) for k in range(n_fields)], -1), "exact"
    )


def test_plot_fields_slices_3d_space_and_space_time_and_labels_each_field(monkeypatch, tmp_path):
    from sciml.pinn.cli import plot_fields

    figures = _capture_figure(monkeypatch)
    a = np.linspace(-1, 1, 5)
    # a ball: NaN outside; the slice goes through the middle, z = 0, not the edge z = 1 (all NaN)
    ball = _grid((a, a, a), lambda m: np.where((m**2).sum(-1) <= 1, 1 - (m**2).sum(-1), np.nan))
    plot_fields(tmp_path / "f.png", ball, ball.values + 0.1, ("x", "y", "z"), "ball", time=None)
    axes = figures[-1].axes
    assert "prediction at z = 0" in axes[0].get_title()
    assert np.isfinite(axes[0].get_images()[0].get_array()).any()
    # 3-D space × time: the middle of z, the last time
    ballt = _grid((a, a, a, np.linspace(0, 1, 3)), lambda m: 1 - (m[..., :3] ** 2).sum(-1))
    plot_fields(tmp_path / "f.png", ballt, ballt.values, ("x", "y", "z", "t"), "ballt", time="t")
    assert "at z = 0, t = 1" in figures[-1].axes[0].get_title()
    # two fields: one row each, labelled with the field's name
    line = _grid((np.linspace(0, 1, 11),), lambda m: np.sin(math.pi * m[..., 0]), n_fields=2)
    plot_fields(tmp_path / "f.png", line, line.values, ("x",), "system", time=None, fields=("u", "v"))
    titles = [ax.get_title() for ax in figures[-1].axes]
    assert len(figures[-1].axes) == 4 and titles[0].startswith("u:") and titles[2].startswith("v:")
    np.testing.assert_allclose(figures[-1].axes[2].get_lines()[0].get_ydata(), line.values[:, 1])


# ------------------------------------------------------------------------------ 8. reference errors
def _disk(exact) -> PDEProblem:
    return PDEProblem(
        name="e", domain=Disk(), fields=("u",), residual=lambda x, d, p: d["u_xx"] + d["u_yy"] + 4,
        conditions=(Dirichlet(),), exact=exact, test_shape=(11, 11),
    )  # fmt: skip


def test_reference_errors_name_exact_or_reference_and_the_expected_shape():
    # a numpy-returning exact solution (DeepXDE style) works
    numpy_exact = _disk(lambda x: 1 - x[:, 0].numpy() ** 2 - x[:, 1].numpy() ** 2)
    assert np.isfinite(Trainer(numpy_exact, _net(2), _TINY).evaluate())
    with pytest.raises(
        ValueError, match=r"`exact` returned shape \(120,\) for 121 points.*\(121,\) or \(121, 1\)"
    ):
        Trainer(_disk(lambda x: x[1:, 0]), _net(2), _TINY)
    with pytest.raises(ValueError, match="zero at all its .* points in the domain"):
        Trainer(_disk(lambda x: 0 * x[:, 0]), _net(2), _TINY)
    trainer = Trainer(_disk(None), _net(2), _TINY)
    with pytest.raises(ValueError, match=r"callable `reference` returned shape \(10,\) for the 121 points"):
        trainer.evaluate(reference=lambda x: x[:10, 0])
    with pytest.warns(UserWarning, match="1 of its 2 points lie outside the domain"):
        trainer.evaluate(reference=(np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([1.0, 1e6])))


# ------------------------------------------------------------------------------ 9. checkpoint mismatch
def test_a_checkpoint_of_another_run_names_the_fields_in_the_api_s_words(tmp_path):
    problem = _bvp(1.0).replace(constraint=None)
    path = tmp_path / "ck.pt"
    Trainer(problem, _net(), _TINY, checkpoint=path).fit(progress=False)
    with pytest.raises(
        CheckpointMismatch, match=r"config\.adam_iterations: 2 in the checkpoint, 4 now"
    ) as info:
        Trainer(problem, _net(), _TINY.replace(adam_iterations=4), checkpoint=path).fit(
            progress=False, resume=True
        )
    assert "--out" not in str(info.value) and "--resume" not in str(info.value)
    assert "checkpoint= path" in str(info.value)
    other = problem.replace(residual=lambda x, d, p: d["u_xx"] + 1.0)
    with pytest.raises(ValueError, match=r"differs in \['problem'\]\): problem\.residual"):
        Trainer(other, _net(), _TINY, checkpoint=path).fit(progress=False, resume=True)


# ------------------------------------------------------------------------------ 10. small input errors
def test_small_input_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="self-intersecting"):
        Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])  # a figure eight: zero signed area
    with pytest.raises(ValueError, match="enclose no area"):
        Polygon([(0, 0), (1, 0), (2, 0)])
    single = PDEProblem("one", Interval(0.0, 1.0), ("u",), lambda x, d, p: d["u_xx"], Dirichlet())
    assert [c.name for c in single.conditions] == ["dirichlet"]
    assert len(single.replace(conditions=Dirichlet(name="d2")).conditions) == 1
    with pytest.raises(TypeError, match="`conditions` must be a Condition or a tuple"):
        PDEProblem("bad", Interval(0.0, 1.0), ("u",), lambda x, d, p: d["u_xx"], 5)
    with pytest.raises(ValueError, match=r"`test_shape` needs 2 integers ≥ 2.*got \(11,\)"):
        _disk(lambda x: x[:, 0]).replace(test_shape=(11,))
    with pytest.warns(UserWarning, match="'t' is treated as a space coordinate.*time='t'"):
        PDEProblem("xt", Box(("x", "t"), (0, 0), (1, 1)), ("u",), lambda x, d, p: d["u_t"] - d["u_xx"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PDEProblem(
            "xt", Box(("x", "t"), (0, 0), (1, 1), time="t"), ("u",), lambda x, d, p: d["u_t"] - d["u_xx"]
        )

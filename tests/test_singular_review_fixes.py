"""Review fixes around singular ODEs and users' own problems: a non-finite L-BFGS start is an error, a
non-finite residual names where it is undefined, derivative conditions at points (``PointCondition``), the
prediction written without a reference, clearer messages, and labelled accretion fields."""

import math
import textwrap

import h5py
import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.cli import main
from sciml.pinn import PIG, PINN, Constrained, TrainConfig, Trainer, TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_thread")


def _lane_emden_fractional():
    """Lane–Emden n = 3/2 with ``y**1.5``: undefined where the model dips below zero (near x = 3.6)."""
    return pde.PDEProblem(
        name="le1.5-pow",
        domain=pde.Interval(0.0, 3.6),
        fields=("y",),
        residual=lambda x, d, p: x[:, 0] * d["y_xx"] + 2 * d["y_x"] + x[:, 0] * d["y"] ** 1.5,
        conditions=(
            pde.Dirichlet(value=1.0, on="x-", name="y0"),
            pde.Neumann(value=0.0, on="x-", name="dy0"),
        ),
        constraint="auto",
    )


def _lane_emden_trainer(**config):
    problem = _lane_emden_fractional()
    torch.manual_seed(0)
    net = PINN(1, 1, (32, 32), lower=(0.0,), upper=(3.6,))
    settings = dict(n_residual=256, n_condition=8, dtype="float64", eval_every=50, seed=0)
    return Trainer(problem, Constrained(net, problem.constraint), TrainConfig(**settings, **config))


def test_lbfgs_that_never_leaves_the_start_for_non_finite_trials_raises_and_says_where():
    trainer = _lane_emden_trainer(adam_iterations=0, lbfgs_iterations=30)
    start = [p.detach().clone() for p in trainer.model.parameters()]
    with pytest.raises(TrainingDiverged, match="L-BFGS made no progress from iteration 0") as info:
        trainer.fit(progress=False)
    text = str(info.value)
    assert "non-finite terms: residual" in text
    assert "although the model's outputs there are finite (e.g. at x = " in text
    assert "sign(y) * abs(y)**p" in text and "initial parameters" in text
    for p, s in zip(trainer.model.parameters(), start):  # the last finite (initial) parameters are kept
        torch.testing.assert_close(p.detach(), s, rtol=0, atol=0)


def test_lbfgs_without_progress_after_adam_warns_and_keeps_adams_parameters():
    problem = pde.PDEProblem(
        name="decay",
        domain=pde.Interval(0.0, 1.0),
        fields=("y",),
        residual=lambda x, d, p: d["y_x"] + d["y"],
        conditions=(pde.Dirichlet(value=1.0, on="x-"),),
    )
    net = PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,))
    calls, frozen = {"n": 0}, {}

    def nan_once_lbfgs_moves(x, d, p):
        calls["n"] += 1
        if calls["n"] == 6:  # the L-BFGS phase's first evaluation (after 5 Adam steps): remember
            frozen["params"] = [q.detach().clone() for q in net.parameters()]
        moved = "params" in frozen and any(
            not torch.equal(q.detach(), s) for q, s in zip(net.parameters(), frozen["params"])
        )
        return d["y_x"] + d["y"] * (float("nan") if moved else 1.0)

    config = TrainConfig(adam_iterations=5, lbfgs_iterations=20, n_residual=32, eval_every=1000, seed=0)
    trainer = Trainer(problem.replace(residual=nan_once_lbfgs_moves), net, config)
    calls["n"] = 0
    with pytest.warns(
        RuntimeWarning, match=r"L-BFGS made no progress from iteration 5.*parameters of iteration 5"
    ):
        result = trainer.fit(progress=False)
    assert result.iterations == 5 and "non-finite loss 3 times" in result.message
    for q, s in zip(net.parameters(), frozen["params"]):
        torch.testing.assert_close(q.detach(), s, rtol=0, atol=0)


def test_adam_divergence_with_finite_outputs_blames_the_equation_not_float64():
    trainer = _lane_emden_trainer(adam_iterations=300, lbfgs_iterations=0)
    with pytest.raises(TrainingDiverged, match=r"the loss became nan at iteration \d+ \(adam\)") as info:
        trainer.fit(progress=False)
    text = str(info.value)
    assert "the residual is non-finite at" in text and "of 256 points" in text
    assert "although the model's outputs there are finite" in text and "fractional power" in text
    assert "float64" not in text  # the run is float64 already


def test_a_residual_with_two_columns_for_one_equation_says_set_n_equations():
    problem = pde.PDEProblem(
        name="pair", domain=pde.Interval(0.0, 1.0), fields=("u", "v"),
        residual=lambda x, d, p: torch.stack([d["u_x"] - d["v"], d["v_x"] + d["u"]], dim=1),
        conditions=(
            pde.Dirichlet(field="u", on="x-", name="u0"),
            pde.Dirichlet(field="v", value=1.0, on="x-", name="v0"),
        ),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"set n_equations=2 in PDEProblem"):
        Trainer(problem, PINN(1, 2, (8,), lower=(0.0,), upper=(1.0,)), TrainConfig(adam_iterations=1))


def _sine_from_the_middle():
    """``y'' = −y`` on [0, π]: only ``y(π/2) = 1`` and ``y'(π/2) = 0`` pin it, to ``y = sin x``."""
    middle = [[math.pi / 2]]
    return pde.PDEProblem(
        name="sine-middle", domain=pde.Interval(0.0, math.pi), fields=("y",),
        residual=lambda x, d, p: d["y_xx"] + d["y"],
        conditions=(
            pde.Observations(points=middle, values=[1.0]),
            pde.PointCondition(points=torch.tensor(middle), operator=lambda x, d, p: d["y_x"], name="slope"),
        ),
        exact=lambda x: torch.sin(x[:, 0]), test_shape=(101,),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["pinn", "pig"])
def test_point_condition_pins_a_derivative_at_an_interior_point(kind):
    problem = _sine_from_the_middle()
    box = dict(lower=(0.0,), upper=(math.pi,))
    net = PINN(1, 1, (16, 16), **box) if kind == "pinn" else PIG(1, 1, 20, sigma=0.6, **box)
    config = TrainConfig(adam_iterations=0, lbfgs_iterations=200, n_residual=48, dtype="float64", seed=0)
    result = Trainer(problem, net, config).fit(progress=False)
    assert result.rel_l2 < 1e-3, result.message
    assert result.history[-1]["loss_slope"] < 1e-8


def test_point_condition_checks_its_points_and_operator():
    domain, op = pde.Interval(0.0, 1.0), (lambda x, d, p: d["y_x"])
    problem = dict(name="c", domain=domain, fields=("y",), residual=lambda x, d, p: d["y_x"])
    with pytest.raises(ValueError, match=r"condition 'dy': point 1 \(x = 2\) lies outside the domain"):
        pde.PDEProblem(
            **problem, conditions=(pde.PointCondition(points=[[0.5], [2.0]], operator=op, name="dy"),)
        )
    with pytest.raises(ValueError, match=r"`points` must be \(m, 1\)"):
        pde.PDEProblem(**problem, conditions=(pde.PointCondition(points=[[0.5, 0.5]], operator=op),))
    with pytest.raises(ValueError, match=r"non-empty \(m, ndim\) array, got shape \(2,\)"):
        pde.PointCondition(points=[0.5, 0.6], operator=op)
    with pytest.raises(ValueError, match="finite"):
        pde.PointCondition(points=[[float("nan")]], operator=op)
    with pytest.raises(TypeError, match="`operator` must be a function"):
        pde.PointCondition(points=[[0.5]])
    bad = pde.PDEProblem(
        **problem,
        conditions=(pde.PointCondition(points=[[0.2], [0.5]], operator=lambda x, d, p: d["y_x"][:1]),),
    )
    with pytest.raises(ValueError, match=r"`operator` returned shape \(1,\) for 2 points"):
        Trainer(bad, PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,)), TrainConfig(adam_iterations=1))
    assert pde.PointCondition is pde.conditions.PointCondition and "PointCondition" in pde.__all__


def test_point_condition_fingerprint_keys_on_every_point():
    # a checkpoint must not resume into another point set: the probe sees only the first 16 values
    points = np.linspace(0.1, 0.9, 20)[:, None]
    moved = points.copy()
    moved[-1] += 0.01

    def problem(pts):
        condition = pde.PointCondition(points=pts, operator=lambda x, d, p: d["y_x"], name="dy")
        return pde.PDEProblem(
            name="c", domain=pde.Interval(0.0, 1.0), fields=("y",), residual=lambda x, d, p: d["y_x"],
            conditions=(condition,),
        )  # fmt: skip

    assert problem(points).fingerprint() == problem(points.copy()).fingerprint()
    assert problem(points).fingerprint() != problem(moved).fingerprint()


def _user_file(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(
        textwrap.dedent(
            """
            import sciml.problems.pde as pde

            def decay():
                return pde.PDEProblem(
                    name="my-decay", domain=pde.Interval(0.0, 2.0), fields=("y",),
                    residual=lambda x, d, p: d["y_x"] + d["y"],
                    conditions=(pde.Dirichlet(value=1.0, on="x-"),), constraint="auto",
                )
            """
        )
    )
    return f"{path}:decay"


@pytest.mark.parametrize("scattered", [False, True])
def test_cli_writes_the_prediction_without_a_grid_reference(tmp_path, scattered, capsys):
    out = tmp_path / "run"
    argv = ["pde", "--problem", _user_file(tmp_path), "--model", "pinn", "--iterations", "3", "--no-progress"]
    if scattered:
        points = np.random.default_rng(0).uniform(0.0, 2.0, (40, 1))
        np.savez(tmp_path / "ref.npz", points=points, values=np.exp(-points[:, 0]))
        argv += ["--reference", str(tmp_path / "ref.npz")]
    assert main([*argv, "--out", str(out)]) == 0
    assert "fields.h5" in capsys.readouterr().out and (out / "fields.png").stat().st_size > 0
    with h5py.File(out / "fields.h5") as f:
        # (scattered reference points are written beside the grid, with the model there)
        assert sorted(f) == ["axes", "prediction"] + (["reference_points"] if scattered else [])
        assert f["axes/x"].shape == (1001,) and f["prediction"].shape == (1001, 1)
        assert np.isfinite(f["prediction"][:]).all()


def test_cli_start_that_fails_on_its_inputs_leaves_no_out_folder(tmp_path, capsys):
    out = tmp_path / "never"
    argv = [
        "pde",
        "--problem",
        _user_file(tmp_path),
        "--iterations",
        "3",
        "--reference",
        str(tmp_path / "no.npz"),
    ]
    assert main([*argv, "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not out.exists()


def test_accretion_fields_are_labelled_with_their_normalisation(tmp_path, monkeypatch):
    import sciml.pinn.cli as cli

    seen = {}
    monkeypatch.setattr(cli, "plot_fields", lambda *a, **k: seen.update(k))
    out = tmp_path / "acc"
    argv = [
        "pde",
        "--problem",
        "accretion",
        "--model",
        "pinn",
        "--adam",
        "2",
        "--lbfgs",
        "0",
        "--no-progress",
    ]
    assert main([*argv, "--out", str(out)]) == 0
    assert seen["fields"] == ("ρ/ρ_c", "v/v_c")
    with h5py.File(out / "fields.h5") as f:
        assert f.attrs["field_labels"] == "ρ/ρ_c,v/v_c"
        assert "critical" in f.attrs["normalisation"] and f.attrs["param_rho_c"] > 0
    assert pde.get("accretion").fields == ("rho", "v")  # the names the residual reads are unchanged


def test_an_overflow_of_diverged_parameters_is_not_blamed_on_the_equation():
    # y'' + y² is defined everywhere: a float32 loss that overflows because the outputs are ~1e21 is the
    # optimiser's doing, so the advice stays "lower the learning rate"
    problem = pde.PDEProblem(
        name="quadratic", domain=pde.Interval(0.0, 1.0), fields=("y",),
        residual=lambda x, d, p: d["y_xx"] + d["y"] * d["y"],
        conditions=(pde.Dirichlet(value=1.0, on="x-", name="y0"),),
    )  # fmt: skip
    net = PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,))
    trainer = Trainer(problem, net, TrainConfig(adam_iterations=5, n_residual=32, dtype="float32"))
    points = trainer.sample()
    last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.mul_(1e21)
        last.bias.mul_(1e21)
    total, terms = trainer.loss(points)
    assert not torch.isfinite(total) and torch.isfinite(net(points["residual"])).all()
    with pytest.raises(TrainingDiverged, match="Lower the learning rate") as info:
        trainer._check_finite(total, terms, 3, "adam", points=points)
    assert "undefined" not in str(info.value)


def test_a_later_time_window_whose_lbfgs_makes_no_progress_keeps_the_march_going():
    trainer = _lane_emden_trainer(adam_iterations=0, lbfgs_iterations=30)
    trainer._starts_trained = True  # as window k > 0 of a time-marching run: it starts from window k - 1
    with pytest.warns(RuntimeWarning, match="L-BFGS made no progress from iteration 0"):
        trainer.fit(progress=False)


def test_a_point_condition_refuses_a_field_its_operator_would_ignore():
    with pytest.raises(ValueError, match="a PointCondition has no `field`"):
        pde.PointCondition(points=[[0.5]], operator=lambda x, d, p: d["y_x"], field="y")

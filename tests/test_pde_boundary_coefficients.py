"""Boundary coefficients named by ``params``: a Robin (heat-transfer) coefficient or a Neumann flux that an
inverse problem fits, as ``Trainer(..., unknowns=...)`` fits a coefficient of the residual."""

import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import PINN, TrainConfig, Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

H = 2.0  # u'' = 0, u(0) = 1, h u(1) + u'(1) = 0: u = 1 - h x / (1 + h)


def _robin_problem(h_guess: float, robin: pde.Condition | None = None, params=None) -> pde.PDEProblem:
    x = np.linspace(0.1, 0.9, 9)[:, None]
    return pde.PDEProblem(
        name="robin-h", domain=pde.Interval(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: d["u_xx"], params=params or {"h": h_guess},
        conditions=(pde.Dirichlet(value=1.0, on="x-"),
                    robin or pde.Robin(alpha="h", beta=1.0, on="x+"),
                    pde.Observations(points=x, values=1 - H * x[:, 0] / (1 + H))),
    )  # fmt: skip


def _fit(problem, unknowns):
    net = PINN(1, 1, (16, 16), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(adam_iterations=600, lbfgs_iterations=100, n_residual=64, n_condition=8, lr=1e-2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(problem, net, config, unknowns=unknowns).fit(progress=False)


def test_a_robin_coefficient_named_by_params_is_fitted():
    result = _fit(_robin_problem(0.5), {"h": 0.5})
    assert result.unknowns["h"] == pytest.approx(H, rel=0.02)


def test_a_neumann_flux_named_by_params_is_fitted():
    # the same solution: u'(1) = -h / (1 + h) = -2/3, the outward flux at x = 1
    flux = pde.Neumann(value="q", on="x+")
    problem = _robin_problem(0.0, robin=flux, params={"q": -0.1})
    result = _fit(problem, {"q": -0.1})
    assert result.unknowns["q"] == pytest.approx(-H / (1 + H), rel=0.02)


def test_the_named_coefficient_reads_the_params_value_when_not_fitted():
    problem = _robin_problem(H)
    x = torch.tensor([[1.0]], dtype=torch.float64)
    exact = problem.condition_residual_of(problem.conditions[1], lambda x: 1 - H * x / (1 + H), x)
    assert float(exact.detach().abs().max()) < 1e-12
    wrong = _robin_problem(0.5)
    assert (
        float(wrong.condition_residual_of(wrong.conditions[1], lambda x: 1 - H * x / (1 + H), x).detach())
        != 0
    )


def test_a_coefficient_name_missing_from_params_or_on_another_condition_is_refused():
    with pytest.raises(ValueError, match=r"'robin' reads the coefficient\(s\) \['k'\].*params=\{'k': 1.0\}"):
        _robin_problem(0.5, robin=pde.Robin(alpha="k", on="x+"))
    with pytest.raises(TypeError, match=r"`value` must be a number or a function"):
        _robin_problem(0.5, robin=pde.Dirichlet(value="h", on="x+", name="right"))


def test_each_fields_error_is_reported_on_its_own():
    """evaluate() takes all fields together; evaluate_fields() gives each its relative L2 error."""
    problem = pde.PDEProblem(
        name="two-fields", domain=pde.Interval(0.0, 1.0), fields=("u", "v"),
        residual=lambda x, d, p: torch.stack([d["u_xx"], d["v_xx"]], -1), n_equations=2,
        conditions=(pde.Dirichlet(value=0.0, field="u", name="u-walls"),
                    pde.Dirichlet(value=0.0, field="v", name="v-walls")),
    )  # fmt: skip
    net = PINN(1, 2, (8,), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(problem, net, TrainConfig(adam_iterations=2, lbfgs_iterations=0))
    points = np.linspace(0.05, 0.95, 19)[:, None]
    values = np.column_stack([np.sin(np.pi * points[:, 0]), 1e-3 * points[:, 0]])
    errors = trainer.evaluate_fields(reference=(points, values))
    pred = trainer.predict(points)
    for k, name in enumerate(("u", "v")):
        expected = np.linalg.norm(pred[:, k] - values[:, k]) / np.linalg.norm(values[:, k])
        assert errors[name] == pytest.approx(expected, rel=1e-9)
    assert errors["v"] > 10 * trainer.evaluate()  # the small field's error hides in the joint one
    values[:, 1] = 0.0
    with pytest.warns(UserWarning, match=r"field 'v' is zero at every reference point.*RMS"):
        errors = trainer.evaluate_fields(reference=(points, values))
    assert errors["v"] == pytest.approx(np.sqrt(np.mean(trainer.predict(points)[:, 1] ** 2)), rel=1e-9)


_TWO_FIELDS = """
import math
import torch
import sciml.problems.pde as pde


def rods():  # two decoupled rods; v is a thousand times smaller than u
    exact = lambda x: torch.stack([torch.sin(math.pi * x[:, 0]), 1e-3 * x[:, 0]], -1)
    return pde.PDEProblem(name="two-rods", domain=pde.Interval(0.0, 1.0), fields=("u", "v"),
        residual=lambda x, d, p: torch.stack([d["u_xx"] + math.pi**2 * exact(x)[:, 0], d["v_xx"]], -1),
        n_equations=2, exact=exact, test_shape=(41,),
        conditions=(pde.Dirichlet(value=0.0, field="u", name="u-walls"),
                    pde.Dirichlet(value=lambda x: 1e-3 * x[:, 0], field="v", name="v-walls")))
"""


def test_each_fields_error_is_logged_returned_printed_and_plotted(tmp_path, capsys):
    """Multi-field runs log ``rel_l2_<field>`` beside ``rel_l2`` at every evaluation, return the final ones
    as ``rel_l2_fields``, and ``sciml pde`` writes them to metrics.json, the printed line and history.png."""
    import json
    import runpy

    from sciml.cli import main

    file = tmp_path / "rods.py"
    file.write_text(_TWO_FIELDS)
    problem = runpy.run_path(str(file))["rods"]()
    net = PINN(1, 2, (8,), lower=(0.0,), upper=(1.0,), generator=torch.Generator().manual_seed(0))
    config = TrainConfig(adam_iterations=20, lbfgs_iterations=0, n_residual=32, n_condition=4, eval_every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = Trainer(problem, net, config)
        result = trainer.fit(progress=False)
    assert result.rel_l2_fields == trainer.evaluate_fields()
    assert set(result.rel_l2_fields) == {"u", "v"} and result.rel_l2_fields["v"] > 10 * result.rel_l2
    logged = [h for h in result.history if h["rel_l2"] is not None]
    assert len(logged) >= 2 and all({"rel_l2_u", "rel_l2_v"} <= set(h) for h in logged)
    assert logged[-1]["rel_l2_v"] == pytest.approx(result.rel_l2_fields["v"], rel=1e-6)
    # a single field: the result names it, the history has no duplicate of rel_l2
    single = Trainer(_robin_problem(H, params={"h": H}), PINN(1, 1, (8,), lower=(0.0,), upper=(1.0,)), config)
    x = np.linspace(0, 1, 11)[:, None]
    single.set_reference((x, 1 - H * x / (1 + H)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = single.fit(progress=False)
    assert set(one.rel_l2_fields) == {"u"} and one.rel_l2_fields["u"] == pytest.approx(one.rel_l2, rel=1e-9)
    assert not any(k.startswith("rel_l2_") for h in one.history for k in h)

    out = tmp_path / "run"
    args = ["pde", "--problem", f"{file}:rods", "--model", "pinn", "--budget", "quick", "--out", str(out)]
    assert main([*args, "--iterations", "20", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["rel_l2_fields"]) == {"u", "v"}
    assert f"(u {metrics['rel_l2_fields']['u']:.4e}, v {metrics['rel_l2_fields']['v']:.4e})" in printed
    assert (out / "history.png").read_bytes()[:4] == b"\x89PNG"

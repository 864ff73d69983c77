"""A review of inverse PDE problems and their messages: a reference recipe solved with the guesses of the
unknowns, divergence caused by an unknown coefficient, ``condition_points`` for fixed points, a second
``fit()``, ``predict`` with points of the wrong width, and the fixes named by the problem's errors."""

import math
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.solvers.fd import reference_solution

from sciml.pinn import PINN, Constrained, TrainConfig, Trainer, TrainingDiverged

pytestmark = pytest.mark.usefixtures("one_thread")

D = 0.1
SMALL = dict(adam_iterations=4, lbfgs_iterations=0, n_residual=32, n_condition=8, eval_every=2)


def _sine(x):
    return torch.sin(math.pi * x[:, 0])


def _closed_form(x):
    return torch.exp(-D * math.pi**2 * x[:, 1]) * _sine(x)


def _heat(**changes):
    g = np.random.default_rng(0)
    points = np.column_stack([g.uniform(0, 1, 30), g.uniform(0, 0.1, 30)])
    values = _closed_form(torch.as_tensor(points)).numpy()
    problem = pde.PDEProblem(
        name="inv-heat", domain=pde.Interval(0.0, 1.0).times(0.0, 0.1), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"], params={"D": D},
        conditions=(pde.Dirichlet(value=0.0), pde.InitialValue(value=_sine),
                    pde.Observations(points=points, values=values)),
    )  # fmt: skip
    return problem.replace(**changes)


def _net():
    return PINN(2, 1, (8,), lower=(0.0, 0.0), upper=(1.0, 0.1), generator=torch.Generator().manual_seed(0))


def _recipe():
    return pde.NonlinearDiffusionReference(exponent=0, n_intervals=16, stride=1, n_times=3)


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ------------------------------------------------------------------ 1. a recipe solved at the guesses
def test_reference_recipe_with_unknowns_is_refused_and_the_fixes_work():
    observed = _heat(reference=_recipe(), params={"D": 0.03})
    with pytest.raises(ValueError, match=r"(?s)guesses.*D = 0\.03.*reference=.*replace\(reference=None\)"):
        Trainer(observed, _net(), TrainConfig(**SMALL), unknowns={"D": 0.03})
    # the fixes: drop the recipe (no errors), or pass the reference (a solve with the true coefficient)
    plain = _quiet(
        Trainer, observed.replace(reference=None), _net(), TrainConfig(**SMALL), unknowns={"D": 0.03}
    )
    assert plain.reference_source is None and plain.evaluate() is None
    truth = reference_solution(observed.replace(params={"D": D}))
    given = _quiet(Trainer, observed, _net(), TrainConfig(**SMALL), reference=truth, unknowns={"D": 0.03})
    assert given.evaluate() is not None and given.fit(progress=False).unknowns["D"] != 0.03
    # an exact solution given by the user is the user's truth; a forward problem keeps its recipe
    exact = _heat(exact=_closed_form, test_shape=(11, 5), params={"D": 0.03})
    assert _quiet(Trainer, exact, _net(), TrainConfig(**SMALL), unknowns={"D": 0.03}).evaluate() is not None
    assert _quiet(Trainer, _heat(reference=_recipe()), _net(), TrainConfig(**SMALL)).evaluate() is not None
    # params holding the true coefficient (a synthetic inverse problem): the recipe's reference is the truth
    synthetic = _quiet(
        Trainer, _heat(reference=_recipe()), _net(), TrainConfig(**SMALL), unknowns={"D": 0.03}
    )
    assert synthetic.evaluate() is not None


# ------------------------------------------------------------------ 2. an unknown makes the residual NaN
def _sqrt_heat():
    return _heat(residual=lambda x, d, p: d["u_t"] - torch.sqrt(p["s"]) * d["u_xx"], params={"s": -0.5})


def test_divergence_at_an_unknown_outside_the_residuals_domain_names_the_unknown():
    trainer = Trainer(_sqrt_heat(), _net(), TrainConfig(**SMALL), unknowns={"s": -0.5})
    with pytest.raises(TrainingDiverged, match=r"(?s)unknown.*s = -0\.5.*guess.*exp\(log_s\)"):
        trainer.fit(progress=False)


def test_divergence_with_a_non_finite_unknown_names_it():
    trainer = Trainer(_sqrt_heat(), _net(), TrainConfig(**SMALL), unknowns={"s": 0.5})
    with torch.no_grad():
        trainer.coefficients["s"].fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"(?s)unknown.*s = nan"):
        trainer.fit(progress=False)


# ------------------------------------------------------------------ 3. condition_points for fixed points
def test_condition_points_for_fixed_points_warns():
    config = TrainConfig(**SMALL, condition_points={"data": 10})
    with pytest.warns(UserWarning, match=r"(?s)condition_points.*'data'.*fixed points.*every iteration"):
        trainer = Trainer(_heat(), _net(), config, unknowns={"D": 0.05})
    assert trainer.sample()["data"].shape[0] == 30
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(_heat(), _net(), TrainConfig(**SMALL, condition_points={"initial": 10}), unknowns={"D": 0.05})


# ------------------------------------------------------------------ 4. a second fit
def test_a_second_fit_warns_what_carries_over_and_what_restarts():
    trainer = Trainer(_heat(), _net(), TrainConfig(**SMALL), unknowns={"D": 0.05})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = trainer.fit(progress=False)
    carried = r"second.*weights.*unknown.*restarts.*iteration.*history.*learning-rate.*adam_iterations"
    with pytest.warns(UserWarning, match=f"(?s){carried}"):
        second = trainer.fit(progress=False)
    assert second.iterations == first.iterations == 4 and second.history[0]["iteration"] == 2
    assert "again" in Trainer.fit.__doc__ and "restarts" in Trainer.fit.__doc__


# ------------------------------------------------------------------ 5. predict with the wrong width
def test_predict_with_points_of_the_wrong_width_names_the_coordinates():
    trainer = Trainer(_heat(), _net(), TrainConfig(**SMALL))
    with pytest.raises(ValueError, match=r"(?s)predict.*\(n, 2\).*\('x', 't'\).*\(3, 3\)"):
        trainer.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"(?s)predict.*\(n, 2\).*\(4,\)"):
        trainer.predict(np.zeros(4))
    assert trainer.predict([[0.5, 0.05]]).shape == (1, 1)


# ------------------------------------------------------------------ 6. a hard constraint on a predicate
def test_hard_constraint_on_a_predicate_part_names_the_fixes():
    predicate = pde.Dirichlet(value=0.0, on=lambda x: x[:, 0] < 0.5)
    with pytest.raises(ValueError, match=r"(?s)predicate.*constraint=None.*on='x-'"):
        _heat(conditions=(predicate, pde.InitialValue(value=_sine)), constraint="auto")
    with pytest.raises(ValueError, match=r"(?s)predicate.*constraint=None"):
        pde.PDEProblem(
            name="disk", domain=pde.Disk(), fields=("u",), residual=lambda x, d, p: d["u_xx"] + d["u_yy"],
            conditions=(pde.Dirichlet(value=0.0, on=lambda x: x[:, 0] < 0),), constraint="auto",
        )  # fmt: skip
    assert isinstance(Constrained(_net(), _heat(constraint="auto").constraint), Constrained)


# ------------------------------------------------------------------ 7. duplicate condition names
def test_duplicate_condition_names_name_the_fix():
    two = (pde.Neumann(value=0.0, on="x-"), pde.Neumann(value=0.0, on="x+"), pde.InitialValue(value=_sine))
    with pytest.raises(ValueError, match=r"(?s)unique.*'neumann'.*Neumann\(\.\.\., name="):
        _heat(conditions=two)

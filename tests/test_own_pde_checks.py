"""Checks of user-defined PDE problems: stale hard-constraint wrappers, unused constraints, shapes of exact
and reference values, ill-posed time problems, empty boundary predicates, bad reference data, numpy
scalars in geometries."""

import math
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch
from sciml.problems.pde.problem import value_shapes

from sciml.pinn import PINN, Constrained, TrainConfig, Trainer

_TINY = TrainConfig(adam_iterations=2, n_residual=32, n_condition=8)


def _net(domain, outputs=1):
    g = torch.Generator().manual_seed(0)
    return PINN(domain.ndim, outputs, (8,), lower=domain.lower, upper=domain.upper, generator=g)


def _heat(**changes):
    problem = pde.PDEProblem(
        name="heat", domain=pde.Interval(0.0, 1.0).times(0.0, 0.5), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - p["D"] * d["u_xx"], params={"D": 0.1},
        conditions=(pde.Dirichlet(value=0.0), pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]))),
        constraint="auto",
    )  # fmt: skip
    return problem.replace(**changes)


def _disk(**changes):
    lap = lambda x, d, p: d["u_xx"] + d["u_yy"] + 1.0  # noqa: E731
    return pde.PDEProblem(name="disk", domain=pde.Disk(), fields=("u",), residual=lap, **changes)


def _two_fields(**changes):
    return pde.PDEProblem(
        name="sys", domain=pde.Disk(), fields=("u", "v"), n_equations=2,
        residual=lambda x, d, p: torch.stack([d["u_xx"], d["v_xx"]], 1),
        conditions=(pde.Dirichlet(field="u"), pde.Dirichlet(field="v", name="dv")), **changes,
    )  # fmt: skip


# ------------------------------------------------------------------------------ 1. stale wrapper (domain)
def test_a_wrapper_built_before_replace_domain_is_refused():
    heat = _heat()
    wide = heat.replace(domain=pde.Interval(0.0, 2.0).times(0.0, 0.5))  # "auto": rebuilt for the new domain
    fix = r"Constrained\(net, problem\.constraint\)"
    for config in (_TINY, _TINY.replace(time_windows=2)):
        with pytest.raises(ValueError, match=rf"built for another domain Box.*upper=\(1\.0, 0\.5\).*{fix}"):
            Trainer(wide, Constrained(_net(wide.domain), heat.constraint), config)
    # without a constraint of its own, the old factor vanishing on half the new domain gives it away
    soft = heat.replace(domain=wide.domain, constraint=None)
    with pytest.raises(ValueError, match=rf"factor of the model's hard constraint vanishes at .*{fix}"):
        Trainer(soft, Constrained(_net(wide.domain), heat.constraint), _TINY)
    # the problem's own constraint, one rebuilt for the same domain and conditions, and time-marching pass
    Trainer(wide, Constrained(_net(wide.domain), wide.constraint), _TINY)
    Trainer(heat.replace(params={"D": 0.2}), Constrained(_net(heat.domain), heat.constraint), _TINY)
    Trainer(heat, Constrained(_net(heat.domain), heat.constraint), _TINY.replace(time_windows=2))


def test_a_wrapper_built_for_other_dirichlet_parts_is_refused():
    square = pde.Box(("x", "y"), (0.0, 0.0), (1.0, 1.0))
    both = pde.PDEProblem(
        name="sq", domain=square, fields=("u",), residual=lambda x, d, p: d["u_xx"] + d["u_yy"] + 1.0,
        conditions=(pde.Dirichlet(on=("x-", "x+")),), constraint="auto",
    )  # fmt: skip
    # the old wrapper also pins u = 0 on x+, where the new problem has a Neumann condition: its residual
    # on x- vanishes, so only the record of what it was built from tells
    left = both.replace(conditions=(pde.Dirichlet(on="x-"), pde.Neumann(on="x+")))
    with pytest.raises(ValueError, match=r"built for another conditions .*'x\+'"):
        Trainer(left, Constrained(_net(square), both.constraint), _TINY)
    Trainer(left, Constrained(_net(square), left.constraint), _TINY)


# ------------------------------------------------------------------------------ 2. auto constraint unused
def test_an_auto_constraint_with_an_unwrapped_model_warns():
    heat = _heat()
    with pytest.warns(UserWarning, match=r"constraint='auto'.*Constrained\(model, problem\.constraint\)"):
        Trainer(heat, _net(heat.domain), _TINY)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(heat, Constrained(_net(heat.domain), heat.constraint), _TINY)
        Trainer(heat.replace(constraint=None), _net(heat.domain), _TINY)


# ------------------------------------------------------------------------------ 4. shapes of exact values
def test_one_column_of_values_is_refused_for_two_fields_naming_the_argument():
    assert value_shapes(5, 1) == [(5,), (5, 1)] and value_shapes(5, 2) == [(5, 2)]
    exact = lambda x: x[:, 0]  # noqa: E731
    problem = _two_fields(exact=exact, test_shape=(11, 11))
    with pytest.raises(ValueError, match=r"`exact` returned shape \(3,\) .* \('u', 'v'\): \(3, 2\)$"):
        problem.exact_values(torch.zeros(3, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"`exact` returned shape \(121,\)"):
        Trainer(problem, _net(problem.domain, 2), _TINY)
    trainer = Trainer(_two_fields(), _net(problem.domain, 2), _TINY)
    with pytest.raises(ValueError, match=r"callable `reference` returned shape \(40401,\) .*: \(40401, 2\)$"):
        trainer.evaluate(reference=exact)
    points = np.zeros((4, 2))
    with pytest.raises(
        ValueError, match=r"`reference` has points \(4, 2\) and values \(4,\); .* values \(m, 2\) "
    ):
        trainer.evaluate(reference=(points, np.ones(4)))
    assert trainer.evaluate(reference=(points + 0.1, np.ones((4, 2)))) > 0


# ------------------------------------------------------------------------------ 5. no initial condition
def test_a_time_problem_without_an_initial_condition_warns_unless_observed():
    domain = pde.Interval(0.0, 1.0).times(0.0, 1.0)
    base = dict(name="noic", domain=domain, fields=("u",), residual=lambda x, d, p: d["u_t"] - d["u_xx"])
    problem = pde.PDEProblem(**base, conditions=(pde.Dirichlet(),))
    with pytest.warns(
        UserWarning, match=r"noic has the time coordinate 't' but no InitialValue.*InitialValue\("
    ):
        Trainer(problem, _net(domain), _TINY)
    data = pde.Observations(points=np.array([[0.5, 0.5], [0.2, 0.8]]), values=np.array([1.0, 0.5]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Trainer(problem.replace(conditions=(pde.Dirichlet(), data)), _net(domain), _TINY)
        Trainer(problem.replace(conditions=(pde.Dirichlet(), pde.InitialValue())), _net(domain), _TINY)


# ------------------------------------------------------------------------------ 6. empty predicate
def test_a_boundary_predicate_that_selects_nothing_is_refused_naming_the_condition():
    wall = pde.Dirichlet(on=lambda x: x[:, 0] > 5, name="wall")
    with pytest.raises(ValueError, match=r"condition 'wall': its predicate `on` selects no point .*fix `on`"):
        _disk(conditions=(wall,))
    top = pde.Neumann(on=lambda x: x[:, 1] > 0.99, name="top")  # a small part is fine
    assert _disk(conditions=(top,)).conditions == (top,)


# ------------------------------------------------------------------------------ 7, 8. bad reference data
def test_non_finite_reference_points_are_reported_as_such():
    trainer = Trainer(_disk(conditions=(pde.Dirichlet(),)), _net(pde.Disk()), _TINY)
    points = np.random.default_rng(0).uniform(-0.5, 0.5, (50, 2))
    points[3, 1] = np.nan
    with pytest.raises(
        ValueError, match=r"`reference` has non-finite points \(NaN or inf\) in 1 of its 50 rows"
    ):
        trainer.evaluate(reference=(points, np.ones(50)))


def test_a_reference_file_of_other_than_numbers_names_the_file_and_array(tmp_path):
    trainer = Trainer(_disk(conditions=(pde.Dirichlet(),)), _net(pde.Disk()), _TINY)
    strings = tmp_path / "strings.npz"
    np.savez(strings, points=np.array([["a", "b"]]), values=np.array(["c"]))
    with pytest.raises(
        ValueError, match=r"strings\.npz: array 'points' must hold real numbers, got dtype <U1"
    ):
        trainer.evaluate(reference=strings)
    objects = tmp_path / "objects.npz"
    np.savez(objects, points=np.zeros((3, 2)), values=np.array([1.0, None, "x"], dtype=object))
    with pytest.raises(ValueError, match=r"objects\.npz: array 'values' cannot be read as numbers"):
        trainer.evaluate(reference=objects)


# ------------------------------------------------------------------------------ 9. numpy scalars
def test_geometry_accepts_numpy_real_scalars():
    for radius in (np.float32(1.0), np.int64(1), np.float64(0.5)):
        disk = pde.Disk((0, 0), radius)
        assert isinstance(disk.radius, float) and disk.radius == float(radius)
    for bad in (True, np.float64(np.nan), -1.0, "1"):
        with pytest.raises(ValueError, match="`radius` must be a positive number"):
            pde.Disk((0, 0), bad)

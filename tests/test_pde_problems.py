"""PDE problem definitions, the Poisson discretisation, the finite-difference solver and the references."""

import dataclasses
import math
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import SOLID, PoissonGrid
from sciml.problems.pde import (
    Box,
    Dirichlet,
    HardConstraint,
    InitialValue,
    Neumann,
    NonlinearDiffusionReference,
    Observations,
    PDEProblem,
    Periodic,
    SemilinearReference,
)
from sciml.problems.pde.derivatives import AutogradDerivatives, parse_key
from sciml.solvers.fd import reference_solution, solve_nonlinear_diffusion

SUITE = [
    "helmholtz",
    "helmholtz-high",
    "klein-gordon",
    "flow-mixing",
    "nonlinear-diffusion",
    "allen-cahn",
    "burgers",
    "poisson",
    "legendre",
    "hypergeometric",
    "accretion",
    "khronon",
]


def test_registry_lists_the_suite_and_rejects_unknown_names():
    assert pde.names() == SUITE
    for name in SUITE:
        problem = pde.get(name)
        assert problem.name == name and problem.description
    with pytest.raises(ValueError, match="helmholtz, helmholtz-high, klein-gordon"):
        pde.get("helmholz")
    with pytest.raises(ValueError, match="already registered"):
        pde.register("poisson", pde.suite.poisson)


@pytest.mark.parametrize("name", [n for n in SUITE if pde.get(n).exact is not None])
def test_exact_solutions_satisfy_residual_and_conditions(name):
    problem = pde.get(name)
    g = torch.Generator().manual_seed(0)
    x = problem.domain.sample(200, g, dtype=torch.float64)
    r = problem.residual_of(problem.exact, x)
    scale = 1 + problem.residual_of(lambda z: 0 * z[:, :1], x).abs().max()  # the source's size
    assert r.shape == (200, 1)
    assert r.abs().max() < 1e-10 * scale
    for condition in problem.conditions:
        xc = condition.sample(problem.domain, 50, g, torch.float64)
        assert problem.domain.contains(xc)
        assert problem.condition_residual_of(condition, problem.exact, xc).abs().max() < 1e-12


@pytest.mark.parametrize(
    "name", [n for n in SUITE if pde.get(n).constraint and pde.get(n).constraint.enforces]
)
def test_hard_constraints_meet_the_conditions_they_claim(name):
    problem = pde.get(name)
    c = problem.constraint
    g = torch.Generator().manual_seed(0)

    # an ansatz with trainable scalars (khronon's sound horizon) at their start values
    particular, factor = c.bind(
        {k: torch.tensor(float(v), dtype=torch.float64) for k, v in c.parameters.items()}
    )

    def fn(z):  # any network output
        return particular(z) + factor(z) * torch.sin(3 * z.sum(1) + 1)

    assert c.enforces
    for condition in problem.conditions:
        if condition.name in c.enforces:
            xc = condition.sample(problem.domain, 10, g, torch.float64)
            assert problem.condition_residual_of(condition, fn, xc).abs().max() < 1e-12


def test_flow_mixing_swirl_is_finite_at_the_vortex_centre():
    problem = pde.get("flow-mixing")
    x = torch.tensor([[0.0, 0.0, 1.0], [1e-8, 0.0, 2.0]], dtype=torch.float64)
    assert torch.isfinite(problem.exact(x)).all()
    assert torch.isfinite(problem.residual_of(problem.exact, x)).all()


def test_poisson_discretize_is_the_shared_grid_system_and_converges_at_second_order():
    problem = pde.get("poisson")
    system = problem.discretize(16)
    grid = PoissonGrid((16, 16), lower=(0, 0), upper=(1, 1))
    assert abs(system.matrix() - grid.matrix()).max() == 0
    x = grid.coordinates()
    expected = grid.to_vector(problem.source(x) + grid.dirichlet_rhs(problem.exact))
    np.testing.assert_allclose(system.rhs, expected)
    u = torch.as_tensor(grid.to_field(system.exact))
    np.testing.assert_allclose(
        grid.to_vector(system.apply(u).numpy()), system.matrix() @ system.exact, atol=1e-9
    )
    for wall_distance in (0.5, 1.0):
        errors = []
        for n in (16, 32, 64):
            s = problem.discretize(n, wall_distance=wall_distance)
            u = spla.spsolve(s.matrix().tocsc(), s.rhs)
            errors.append(np.abs(u - s.exact).max())
        slopes = np.log2(np.array(errors[:-1]) / errors[1:])
        assert slopes.min() > 1.85, errors


def test_poisson_discretize_rejects_grids_of_another_problem():
    problem = pde.get("poisson")
    with pytest.raises(ValueError, match="box"):
        problem.discretize(PoissonGrid((8, 8), lower=(-1, -1), upper=(1, 1)))
    with pytest.raises(ValueError, match="walls='dirichlet'"):
        problem.discretize(PoissonGrid((8, 8), walls="neumann"))
    cells = np.zeros((8, 8), np.int8)
    cells[3, 3] = SOLID
    with pytest.raises(ValueError, match="solid"):
        problem.discretize(PoissonGrid((8, 8), cells=cells))


def test_box_sampling_and_validation():
    box = Box(("x", "t"), (-1, 0), (1, 2), time="t")
    g = torch.Generator().manual_seed(0)
    x = box.sample(100, g)
    assert x.shape == (100, 2) and box.contains(x)
    face = box.sample_face("x+", 10, g)
    assert torch.all(face[:, 0] == 1.0)
    assert torch.all(box.sample_initial(5, g)[:, 1] == 0.0)
    assert box.faces() == ("x-", "x+")
    with pytest.raises(ValueError, match="faces"):
        box.sample_face("t+", 3, g)
    with pytest.raises(ValueError, match="positive integer"):
        box.sample(0, g)
    with pytest.raises(ValueError, match="lower < upper"):
        Box(("x",), (1,), (0,))
    with pytest.raises(ValueError, match="single letters"):
        Box(("xx",), (0,), (1,))
    with pytest.raises(ValueError, match="time"):
        Box(("x",), (0,), (1,), time="t")


def test_derivative_keys_and_autograd_derivatives():
    names, fields = ("x", "y"), ("u", "v")
    assert parse_key("u_yx", names, fields) == ("field", 0, (0, 1))
    assert parse_key("y", names, fields) == ("coordinate", 1, ())
    with pytest.raises(KeyError, match="coordinates"):
        parse_key("u_z", names, fields)
    with pytest.raises(KeyError, match="unknown key"):
        parse_key("w_x", names, fields)
    x = torch.rand(20, 2, dtype=torch.float64)

    def fn(z):
        return torch.stack([torch.sin(z[:, 0]) * z[:, 1] ** 3, z[:, 0] + 0 * z[:, 1]], dim=1)

    d = AutogradDerivatives(fn, x, names, fields)
    X, Y = x[:, 0], x[:, 1]
    torch.testing.assert_close(d["u_xy"], 3 * torch.cos(X) * Y**2)
    torch.testing.assert_close(d["u_yy"], 6 * torch.sin(X) * Y)
    torch.testing.assert_close(d["u_xxy"], -3 * torch.sin(X) * Y**2)
    torch.testing.assert_close(d["v_xx"], torch.zeros_like(X))  # independent of x after one derivative
    assert d.requested == {(0, (0, 1)), (0, (1, 1)), (0, (0, 0, 1)), (1, (0, 0))}


def test_neumann_periodic_and_observation_conditions():
    box = Box(("x", "y"), (0, 0), (1, 2))
    g = torch.Generator().manual_seed(0)

    def fn(z):
        return z[:, 0] ** 2 + 3 * z[:, 1]

    # outward normal derivative: +2x on x+, -2x on x-, +3 on y+, -3 on y-
    neumann = Neumann(
        value=lambda z: torch.where(z[:, 0] == 1, 2.0, 0.0) + torch.where(z[:, 1] == 2, 3.0, 0.0)
    )
    problem = PDEProblem("t", box, ("u",), lambda x, d, p: d["u"], (neumann,), exact=fn, test_shape=(3, 3))
    xn = neumann.sample(box, 40, g, torch.float64)
    r = problem.condition_residual_of(neumann, fn, xn)
    on_low_y = xn[:, 1] == 0
    torch.testing.assert_close(r[on_low_y], torch.full_like(r[on_low_y], -3.0))
    assert r[~on_low_y].abs().max() < 1e-12

    periodic = Periodic(coordinate="x", derivatives=1)
    xp = periodic.sample(box, 16, g, torch.float64)
    assert xp.shape == (32, 2) and torch.all(xp[:16, 1] == xp[16:, 1])
    periodic_fn = lambda z: torch.sin(2 * math.pi * z[:, 0]) * z[:, 1]  # noqa: E731
    assert problem.condition_residual_of(periodic, periodic_fn, xp).abs().max() < 1e-12
    assert problem.condition_residual_of(periodic, fn, xp).abs().max() > 0.5

    with pytest.raises(ValueError, match="shape"):
        Observations(points=np.zeros((3, 2)), values=np.zeros(2))
    obs = Observations(points=np.array([[0.5, 0.5], [0.2, 1.0]]), values=np.array([1.75, 3.04]))
    d = AutogradDerivatives(fn, obs.sample(box, 1, g, torch.float64), box.names, ("u",))
    assert obs.residual(box, d.x, d, {}).abs().max() < 1e-12
    with pytest.raises(ValueError, match="inside the domain"):
        Observations(points=np.array([[2.0, 0.0]]), values=np.array([0.0])).validate(box, ("u",))


def test_problem_validation_and_replace():
    box = Box(("x",), (0,), (1,))

    def residual(x, d, p):
        return d["u_xx"] - p["a"]

    base = dict(
        name="p", domain=box, fields=("u",), residual=residual, exact=lambda x: x[:, 0], test_shape=(5,)
    )
    with pytest.raises(ValueError, match="unique"):
        PDEProblem(**base, conditions=(Dirichlet(), Dirichlet()))
    with pytest.raises(ValueError, match="unknown terms"):
        PDEProblem(**base, loss_weights={"boundary": 1.0})
    # a problem without exact solution or reference recipe is accepted (a user's own equation)
    assert PDEProblem(**{**base, "exact": None}).exact is None
    with pytest.raises(ValueError, match="fields"):
        PDEProblem(**{**base, "fields": ("u_1",)})
    with pytest.raises(ValueError, match="unknown conditions"):
        PDEProblem(**base, constraint=HardConstraint(lambda x: x, lambda x: x, enforces=("dirichlet",)))
    with pytest.raises(ValueError, match="time coordinate"):
        PDEProblem(**base, conditions=(InitialValue(value=0.0),))
    problem = PDEProblem(**base, params={"a": 1.0, "b": 2.0})
    variant = problem.replace(params={"a": 3.0})
    assert variant.params == {"a": 3.0, "b": 2.0} and problem.params["a"] == 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        problem.name = "q"


# ------------------------------------------------------------------------------ finite differences
def _heat_mode(n: int, t: np.ndarray, coefficient: float) -> tuple[np.ndarray, np.ndarray]:
    ax = np.linspace(-1, 1, n + 1)
    X, Y = np.meshgrid(ax, ax, indexing="ij")
    mode = np.cos(np.pi * X / 2) * np.cos(np.pi * Y / 2)
    exact = np.exp(-coefficient * np.pi**2 / 2 * t)[:, None, None] * mode
    return mode, exact


def test_fd_solver_matches_the_heat_equation_at_second_order():
    # exponent 0 makes the equation linear: u_t = D Δu with an exact separable solution
    t = np.array([0.0, 0.5])
    errors = []
    for n in (8, 16, 32):
        mode, exact = _heat_mode(n, t, 0.3)
        u = solve_nonlinear_diffusion(mode, (-1, -1), (1, 1), t, coefficient=0.3, exponent=0, rtol=1e-10)
        errors.append(np.abs(u - exact).max())
    slopes = np.log2(np.array(errors[:-1]) / errors[1:])
    assert slopes.min() > 1.9, errors


def test_fd_solver_converges_at_second_order_for_nonlinear_diffusion():
    # u bounded away from zero (walls held at 1): the equation stays uniformly parabolic
    bumps = pde.GaussianBumps(centers=((-0.2, 0.1), (0.3, -0.2)), widths=(0.3, 0.25), amplitudes=(1.0, 0.7))
    t = np.array([0.0, 0.2])
    sols = {}
    for n in (8, 16, 32, 64):
        ax = np.linspace(-1, 1, n + 1)
        X = np.stack(np.meshgrid(ax, ax, indexing="ij"), axis=-1)
        u0 = 1 + bumps(X) * (1 - X[..., 0] ** 2) * (1 - X[..., 1] ** 2)
        sols[n] = solve_nonlinear_diffusion(u0, (-1, -1), (1, 1), t, coefficient=0.5, rtol=1e-10)[-1]
        assert np.all(sols[n][0] == 1) and np.all(sols[n][:, -1] == 1)  # walls held
    differences = [np.abs(sols[n] - sols[2 * n][::2, ::2]).max() for n in (8, 16, 32)]
    slopes = np.log2(np.array(differences[:-1]) / differences[1:])
    assert slopes.min() > 1.85, differences


def test_fd_solver_rejects_bad_input():
    with pytest.raises(ValueError, match="intervals"):
        solve_nonlinear_diffusion(np.zeros((2, 2)), (0, 0), (1, 1), [0, 1], coefficient=1.0)
    with pytest.raises(ValueError, match="coefficient"):
        solve_nonlinear_diffusion(np.zeros((5, 5)), (0, 0), (1, 1), [0, 1], coefficient=-1.0)
    with pytest.raises(ValueError, match="exponent"):
        solve_nonlinear_diffusion(np.zeros((5, 5)), (0, 0), (1, 1), [0, 1], coefficient=1.0, exponent=0.5)
    with pytest.raises(ValueError, match="increasing"):
        solve_nonlinear_diffusion(np.zeros((5, 5)), (0, 0), (1, 1), [1, 0], coefficient=1.0)


# ------------------------------------------------------------------------------ references
def test_reference_of_an_exact_problem_is_the_exact_solution():
    problem = pde.get("klein-gordon")
    ref = reference_solution(problem)
    assert ref.shape == problem.test_shape and ref.source == "exact"
    u = problem.exact(torch.as_tensor(ref.points()))
    np.testing.assert_allclose(ref.flat_values()[:, 0], u.numpy())


def test_nonlinear_diffusion_reference_is_cached_and_tracks_the_initial_value(tmp_path):
    problem = pde.get("nonlinear-diffusion")
    small = problem.replace(reference=NonlinearDiffusionReference(n_intervals=16, n_times=3, stride=2))
    ref = reference_solution(small, directory=tmp_path)
    assert ref.shape == (9, 9, 3) and ref.source == "finite-difference"
    assert ref.axes[2].tolist() == [0.0, 0.5, 1.0]
    x0 = np.stack(np.meshgrid(ref.axes[0], ref.axes[1], indexing="ij"), axis=-1)
    interior = (slice(1, -1), slice(1, -1))
    np.testing.assert_allclose(ref.values[..., 0, 0][interior], pde.GaussianBumps()(x0)[interior])
    assert np.all(ref.values[0] == 0) and np.all(ref.values[:, -1] == 0)  # zero Dirichlet walls
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 1
    again = reference_solution(small, directory=tmp_path)
    np.testing.assert_array_equal(again.values, ref.values)
    assert sorted(tmp_path.glob("*.h5")) == files  # served from the cache
    # another initial value or coefficient is another reference
    other = small.replace(params={"D": 0.1})
    assert not np.allclose(reference_solution(other, directory=tmp_path).values, ref.values)
    bumps = pde.GaussianBumps(amplitudes=(1.0, 0.8, 0.5))
    moved = small.replace(conditions=(InitialValue(value=bumps), Dirichlet(value=0.0)))
    assert not np.allclose(reference_solution(moved, directory=tmp_path).values, ref.values)
    assert len(list(tmp_path.glob("*.h5"))) == 3
    files[0].write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="unreadable"):
        fixed = reference_solution(small, directory=tmp_path)
    np.testing.assert_array_equal(fixed.values, ref.values)


def test_nonlinear_diffusion_reference_keeps_rejected_overflowing_steps_to_itself(tmp_path):
    # at the suite's size, DOP853 tries steps whose u^(m+1) overflows and rejects them; that used to print
    # numpy's overflow / invalid-value RuntimeWarnings to the user
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        ref = reference_solution(pde.get("nonlinear-diffusion"), directory=tmp_path)
    assert np.isfinite(ref.values).all() and ref.values.max() > 0.1


def test_semilinear_reference_uses_the_spectral_solver(tmp_path):
    problem = pde.get("allen-cahn")
    small = problem.replace(reference=dataclasses.replace(problem.reference, n_points=64, dt=1e-3, n_times=3))
    ref = reference_solution(small, directory=tmp_path)
    assert ref.shape == (64, 3) and ref.source == "spectral"
    x = ref.axes[0]
    assert x[0] == -1.0 and x[-1] < 1.0  # periodic grid
    np.testing.assert_allclose(ref.values[:, 0, 0], x**2 * np.cos(np.pi * x), atol=1e-14)
    assert np.isfinite(ref.values).all() and np.abs(ref.values).max() <= 1.0 + 1e-3  # |u| ≤ 1 is invariant


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "finer", "tolerance"),
    [
        ("allen-cahn", {"n_points": 1024, "dt": 5e-5, "x_stride": 2}, 1e-4),
        ("burgers", {"n_points": 4096, "dt": 1e-5, "x_stride": 16}, 1e-4),
        ("nonlinear-diffusion", {"n_intervals": 128, "stride": 2}, 2e-3),
    ],
)
def test_suite_references_are_converged(name, finer, tolerance):
    problem = pde.get(name)
    ref = reference_solution(problem)
    other = reference_solution(problem.replace(reference=dataclasses.replace(problem.reference, **finer)))
    assert other.shape == ref.shape
    rel = np.linalg.norm(other.values - ref.values) / np.linalg.norm(ref.values)
    assert rel < tolerance, rel


def test_semilinear_recipe_rejects_a_problem_without_initial_value():
    problem = pde.get("allen-cahn")
    broken = problem.replace(conditions=(Periodic(coordinate="x"),), constraint=None)
    assert isinstance(broken.reference, SemilinearReference)
    with pytest.raises(ValueError, match="InitialValue"):
        reference_solution(broken)

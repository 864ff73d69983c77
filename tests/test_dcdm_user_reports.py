"""User reports on ``sciml.dcdm`` and the khronon helpers of ``sciml.problems.pde.singular``: a tolerance
below float64's accuracy ends as stagnation, NaN off the unknowns is ignored, invalid helper input and numpy
scalars, no torch.jit FutureWarning, one ``as_linear_operator`` default, ``sciml.dcdm.train`` is the module,
``--resume`` creates nothing, long double right-hand sides, and the exported solver checks its tolerances."""

import inspect
import math
import types
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sciml.problems.linear import SOLID, PoissonGrid
from sciml.problems.linear.generators import random_layout, random_rhs
from sciml.problems.pde.singular import (
    SoundHorizonRegularity,
    khronon,
    khronon_horizon_guess,
    khronon_horizon_jet,
)

from sciml.dcdm import DCDM, PreparedSystem

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated")


@pytest.fixture(scope="module")
def solver():
    return DCDM.load()


@pytest.fixture(scope="module")
def exported(solver, tmp_path_factory):
    path = solver.export(tmp_path_factory.mktemp("export") / "dcdm.pt")
    return torch.jit.load(str(path))


def one_thread(module, *args):
    """``module(*args)`` on one torch thread, as the Python solver runs (reductions then round alike)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return module(*args)
    finally:
        torch.set_num_threads(threads)


def laplacian(n):
    T = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(n, n))
    return sp.kronsum(T, T, format="csr")


# ---------------------------------------------------------------- 1: tolerance below float64's accuracy
def test_tolerance_below_float64_accuracy_ends_as_stagnation_soon(solver, exported):
    n = 32
    A = laplacian(n)
    b = np.random.default_rng(0).standard_normal(n * n)
    prepared = solver.prepare(A, shape=(n, n))
    result = prepared.solve(b, rtol=1e-16, maxiter=2000)  # was: all 2000 iterations, max_iterations
    h = result.residual_history / np.linalg.norm(b)
    assert result.status == "stagnation" and result.iterations < 100, (result.iterations, result.status)
    assert "loosen rtol/atol" in result.message and "round-off" in result.message
    assert h.min() < 1e-14  # it did reach float64's accuracy before stopping
    # the exported solver runs the same iteration and stops at the same place
    diag = torch.tensor(prepared.system.diag)
    couplings = [torch.tensor(c) for c in prepared.system.couplings]
    bf = torch.tensor(b.reshape(n, n))
    x, iterations, _, status = one_thread(exported, bf, diag, couplings, None, 1e-16, 0.0, 2000, None)
    assert exported.status_names[status] == "stagnation" and iterations == result.iterations
    np.testing.assert_array_equal(x.numpy().ravel(), result.x)
    # a reachable tolerance still converges (the check never fires above the round-off level)
    assert prepared.solve(b, rtol=1e-12).converged


def test_the_scripted_iteration_is_used(solver):
    """The stagnation check is TorchScript-compatible (else the solver falls back to the eager module)."""
    assert isinstance(DCDM(solver.network)._direction_module(), torch.jit.ScriptModule)


# ---------------------------------------------------------------- 2: NaN off the unknowns
def test_nan_off_the_unknowns_is_ignored_but_not_on_them(solver):
    cells = np.zeros((48, 48), np.int8)
    cells[15:30, 15:30] = SOLID
    grid = PoissonGrid((48, 48), cells=cells)
    prepared = solver.prepare(grid)
    b = np.random.default_rng(0).standard_normal((48, 48))
    b[~grid.fluid] = 123.0
    reference = prepared.solve(b, rtol=1e-8)
    b[~grid.fluid] = np.nan  # a simulation's marker for solid cells
    x0 = np.zeros_like(b)
    x0[~grid.fluid] = np.inf
    result = prepared.solve(b, x0, rtol=1e-8)
    assert result.converged and result.iterations == reference.iterations
    np.testing.assert_array_equal(result.x, reference.x)
    b[np.argwhere(grid.fluid)[0][0], np.argwhere(grid.fluid)[0][1]] = np.nan
    with pytest.raises(ValueError, match="`b` must be finite"):
        prepared.solve(b)


# ---------------------------------------------------------------- 3, 4: khronon helpers and numpy scalars
@pytest.mark.parametrize("xs", [0.9, 1.0, -2.0, float("nan"), float("inf")])
def test_khronon_horizon_jet_refuses_xs_outside_the_killing_horizon(xs):
    with pytest.raises(ValueError, match=r"`xs`.*> 1"):
        khronon_horizon_jet(xs, 2.0)


@pytest.mark.parametrize("c", [1.0, 0.5, -3.0, float("nan"), float("inf"), True])
def test_khronon_helpers_refuse_a_speed_not_above_one(c):
    with pytest.raises(ValueError, match=r"`c`.*finite number > 1"):
        khronon_horizon_jet(1.1, c)
    with pytest.raises(ValueError, match=r"`c`.*finite number > 1"):
        khronon_horizon_guess(c)


def test_khronon_accepts_numpy_scalars():
    problem = khronon(speed=np.float32(2.0))
    assert problem.params["c"] == 2.0
    assert khronon(speed=np.float64(3.0)).params["c"] == 3.0
    assert khronon_horizon_guess(np.float32(2.0)) == pytest.approx(khronon_horizon_guess(2.0), abs=1e-6)
    jet = khronon_horizon_jet(np.float64(1.15), np.float64(2.0))
    assert all(isinstance(v, float) or np.isrealobj(v) for v in jet)
    points = SoundHorizonRegularity(n_grid=np.int64(101)).sample(problem.domain, 0, None, torch.float64)
    assert len(points) == 101
    with pytest.raises(ValueError, match="speed"):
        khronon(speed=True)


# ---------------------------------------------------------------- 5: torch.jit FutureWarning
def test_no_torch_jit_deprecation_warning_from_solve_or_export(solver, tmp_path):
    fresh = DCDM(solver.network)  # nothing scripted yet
    grid = random_layout((24, 24), seed=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fresh.solve(grid, random_rhs(grid, seed=0))
        fresh.export(tmp_path / "dcdm.pt")
        warnings.warn("a user's own FutureWarning", FutureWarning, stacklevel=1)  # not silenced globally
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "torch.jit" in m], messages
    assert "a user's own FutureWarning" in messages


# ---------------------------------------------------------------- 6: as_linear_operator default
def test_as_linear_operator_defaults_to_the_preconditioner_on_both_classes(solver):
    d_default = inspect.signature(DCDM.as_linear_operator).parameters["mode"].default
    p_default = inspect.signature(PreparedSystem.as_linear_operator).parameters["mode"].default
    assert d_default == p_default
    grid = random_layout((32, 32), seed=4)
    prepared = solver.prepare(grid)
    v = grid.to_vector(random_rhs(grid, seed=1))
    np.testing.assert_array_equal(solver.as_linear_operator(grid) @ v, prepared.precondition(v))
    np.testing.assert_array_equal(prepared.as_linear_operator() @ v, prepared.precondition(v))
    A = grid.matrix()
    inverse = solver.as_linear_operator(grid, mode="solve")
    assert np.linalg.norm(A @ (inverse @ v) - v) <= 1e-6 * np.linalg.norm(v)
    inverse = prepared.as_linear_operator(rtol=1e-9)  # rtol: a solve
    assert np.linalg.norm(A @ (inverse @ v) - v) <= 1e-9 * np.linalg.norm(v)
    with pytest.raises(ValueError, match="mode='solve' only"):
        prepared.as_linear_operator(mode="precondition", rtol=1e-8)


# ---------------------------------------------------------------- 7: sciml.dcdm.train is the module
def test_sciml_dcdm_train_is_the_module():
    import sciml.dcdm.train as tr
    from sciml.dcdm import train

    assert isinstance(tr, types.ModuleType) and tr.TrainConfig is not None
    assert train is tr and callable(tr.train)


# ---------------------------------------------------------------- 8: --resume without a checkpoint
def test_resume_without_a_checkpoint_creates_nothing(tmp_path, capsys):
    from sciml import cli
    from sciml.dcdm.train import TrainConfig
    from sciml.dcdm.train import train as train_function

    out = tmp_path / "runB"
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train_function(TrainConfig(size=16, coarsest=4, steps=2), out, resume=True, progress=False)
    assert not out.exists()
    try:
        rc = cli.main(["dcdm", "train", "--out", str(out), "--resume"])
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2 and "no checkpoint" in capsys.readouterr().err
    assert not out.exists()


# ---------------------------------------------------------------- 9: long double and underflowing b
@pytest.mark.skipif(np.finfo(np.longdouble).eps == np.finfo(np.float64).eps, reason="long double is float64")
def test_long_double_right_hand_side(solver):
    grid = random_layout((32, 32), seed=3)
    prepared = solver.prepare(grid)
    b = random_rhs(grid, seed=0)
    result = prepared.solve(b.astype(np.longdouble), rtol=1e-8)
    reference = prepared.solve(b, rtol=1e-8)
    assert result.converged and result.x.dtype == np.longdouble
    assert result.iterations == reference.iterations
    np.testing.assert_array_equal(result.x.astype(np.float64), reference.x)


def test_underflowing_b_is_refused_not_called_zero(solver):
    grid = random_layout((32, 32), seed=3)
    prepared = solver.prepare(grid)
    b = random_rhs(grid, seed=0)
    with pytest.raises(ValueError, match="underflows"):
        prepared.solve(b * 1e-300)
    zero = prepared.solve(np.zeros_like(b))
    assert zero.converged and zero.iterations == 0 and not zero.x.any()


# ---------------------------------------------------------------- 10: the exported solver checks tolerances
@pytest.mark.parametrize(
    "rtol,atol,maxiter,match",
    [
        (0.0, 0.0, 50, "both 0"),
        (-1.0, 0.0, 50, "`rtol` must be a finite number >= 0"),
        (math.nan, 0.0, 50, "`rtol` must be a finite number >= 0"),
        (1e-8, -1.0, 50, "`atol` must be a finite number >= 0"),
        (1e-8, math.inf, 50, "`atol` must be a finite number >= 0"),
        (1e-8, 0.0, -1, "`maxiter` must be a non-negative integer"),
    ],
)
def test_exported_solver_checks_its_tolerances(solver, exported, rtol, atol, maxiter, match):
    grid = random_layout((24, 24), seed=2)
    stencil = solver.prepare(grid).system
    diag = torch.tensor(stencil.diag)
    couplings = [torch.tensor(c) for c in stencil.couplings]
    b = torch.tensor(random_rhs(grid, seed=0))
    with pytest.raises(torch.jit.Error, match=match):  # TorchScript's wrapper of the ValueError
        exported(b, diag, couplings, None, rtol, atol, maxiter, None)
    # valid tolerances: the same iterate as the Python solver
    x, iterations, _, status = one_thread(exported, b, diag, couplings, None, 1e-8, 0.0, 500, None)
    result = solver.solve(grid, b.numpy(), rtol=1e-8)
    assert exported.status_names[status] == "converged" and iterations == result.iterations
    np.testing.assert_array_equal(x.numpy(), result.x)


def test_exported_residual_history_is_float64(solver, exported):
    # TorchScript built the history with torch.tensor(list, dtype=float64), which passes through float32:
    # the exported solver's history was rounded to ~1e-8 relative though documented as float64
    grid = random_layout((24, 24), seed=2)
    stencil = solver.prepare(grid).system
    diag = torch.tensor(stencil.diag)
    couplings = [torch.tensor(c) for c in stencil.couplings]
    b = torch.tensor(random_rhs(grid, seed=0))
    _, _, history, _ = one_thread(exported, b, diag, couplings, None, 1e-8, 0.0, 500, None)
    result = solver.solve(grid, b.numpy(), rtol=1e-8)
    assert history.dtype == torch.float64
    np.testing.assert_array_equal(history.numpy(), result.residual_history)

"""The shared pieces: grid Poisson stencil, atomic files, reference cache, CLI plumbing."""

import json

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import DIRICHLET, SOLID, PoissonGrid
from sciml.solvers.cache import cached_arrays

from sciml.checkpoint import check_writable_dir, load_checkpoint, save_checkpoint, write_json


@pytest.mark.parametrize("shape", [(9,), (7, 5), (4, 5, 6)])
def test_grid_matrix_and_operator_agree(shape):
    rng = np.random.default_rng(0)
    cells = rng.choice([0, 0, 0, SOLID, DIRICHLET], size=shape).astype(np.int8)
    walls = (("dirichlet", "neumann"),) + (("neumann", "dirichlet"),) * (len(shape) - 1)
    grid = PoissonGrid(shape, cells=cells, walls=walls)
    A = grid.matrix()
    u = rng.standard_normal((3, *shape))
    matrix_free = grid.to_vector(grid.apply(torch.tensor(u))).numpy()
    np.testing.assert_allclose(matrix_free, (A @ grid.to_vector(u).T).T, rtol=1e-12, atol=1e-10)
    assert abs(A - A.T).max() == 0
    np.testing.assert_allclose(grid.to_vector(grid.to_field(grid.to_vector(u))), grid.to_vector(u))


@pytest.mark.parametrize("wall_distance", [0.5, 1.0])
def test_grid_poisson_converges_at_second_order(wall_distance):
    def exact(x):
        return np.sin(np.pi * x[..., 0]) * np.cos(2 * x[..., 1]) + x[..., 0] ** 2

    def source(x):  # -Δ exact
        return (np.pi**2 + 4) * np.sin(np.pi * x[..., 0]) * np.cos(2 * x[..., 1]) - 2

    errors = []
    for n in (16, 32, 64):
        grid = PoissonGrid((n, n), lower=(-1, -1), upper=(1, 1), wall_distance=wall_distance)
        x = grid.coordinates()
        u = spla.spsolve(grid.matrix().tocsc(), grid.to_vector(source(x) + grid.dirichlet_rhs(exact)))
        errors.append(np.abs(u - grid.to_vector(exact(x))).max())
    slopes = np.log2(np.array(errors[:-1]) / errors[1:])
    assert slopes.min() > 1.85, errors


def test_grid_interior_dirichlet_cells_carry_their_values():
    n = 24
    cells = np.zeros((n, n), np.int8)
    cells[:, :3] = DIRICHLET  # a strip with prescribed values: u = x + 2y is harmonic

    def exact(x):
        return x[..., 0] + 2 * x[..., 1]

    grid = PoissonGrid((n, n), cells=cells, walls="dirichlet")
    u = spla.spsolve(grid.matrix().tocsc(), grid.to_vector(grid.dirichlet_rhs(exact)))
    # linear functions are reproduced exactly by the stencil away from walls at distance 1/2;
    # the ghost-value walls are exact for linear data too
    np.testing.assert_allclose(u, grid.to_vector(exact(grid.coordinates())), atol=1e-10)


def test_grid_reports_singular_components():
    n = 16
    assert PoissonGrid((n, n), walls="neumann").singular_components() == 1
    cells = np.zeros((n, n), np.int8)
    cells[:, n // 2] = SOLID
    cells[0, :2] = DIRICHLET
    assert PoissonGrid((n, n), cells=cells, walls="neumann").singular_components() == 1
    assert PoissonGrid((n, n), cells=cells).singular_components() == 0


def test_grid_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        PoissonGrid((0, 4))
    with pytest.raises(ValueError, match="walls"):
        PoissonGrid((4, 4), walls="periodic")
    with pytest.raises(ValueError, match="cells"):
        PoissonGrid((4, 4), cells=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="grid shape"):
        PoissonGrid((4, 4)).apply(torch.zeros(4, 5))


def test_checkpoint_roundtrip_and_corrupt_file(tmp_path):
    path = tmp_path / "ck.pt"
    save_checkpoint({"w": torch.arange(3.0), "epoch": 4}, path)
    state = load_checkpoint(path)
    assert state["epoch"] == 4 and torch.equal(state["w"], torch.arange(3.0))
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(path)
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left behind


def test_write_json_replaces_non_finite(tmp_path):
    path = write_json(
        tmp_path / "m.json", {"a": float("nan"), "b": [1.0, float("inf")], "c": torch.tensor(2.0)}
    )
    assert json.loads(path.read_text()) == {"a": None, "b": [1.0, None], "c": 2.0}


def test_check_writable_dir_names_the_argument(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="--out"):
        check_writable_dir(blocker / "sub")


def test_reference_cache_recomputes_stale_or_corrupt(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"y": np.arange(4.0)}

    a = cached_arrays("ref", {"mu": 1.0}, compute, directory=tmp_path)
    b = cached_arrays("ref", {"mu": 1.0}, compute, directory=tmp_path)
    assert len(calls) == 1 and np.array_equal(a["y"], b["y"])
    cached_arrays("ref", {"mu": 2.0}, compute, directory=tmp_path)
    assert len(calls) == 2
    for path in tmp_path.glob("ref-*.h5"):
        path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        c = cached_arrays("ref", {"mu": 1.0}, compute, directory=tmp_path)
    assert len(calls) == 3 and np.array_equal(c["y"], a["y"])
    assert cached_arrays("ref", {"mu": 1.0}, compute, directory=tmp_path) and len(calls) == 3

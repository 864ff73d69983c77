"""Fixes from a review of ``sciml.relax`` and the relaxation solvers: symmetry checked on the values, failed
solves never look cheap (tuner, fine grid, CLI's best fixed ω), clear errors and messages."""

import argparse
import json
import warnings

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sciml.problems.linear import PoissonGrid
from sciml.problems.linear.sequences import LinearInstance
from sciml.solvers.linear import cg, red_black_sor, sor

from sciml.relax import PriorTuner, cli
from sciml.relax.prior import SpectralPrior
from sciml.relax.sequence import grid_table


def _convdiff(N: int, pe: float) -> sp.csr_array:
    """``−Δu + pe · u_x`` by central differences on an ``N × N`` grid (nonsymmetric for ``pe > 0``)."""
    h = 1.0 / (N + 1)
    T = sp.diags([-np.ones(N - 1), 2 * np.ones(N), -np.ones(N - 1)], [-1, 0, 1]) / h**2
    C = sp.diags([-np.ones(N - 1), np.ones(N - 1)], [-1, 1]) / (2 * h)
    eye = sp.eye(N)
    return sp.csr_array(sp.kron(eye, T) + sp.kron(T, eye) + pe * sp.kron(eye, C))


def _neumann(N: int) -> sp.csr_array:
    L1 = sp.diags([-np.ones(N - 1), np.r_[1, 2 * np.ones(N - 2), 1], -np.ones(N - 1)], [-1, 0, 1])
    return sp.csr_array(sp.kronsum(L1, L1))


def _cli(*argv) -> int:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return cli.main(parser.parse_args([*map(str, argv), "--no-progress"]))


def _write_folder(path, systems):
    path.mkdir()
    for t, (A, b) in enumerate(systems, 1):
        sp.save_npz(path / f"A{t}.npz", sp.csr_matrix(A))
        np.save(path / f"A{t}.rhs.npy", b)


def test_symmetry_is_judged_on_the_values_not_only_the_sparsity_pattern():
    """A nonsymmetric matrix after a symmetric one of the same pattern gets the estimate of its symmetric
    part (it got Lanczos on A itself, and a negative δ̂ clipped to 1e-14)."""
    sym, nonsym = _convdiff(10, 0.0), _convdiff(10, 40.0)
    prior = SpectralPrior()
    prior.estimate(sym)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        delta = prior.estimate(nonsym)
    assert delta == pytest.approx(SpectralPrior().estimate(nonsym), rel=0.05)


def test_prior_tuner_learns_a_diverged_solve_as_expensive_and_still_solves_the_system():
    A = _convdiff(10, 40.0)  # Young's ω of the symmetric part (1.56) diverges here, ω = 1 converges
    b = np.random.default_rng(0).standard_normal(100)
    tuner = PriorTuner("sor")
    with pytest.warns(RuntimeWarning, match="not symmetric"):
        out = tuner.solve(A, b, rtol=1e-8, maxiter=2000)
    assert out.fallback and out.result.converged and "failed" in out.result.message
    assert np.linalg.norm(b - A @ out.result.x) <= 1e-8 * np.linalg.norm(b)
    zero = int(np.flatnonzero(tuner.offsets == 0.0)[0])
    assert tuner.stats[zero, 2] >= np.log(2000)  # learned as (at least) maxiter, not as its 24 iterations
    assert tuner.direction == -1  # the next exploration tries a smaller ω


def test_grid_table_never_records_a_diverged_omega_as_cheap_and_stays_in_range():
    A = _convdiff(10, 40.0)
    b = np.random.default_rng(0).standard_normal(100)
    systems = [LinearInstance(A, b, 0.0)]
    grid, table = grid_table(
        systems, "sor", np.array([1.2]), rtol=1e-8, maxiter=500, step=0.1, reference=[65]
    )
    assert grid.max() <= 1.995
    assert table[0, grid.tolist().index(1.6)] == 500  # diverges at 24 iterations: the worst, not the best
    # a coarse step whose range ends past 1.995 keeps its points below it (2.029 crashed the solver)
    spd = [LinearInstance(sp.csr_array(_convdiff(4, 0.0)), np.ones(16), 0.0)]
    grid, _ = grid_table(spd, "sor", np.array([1.729045]), rtol=1e-8, maxiter=500, step=0.1, reference=[20])
    assert grid.min() >= 0.5 and grid.max() <= 1.995 and grid.max() == pytest.approx(1.929045)


def test_cli_best_fixed_total_is_the_true_cost_of_its_omega(tmp_path, capsys):
    """The capped grid under-counted the chosen ω (a lower bound): the printed total is now its true one."""
    rng = np.random.default_rng(0)
    K = _convdiff(8, 0.0) * (1 / 81)  # spacing 1: 4 on the diagonal
    systems = [(sp.csr_array(K + c * sp.eye(64)), rng.standard_normal(64)) for c in (0.0, 0.0, 3.0, 3.0)]
    _write_folder(tmp_path / "seq", systems)
    assert _cli(tmp_path / "seq", "--out", tmp_path / "o", "--grid-step", "0.05") == 0
    payload = json.loads((tmp_path / "o" / "relax.json").read_text())
    w = payload["baselines"]["best_fixed_omega"]
    true = [sor(A, b, w, rtol=1e-8).iterations for A, b in systems]
    assert payload["totals"]["best-fixed"] == sum(true)
    key = next(k for k in payload["baselines"]["per_system"] if k.startswith("best-fixed"))
    assert payload["baselines"]["per_system"][key] == true
    capsys.readouterr()


def test_cli_rejects_csr_indices_out_of_range_naming_the_group(tmp_path):
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        g = f.create_group("s1")
        g["data"], g["indices"] = np.array([2.0, -1.0, 2.0, 2.0]), np.array([0, 7, 1, 2])
        g["indptr"], g["shape"], g["b"] = np.array([0, 2, 3, 4]), np.array([3, 3]), np.ones(3)
    with pytest.raises(ValueError, match="group 's1' is not a valid CSR matrix"):
        cli.load_sequence(tmp_path / "bad.h5")
    (tmp_path / "seq").mkdir()
    np.savez(
        tmp_path / "seq" / "A1.npz",
        format=b"csr",
        shape=np.array([3, 3]),
        data=np.array([2.0, -1.0, 2.0, 2.0]),
        indices=np.array([0, 7, 1, 2]),
        indptr=np.array([0, 2, 3, 4]),
    )
    np.save(tmp_path / "seq" / "A1.rhs.npy", np.ones(3))
    with pytest.raises(ValueError, match="cannot read A1.npz"):
        cli.load_sequence(tmp_path / "seq")


def test_cli_says_when_young_is_undefined_and_leaves_no_folder_after_a_failed_load(tmp_path, capsys):
    rng = np.random.default_rng(1)
    L = _neumann(6)
    systems = [(L, (b := rng.standard_normal(36)) - b.mean()) for _ in range(2)]
    _write_folder(tmp_path / "seq", systems)
    with pytest.raises(FileNotFoundError):
        _cli(tmp_path / "missing", "--out", tmp_path / "never")
    assert not (tmp_path / "never").exists()
    assert _cli(tmp_path / "seq", "--out", tmp_path / "o", "--grid-step", "0.05") == 0
    assert "Young's formula is undefined on 2 of 2 systems" in capsys.readouterr().out


def test_unreachable_tolerances_end_as_stagnation_with_the_reason():
    grid = PoissonGrid((32, 32))
    b = torch.tensor(np.random.default_rng(0).standard_normal((32, 32)), dtype=torch.float32)
    res = red_black_sor(grid, b, 1.82, rtol=1e-8, maxiter=3000)
    assert res.status == "stagnation" and res.iterations < 1000
    assert "float32" in res.message and "rtol" in res.message
    A = sp.csr_array(_convdiff(12, 0.0))
    res = sor(A, np.random.default_rng(0).standard_normal(144), 1.7, rtol=1e-17, maxiter=3000)
    assert res.status == "stagnation" and res.iterations < 1000 and "loosen rtol" in res.message


def test_inconsistent_singular_system_is_told_to_make_b_consistent():
    L = _neumann(8)
    b = np.random.default_rng(0).standard_normal(64)  # nonzero mean: no solution
    res = sor(L, b, 1.5, rtol=1e-8, maxiter=2000)
    assert res.status == "max_iterations" and "consistent" in res.message and "mean" in res.message
    # a run that still makes progress keeps the old advice
    res = sor(L, b - b.mean(), 1.0, rtol=1e-12, maxiter=20)
    assert "raise maxiter" in res.message


def test_indefinite_matrix_is_called_not_positive_definite():
    H = sp.csr_array(sp.diags([-np.ones(49), 2 * np.ones(50), -np.ones(49)], [-1, 0, 1]) - 0.5 * sp.eye(50))
    with pytest.warns(RuntimeWarning, match="not positive definite"):
        SpectralPrior().estimate(H)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_np_matrix_works_in_cg_and_empty_system_is_a_clear_error():
    A = _convdiff(5, 0.0)
    b = np.random.default_rng(0).standard_normal(25)
    res = cg(np.asmatrix(A.toarray()), b, rtol=1e-10)
    assert res.converged and res.x.shape == (25,)
    with pytest.raises(ValueError, match="0×0"):
        PriorTuner("sor").solve(sp.csr_array((0, 0)), np.zeros(0))


def test_sor_tuner_warns_once_that_its_prior_does_not_hold_for_a_nonsymmetric_matrix():
    b = np.random.default_rng(0).standard_normal(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a symmetric matrix: no warning
        PriorTuner("sor").solve(_convdiff(10, 0.0), b, rtol=1e-8)
    tuner = PriorTuner("sor")
    with pytest.warns(RuntimeWarning, match="`A` is not symmetric: the prior is Young's ω of its symmetric"):
        tuner.solve(_convdiff(10, 5.0), b, rtol=1e-8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per tuner
        tuner.solve(_convdiff(10, 5.0), b, rtol=1e-8)

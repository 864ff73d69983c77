"""DCDM: stencil fields, network, loss, Lanczos data, the iteration, scipy/TorchScript embedding, training."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse.linalg as spla
import torch
from sciml.problems.linear import DIRICHLET, SOLID, PoissonGrid
from sciml.problems.linear.generators import random_layout, random_rhs, smooth_rhs
from sciml.solvers.linear import cg

from sciml.dcdm import (
    DCDM,
    MultigridNet,
    PaperNet,
    apply_stencil,
    build_network,
    coarsen,
    lanczos,
    lanczos_rhs,
    ritz_vectors,
    scale_invariant_loss,
    stencil_fields,
)
from sciml.dcdm.stencil import prolong, restrict
from sciml.dcdm.train import TrainConfig, train

UNSEEN = 123_456  # layout seed far from the training seeds ([0, i]) and the validation seeds (90000+)
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def solver():
    return DCDM.load()


@pytest.mark.parametrize("shape", [(11, 9), (7, 6, 5)])
def test_stencil_fields_are_the_grid_operator_and_coarsen_is_galerkin(shape):
    rng = np.random.default_rng(0)
    cells = rng.choice([0, 0, 0, 0, SOLID, DIRICHLET], size=shape).astype(np.int8)
    walls = (("dirichlet", "neumann"),) + (("neumann", "dirichlet"),) * (len(shape) - 1)
    grid = PoissonGrid(shape, cells=cells, walls=walls)
    diag, couplings = stencil_fields(grid)
    u = torch.randn(3, *shape, dtype=torch.float64)
    fluid = torch.as_tensor(grid.fluid, dtype=torch.float64)
    torch.testing.assert_close(
        apply_stencil(u * fluid, diag, couplings), grid.apply(u), rtol=1e-12, atol=1e-9
    )
    # Pᵀ A P with piecewise-constant P over 2^d blocks (odd sizes padded)
    coarse_diag, coarse_couplings = coarsen(diag, couplings)
    v = torch.randn(2, *coarse_diag.shape[1:], dtype=torch.float64)
    galerkin = restrict(apply_stencil(prolong(v, list(shape)), diag, couplings), len(shape))
    torch.testing.assert_close(
        apply_stencil(v, coarse_diag, coarse_couplings), galerkin, rtol=1e-12, atol=1e-8
    )


@pytest.mark.parametrize("cycle", ["V", "W"])
def test_multigrid_net_is_linear_symmetric_masked_and_works_on_odd_sizes(cycle):
    net = MultigridNet(cycle=cycle).double()
    with torch.no_grad():  # perturb away from the symmetric initial weights: symmetry is structural
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    grid = random_layout((37, 23), seed=UNSEEN)
    diag, couplings = stencil_fields(grid)
    fluid = torch.as_tensor(grid.fluid, dtype=torch.float64)
    r1, r2 = torch.randn(2, 1, 37, 23, dtype=torch.float64) * fluid
    context = net.setup(diag, couplings)

    def f(r):
        return net.precondition(r, context)

    torch.testing.assert_close(f(2 * r1 - 3 * r2), 2 * f(r1) - 3 * f(r2), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close((f(r1) * r2).sum(), (r1 * f(r2)).sum(), rtol=1e-10, atol=0)
    assert (f(r1)[0][~torch.as_tensor(grid.fluid)] == 0).all()
    scripted = torch.jit.script(net)
    torch.testing.assert_close(scripted.precondition(r1, context), f(r1))


def test_untrained_multigrid_net_is_a_good_preconditioner_and_paper_net_runs():
    """Initial weights = a classical W(1,1)-cycle with damped Jacobi: a preconditioner whose DCDM
    iteration count is already far below CG's; the paper's network is a valid drop-in."""
    grid = random_layout((48, 48), seed=UNSEEN)
    b = random_rhs(grid, seed=0)
    classical = DCDM(MultigridNet(cycle="W"))
    result = classical.solve(grid, b, rtol=1e-6)
    reference = cg(grid.matrix(), grid.to_vector(b), rtol=1e-6)
    assert result.converged and result.iterations < 0.15 * reference.iterations
    paper = PaperNet(channels=4, blocks=1)
    q = paper(torch.randn(2, 48, 48), *[t.float() for t in [stencil_fields(grid)[0]]], [])
    assert q.shape == (2, 48, 48) and (q[:, ~torch.as_tensor(grid.fluid)] == 0).all()
    assert build_network(paper.config()).config() == paper.config()
    with pytest.raises(ValueError, match="architecture"):
        build_network({"architecture": "transformer"})
    with pytest.raises(ValueError, match="configuration"):
        build_network({"architecture": "multigrid", "ndim": 2, "colour": 1})


def test_loss_is_scale_invariant_zero_at_the_solution_and_has_exact_gradients():
    grid = random_layout((12, 12), seed=UNSEEN)
    diag, couplings = stencil_fields(grid)
    b = torch.as_tensor(random_rhs(grid, seed=1))[None]
    q = torch.randn_like(b) * torch.as_tensor(grid.fluid)
    loss = scale_invariant_loss(q, b, diag, couplings)
    torch.testing.assert_close(scale_invariant_loss(-7.5 * q, b, diag, couplings), loss)
    exact = grid.to_field(torch.as_tensor(spla.spsolve(grid.matrix().tocsc(), grid.to_vector(b[0].numpy()))))
    assert scale_invariant_loss(3 * exact[None], b, diag, couplings) < 1e-20
    q.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: scale_invariant_loss(q, b, diag, couplings), (q,))
    with pytest.raises(ValueError, match="shape"):
        scale_invariant_loss(q[..., :-1], b, diag, couplings)


def test_lanczos_ritz_pairs_and_low_frequency_bias():
    grid = random_layout((16, 16), seed=UNSEEN)
    A = grid.matrix()
    alpha, beta, V = lanczos(lambda v: A @ v, np.ones(A.shape[0]), 60)
    np.testing.assert_allclose(V.T @ V, np.eye(V.shape[1]), atol=1e-10)
    values, vectors = ritz_vectors(A, 80, seed=0)
    exact = np.linalg.eigvalsh(A.toarray())
    np.testing.assert_allclose(values[[0, -1]], exact[[0, -1]], rtol=1e-8)  # extreme Ritz values converge
    np.testing.assert_allclose(A @ vectors[:, 0], values[0] * vectors[:, 0], atol=1e-6 * values[-1])
    biased = lanczos_rhs(grid, 64, steps=80, low_boost=9.0, seed=1)
    flat = lanczos_rhs(grid, 64, steps=80, low_boost=1.0, seed=1)
    np.testing.assert_allclose(np.linalg.norm(biased.reshape(64, -1), axis=1), 1.0)

    def rayleigh(bs):
        return np.mean([grid.to_vector(b) @ A @ grid.to_vector(b) for b in bs])

    assert rayleigh(biased) < 0.5 * rayleigh(flat)
    with pytest.raises(ValueError, match="v0"):
        lanczos(lambda v: v, np.zeros(4), 3)


def test_shipped_model_beats_cg_on_an_unseen_layout(solver):
    grid = random_layout((64, 64), seed=UNSEEN)
    for b in (random_rhs(grid, seed=2), smooth_rhs(grid, seed=3)):
        result = solver.solve(grid, b, rtol=1e-6)
        reference = cg(grid.matrix(), grid.to_vector(b), rtol=1e-6)
        assert result.converged and result.status == "converged"
        assert result.iterations <= 0.1 * reference.iterations, (result.iterations, reference.iterations)
        r = grid.to_vector(b) - grid.matrix() @ grid.to_vector(result.x)
        assert np.linalg.norm(r) <= 1e-6 * np.linalg.norm(grid.to_vector(b))
        assert np.isclose(result.residual_history[-1], np.linalg.norm(r), rtol=1e-6)
        assert len(result.residual_history) == result.iterations + 1


def test_solve_forms_x0_callback_and_prepare(solver):
    grid = random_layout((40, 40), seed=UNSEEN + 1)
    b = random_rhs(grid, seed=0)
    exact = spla.spsolve(grid.matrix().tocsc(), grid.to_vector(b))
    seen = []
    field = solver.solve(grid, b, rtol=1e-8, callback=seen.append)
    assert field.x.shape == grid.shape and len(seen) == field.iterations
    np.testing.assert_allclose(grid.to_vector(field.x), exact, rtol=1e-5, atol=1e-7 * np.abs(exact).max())
    vector = solver.solve(grid, torch.as_tensor(grid.to_vector(b)), rtol=1e-8)
    assert torch.is_tensor(vector.x) and vector.x.shape == (grid.n_unknowns,)
    prepared = solver.prepare(grid)
    warm = prepared.solve(b, x0=grid.to_field(exact), rtol=1e-6)
    assert warm.converged and warm.iterations == 0
    assert prepared.setup_seconds > 0


def test_as_linear_operator_for_scipy(solver):
    grid = random_layout((32, 32), seed=UNSEEN + 2)
    A = grid.matrix()
    b = grid.to_vector(random_rhs(grid, seed=5))
    Ainv = solver.as_linear_operator(grid, rtol=1e-10)
    np.testing.assert_allclose(A @ (Ainv @ b), b, atol=1e-9)
    M = solver.as_linear_operator(grid, mode="precondition")
    x, info = spla.gmres(A, b, M=M, rtol=1e-8, restart=30, maxiter=3)
    assert info == 0 and np.linalg.norm(A @ x - b) < 1e-7
    with pytest.raises(ValueError, match="mode"):
        solver.as_linear_operator(grid, mode="invert")


def test_torchscript_export_runs_without_sciml(solver, tmp_path):
    grid = random_layout((48, 48), seed=UNSEEN + 3)
    b = random_rhs(grid, seed=6)
    path = solver.export(tmp_path / "dcdm.pt")
    diag, couplings = stencil_fields(grid)
    torch.save(
        {"b": torch.as_tensor(b), "diag": diag[0], "couplings": [c[0] for c in couplings]},
        tmp_path / "sys.pt",
    )
    script = textwrap.dedent(
        f"""
        import importlib.abc, sys
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("sciml", "problems", "solvers"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import json, torch
        solver = torch.jit.load({str(path)!r})
        s = torch.load({str(tmp_path / "sys.pt")!r})
        x, iterations, history, status = solver(s["b"], s["diag"], s["couplings"], None, 1e-6, 0.0, 500)
        assert not x.requires_grad
        torch.save(x, {str(tmp_path / "x.pt")!r})
        print(json.dumps({{"iterations": iterations, "status": solver.status_names[status],
                           "final": float(history[-1] / history[0]), "ndim": solver.ndim}}))
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout.strip().splitlines()[-1])
    python = solver.solve(grid, b, rtol=1e-6)
    assert report["status"] == "converged" and report["final"] <= 1e-6 and report["ndim"] == 2
    assert report["iterations"] == python.iterations
    torch.testing.assert_close(
        torch.load(tmp_path / "x.pt"), torch.as_tensor(python.x), rtol=1e-8, atol=1e-12
    )
    extra = {"sciml.json": ""}
    torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["sciml.json"])["config"] == solver.config


def test_exported_iteration_reports_negative_curvature(solver, tmp_path):
    module = torch.jit.load(str(solver.export(tmp_path / "dcdm.pt")))
    grid = random_layout((24, 24), seed=UNSEEN)
    diag, couplings = stencil_fields(grid)
    b = torch.as_tensor(random_rhs(grid, seed=0))
    # -A: negative definite (the mask of unknowns is read from diag > 0, so flip the couplings only and
    # shift the diagonal to keep it positive while the operator becomes indefinite)
    indefinite = diag[0] - 3 * diag[0].max() * torch.as_tensor(grid.fluid, dtype=torch.float64)
    x, iterations, history, status = module(
        b, indefinite.abs(), [-4 * c[0] for c in couplings], None, 1e-6, 0.0, 50
    )
    assert module.status_names[status] in ("negative_curvature", "max_iterations")


def test_bad_input_is_rejected_with_clear_errors(solver, tmp_path):
    with pytest.raises(ValueError, match="inconsistent right-hand side"):
        solver.solve(PoissonGrid((16, 16), walls="neumann"), np.ones((16, 16)))
    with pytest.raises(ValueError, match="2D"):
        solver.solve(PoissonGrid((8, 8, 8)), np.ones((8, 8, 8)))
    grid = random_layout((16, 16), seed=UNSEEN)
    with pytest.raises(ValueError, match="grid shape"):
        solver.solve(grid, np.ones((16, 15)))
    bad = np.ones((16, 16))
    bad[tuple(np.argwhere(grid.fluid)[0])] = np.nan  # on an unknown (off them NaN is ignored)
    with pytest.raises(ValueError, match="finite"):
        solver.solve(grid, bad)
    with pytest.raises(ValueError, match="shape"):
        solver.solve(grid.matrix(), np.ones(grid.n_unknowns))
    with pytest.raises(TypeError, match="PoissonGrid, a GridStencil"):
        solver.solve("grid", np.ones(grid.n_unknowns))
    with pytest.raises(ValueError, match="rtol"):
        solver.solve(grid, np.ones((16, 16)), rtol=-1)
    # corrupt, foreign and mismatched model files
    (tmp_path / "corrupt.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="corrupt"):
        DCDM.load(tmp_path / "corrupt.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a sciml DCDM model"):
        DCDM.load(tmp_path / "foreign.pt")
    solver.save(tmp_path / "model.pt")
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    state["config"]["channels"] += 2
    torch.save(state, tmp_path / "edited.pt")  # edited after it was written: its checksum no longer fits
    with pytest.raises(ValueError, match="checksum"):
        DCDM.load(tmp_path / "edited.pt")
    del state["sha256"]  # a file written by other code, without a checksum
    torch.save(state, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="channel layout"):
        DCDM.load(tmp_path / "mismatch.pt")
    with pytest.raises(FileNotFoundError, match="3"):
        DCDM.load(tmp_path / "missing.pt", ndim=3)
    with pytest.raises(TypeError, match="network"):
        DCDM(torch.nn.Linear(2, 2))


def test_model_file_round_trip(solver, tmp_path):
    solver.save(tmp_path / "m.pt")
    again = DCDM.load(tmp_path / "m.pt")
    assert again.config == solver.config and again.k == solver.k and again.info == solver.info
    for a, b in zip(again.network.state_dict().values(), solver.network.state_dict().values()):
        assert torch.equal(a, b)
    assert "command" in solver.info and solver.info["command"].startswith("sciml dcdm train")


def test_training_checkpoints_and_resumes(tmp_path):
    common = dict(
        size=16, coarsest=4, layouts=3, rhs_per_layout=4, lanczos_steps=20, batch_size=4, validate_layouts=0
    )
    config = TrainConfig(steps=6, checkpoint_every=3, **common)
    first = train(config, tmp_path / "run", progress=False, cache_dir=str(tmp_path / "cache"), command="test")
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["step"] == 6 and len(saved["losses"]) == 6
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    assert json.loads((tmp_path / "run" / "model.json").read_text())["command"] == "test"
    # resuming a finished run trains no further and gives the same weights
    again = train(config, tmp_path / "run", resume=True, progress=False, cache_dir=str(tmp_path / "cache"))
    for a, b in zip(again.network.state_dict().values(), first.network.state_dict().values()):
        assert torch.equal(a, b)
    # a longer run resumes from step 6
    longer = TrainConfig(steps=8, checkpoint_every=3, **common)
    with pytest.raises(ValueError, match="another configuration"):
        train(longer, tmp_path / "run", resume=True, progress=False, cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match="must be"):
        TrainConfig(ndim=4)
    with pytest.raises(ValueError, match="coarsest"):
        TrainConfig(size=16)
    # the optimiser moved the weights away from the classical initial network
    initial = MultigridNet(coarsest=4).state_dict()
    assert any(not torch.allclose(v, initial[k]) for k, v in first.network.state_dict().items())


def test_shipped_3d_model_on_an_unseen_layout():
    solver3 = DCDM.load(ndim=3)
    grid = random_layout((24, 24, 24), seed=UNSEEN)
    b = random_rhs(grid, seed=1)
    result = solver3.solve(grid, b, rtol=1e-6)
    reference = cg(grid.matrix(), grid.to_vector(b), rtol=1e-6)
    assert result.converged and result.iterations <= 0.15 * reference.iterations
    with pytest.raises(ValueError, match="3D"):
        solver3.solve(random_layout((16, 16), seed=UNSEEN), np.ones((16, 16)))

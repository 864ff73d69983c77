"""Review 5 of the trainer: the progress bar's label without a reference, gridded references on non-box
domains, references holding tensors that require grad, and checkpoints written on Ctrl-C."""

import math
import warnings

import numpy as np
import pytest
import sciml.problems.pde as pde
import torch

from sciml.pinn import PINN, TrainConfig, Trainer
from sciml.pinn.presets import build_model, preset

pytestmark = pytest.mark.usefixtures("one_thread")

_SMALL = dict(n_residual=32, n_condition=8, eval_every=10, checkpoint_every=1000)


def _legendre(seed: int = 0, soft: bool = False):
    """Legendre's problem and a PINN; ``soft``: without its hard constraint (two loss terms)."""
    problem = pde.get("legendre")
    problem = problem.replace(constraint=None) if soft else problem
    return problem, build_model(problem, "pinn", preset("legendre"), seed=seed)


# ------------------------------------------------------------------------------ 1. progress bar label
def test_the_progress_bar_labels_the_residual_rms_as_such_without_a_reference(capsys):
    problem, model = _legendre()
    config = TrainConfig(adam_iterations=4, **{**_SMALL, "eval_every": 2})
    result = Trainer(problem.replace(exact=None), model, config).fit(progress=True)
    err = capsys.readouterr().err
    assert "residual_rms=" in err and "rel_l2=" not in err
    assert result.rel_l2 is None
    assert all(h["rel_l2"] is None and h["residual_rms"] > 0 for h in result.history)
    Trainer(problem, _legendre()[1], config).fit(progress=True)  # with a reference: its error
    err = capsys.readouterr().err
    assert "rel_l2=" in err and "residual_rms=" not in err


# ------------------------------------------------------------------------------ 2. gridded references
def _l_heat():
    domain = pde.LShape(1.0).times(0.0, 0.5)
    return pde.PDEProblem(
        name="heat-l",
        domain=domain,
        fields=("u",),
        residual=lambda x, d, p: d["u_t"] - 0.05 * (d["u_xx"] + d["u_yy"]),
        conditions=(
            pde.Dirichlet(value=0.0),
            pde.InitialValue(value=lambda x: torch.sin(math.pi * x[:, 0]) * torch.sin(math.pi * x[:, 1])),
        ),
    )


def _grid(n=(21, 21, 6)):
    axes = (np.linspace(-1, 1, n[0]), np.linspace(-1, 1, n[1]), np.linspace(0, 0.5, n[2]))
    points = np.stack([m.ravel() for m in np.meshgrid(*axes, indexing="ij")], axis=1)
    values = np.exp(-points[:, 2]) * np.sin(math.pi * points[:, 0]) * np.sin(math.pi * points[:, 1])
    return points, values


def _outside_warnings(trainer, reference):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        error = trainer.evaluate(reference)
    return error, [str(w.message) for w in record if "outside the domain" in str(w.message)]


def test_a_tensor_grid_over_the_bounding_box_is_not_told_to_check_its_column_order(tmp_path):
    problem = _l_heat()
    trainer = Trainer(problem, PINN(3, 1, (8,), lower=problem.domain.lower, upper=problem.domain.upper))
    points, values = _grid()
    rng = np.random.default_rng(0)
    shuffled = rng.permutation(len(points))  # a grid in any row order, as a file
    np.savez(tmp_path / "grid.npz", points=points[shuffled], values=values[shuffled])
    for reference in ((points, values), tmp_path / "grid.npz"):
        error, said = _outside_warnings(trainer, reference)
        assert len(said) == 1 and "column order" not in said[0] and "tensor grid" in said[0], said
    # the points outside are still left out of the error
    inside = problem.domain.inside(torch.as_tensor(points)).numpy()
    assert error == pytest.approx(trainer.evaluate((points[inside], values[inside])), rel=1e-12)
    # swapped columns (x, t, y) of the same grid, and scattered points: the hint stays
    _, said = _outside_warnings(trainer, (points[:, [0, 2, 1]], values))
    assert len(said) == 1 and "check the column order" in said[0]
    scattered = rng.uniform(-1, 1, size=(500, 3)) * [1, 1, 0.25] + [0, 0, 0.25]
    _, said = _outside_warnings(trainer, (scattered, np.ones(500)))
    assert len(said) == 1 and "check the column order" in said[0]
    # a grid missing a point is scattered points
    _, said = _outside_warnings(trainer, (points[1:], values[1:]))
    assert len(said) == 1 and "check the column order" in said[0]


# ------------------------------------------------------------------------------ 4. tensors in a reference
def test_a_reference_of_tensors_that_require_grad_is_accepted():
    problem, model = _legendre()
    trainer = Trainer(problem, model, TrainConfig(adam_iterations=1, **_SMALL))
    x = np.linspace(-0.9, 0.9, 40)[:, None]
    u = np.asarray(problem.exact(torch.as_tensor(x))).reshape(-1)
    expected = trainer.evaluate((x, u))
    tensors = (torch.tensor(x, requires_grad=True), torch.tensor(u, requires_grad=True))
    assert trainer.evaluate(tensors) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"`reference` \(points, values\) must hold arrays or tensors"):
        trainer.evaluate((x, ["a"] * 40))


# ------------------------------------------------------------------------------ 3. Ctrl-C
_ADAM = TrainConfig(
    adam_iterations=30, resample_every=5, balance="grad_norm", balance_every=5, average_last=0.5, **_SMALL
)
_LBFGS = TrainConfig(adam_iterations=6, lbfgs_iterations=54, resample_every=20, **_SMALL)


def _compare(straight, resumed):
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    drop = ("seconds", "cpu_seconds")
    assert [{k: v for k, v in h.items() if k not in drop} for h in straight.history] == [
        {k: v for k, v in h.items() if k not in drop} for h in resumed.history
    ]


def _interrupted(config, path, setup):
    """Train ``config`` into ``path``, ``setup(trainer)`` arming an interrupt; the interrupt's text."""
    problem, model = _legendre(soft=True)
    trainer = Trainer(problem, model, config, checkpoint=path)
    setup(trainer)
    with pytest.raises(KeyboardInterrupt) as caught:
        trainer.fit(progress=False)
    return str(caught.value)


def _raise_at(calls: int, function):
    """``function``, but its call number ``calls`` (from 1) raises KeyboardInterrupt instead."""
    count = [0]

    def wrapped(*args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise KeyboardInterrupt
        return function(*args, **kwargs)

    return wrapped


@pytest.mark.parametrize("where", ["loss", "balance"])
def test_ctrl_c_in_adam_writes_the_last_completed_iteration_and_resumes_exactly(tmp_path, monkeypatch, where):
    """Interrupted in iteration 21 after its resampling, averaging and (``balance``) weight update: the
    checkpoint holds iteration 20 as it was before them."""
    straight = Trainer(*_legendre(soft=True), _ADAM).fit(progress=False)
    if where == "loss":
        text = _interrupted(_ADAM, tmp_path / "b.pt", lambda t: setattr(t, "loss", _raise_at(21, t.loss)))
    else:
        from sciml.pinn.strategies import GradNormBalance

        update, calls = GradNormBalance.update, []

        def late(self, *args):  # the weights of iteration 20 (the 5th update) are updated, then Ctrl-C
            update(self, *args)
            calls.append(1)
            if len(calls) == 5:
                raise KeyboardInterrupt

        monkeypatch.setattr(GradNormBalance, "update", late)
        text = _interrupted(_ADAM, tmp_path / "b.pt", lambda t: None)
        monkeypatch.setattr(GradNormBalance, "update", update)
    assert "wrote the state after iteration 20" in text and str(tmp_path / "b.pt") in text
    assert torch.load(tmp_path / "b.pt", weights_only=True)["iteration"] == 20
    problem, other = _legendre(seed=1, soft=True)  # other weights: everything must come from the checkpoint
    resumed = Trainer(problem, other, _ADAM, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    _compare(straight, resumed)


def test_ctrl_c_in_lbfgs_writes_the_last_completed_chunk_and_resumes_exactly(tmp_path):
    """Interrupted in a line search of the L-BFGS chunk from iteration 30 (chunks end at the log entries,
    every 10): the checkpoint holds iteration 30."""
    straight = Trainer(*_legendre(soft=True), _LBFGS).fit(progress=False)

    def arm(trainer):
        count, loss, statistics = {"logs": 0, "losses": 0}, trainer.loss, trainer.residual_statistics

        def count_logs():
            count["logs"] += 1
            return statistics()

        def late(points):  # the 5th evaluation after the 3rd log entry, that of iteration 30
            count["losses"] += count["logs"] >= 3
            if count["losses"] == 5:
                raise KeyboardInterrupt
            return loss(points)

        trainer.residual_statistics, trainer.loss = count_logs, late

    text = _interrupted(_LBFGS, tmp_path / "b.pt", arm)
    assert "wrote the state after iteration 30" in text
    assert torch.load(tmp_path / "b.pt", weights_only=True)["iteration"] == 30
    problem, other = _legendre(seed=1, soft=True)
    resumed = Trainer(problem, other, _LBFGS, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    _compare(straight, resumed)


def test_ctrl_c_inside_an_adam_step_writes_nothing_and_says_so(tmp_path, monkeypatch):
    config = _ADAM.replace(checkpoint_every=10)
    monkeypatch.setattr(torch.optim.Adam, "step", _raise_at(16, torch.optim.Adam.step))
    text = _interrupted(config, tmp_path / "b.pt", lambda t: None)
    assert "interrupted at iteration 15; nothing was written (the step of iteration 16 was half done" in text
    assert "holds the last checkpoint" in text
    assert torch.load(tmp_path / "b.pt", weights_only=True)["iteration"] == 10  # the periodic one, kept
    # before any iteration completed: nothing to write either
    monkeypatch.setattr(Trainer, "loss", _raise_at(1, Trainer.loss))
    text = _interrupted(config, tmp_path / "c.pt", lambda t: None)
    assert "no iteration completed" in text and "was not written yet" in text
    assert not (tmp_path / "c.pt").exists()


def test_ctrl_c_that_left_grad_mode_off_restores_it_and_writes_a_resumable_checkpoint(tmp_path):
    """Ctrl-C at the entry of a ``torch.no_grad()`` block's ``__exit__`` skips its restore of grad mode: the
    checkpoint's fingerprint (which probes the problem) and the user's later work need it back on."""
    straight = Trainer(*_legendre(soft=True), _ADAM).fit(progress=False)

    def arm(trainer):
        loss, calls = trainer.loss, []

        def off(points):  # in iteration 11: grad mode off, as such an interrupted block leaves it
            calls.append(1)
            if len(calls) == 11:
                torch.set_grad_enabled(False)
                raise KeyboardInterrupt
            return loss(points)

        trainer.loss = off

    try:
        text = _interrupted(_ADAM, tmp_path / "b.pt", arm)
        assert torch.is_grad_enabled() and "wrote the state after iteration 10" in text
    finally:
        torch.set_grad_enabled(True)
    problem, other = _legendre(seed=1, soft=True)
    resumed = Trainer(problem, other, _ADAM, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    _compare(straight, resumed)


# ------------------------------------------------------------------ resuming a run whose L-BFGS stopped early
def test_resuming_a_run_whose_lbfgs_stopped_early_trains_no_further(tmp_path, monkeypatch):
    problem, model = _legendre(soft=True)
    with monkeypatch.context() as patch:  # an L-BFGS step that finds no step: the phase stops at once
        patch.setattr(torch.optim.LBFGS, "step", lambda self, closure: None)
        stopped = Trainer(problem, model, _LBFGS, checkpoint=tmp_path / "b.pt").fit(progress=False)
    assert stopped.message.startswith("L-BFGS stopped at iteration 6"), stopped.message
    problem, other = _legendre(seed=1, soft=True)
    again = Trainer(problem, other, _LBFGS, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)
    assert (again.iterations, again.message) == (stopped.iterations, stopped.message)
    _compare(stopped, again)


def test_a_checkpoint_of_the_coarse_problem_probes_is_refused_as_an_earlier_sciml(tmp_path):
    from sciml.checkpoint import load_checkpoint, save_checkpoint
    from sciml.pinn import CheckpointMismatch

    problem, model = _legendre()
    config = TrainConfig(adam_iterations=2, **_SMALL)
    Trainer(problem, model, config, checkpoint=tmp_path / "b.pt").fit(progress=False)
    state = load_checkpoint(tmp_path / "b.pt")
    del state["fingerprint"]["problem"]["probes"]  # as written before the problem was probed at 512 points
    save_checkpoint(state, tmp_path / "b.pt")
    problem, other = _legendre()
    with pytest.raises(CheckpointMismatch, match="earlier sciml, which probed"):
        Trainer(problem, other, config, checkpoint=tmp_path / "b.pt").fit(progress=False, resume=True)


def test_a_grid_line_with_rounding_noise_stays_one_line():
    from sciml.pinn.trainer import _spans_box

    x, y = np.meshgrid(np.linspace(0, 1, 1025), np.linspace(0, 1, 5), indexing="ij")
    points = np.stack([x.ravel(), y.ravel()], 1)
    points[::2, 0] += 1e-16  # a mesh export's last-bit differences within a line
    assert _spans_box(points, [0, 0], [1, 1])
    assert not _spans_box(points[:-1], [0, 0], [1, 1])  # a point missing: not a complete grid


@pytest.mark.parametrize("transposed", [False, True])
def test_a_finite_element_layout_gets_the_recipe_for_one_row_per_node_and_time(tmp_path, transposed):
    import h5py

    problem = pde.PDEProblem(
        name="heat-disk", domain=pde.Disk((0, 0), 1.0).times(0.0, 1.0), fields=("u",),
        residual=lambda x, d, p: d["u_t"] - d["u_xx"] - d["u_yy"],
        conditions=(pde.InitialValue(value=0.0),),
    )  # fmt: skip
    nodes, times = np.random.default_rng(0).uniform(-0.5, 0.5, (20, 2)), np.linspace(0, 1, 3)
    values = np.ones((3, 20))
    with h5py.File(tmp_path / "fe.h5", "w") as f:
        f["coordinates"], f["times"], f["values"] = nodes, times, values.T if transposed else values
    model = PINN(3, 1, hidden=(8,), generator=torch.Generator().manual_seed(0))
    with pytest.raises(ValueError) as caught:
        Trainer(problem, model, TrainConfig(adam_iterations=1, **_SMALL), reference=tmp_path / "fe.h5")
    text = str(caught.value)
    flat = "values.T.reshape(-1)" if transposed else "values.reshape(-1)"
    assert "np.tile(coordinates, (3, 1))" in text and "np.repeat(times, 20)" in text and flat in text
    assert "['x', 'y', 't']" in text

"""Regressions from a new user's report on ``sciml train node`` / ``sciml bench node``: every offered task ×
``--reg`` trains (STEER's b fits the task), divergence stops with one message, bench options are checked up
front, and foreign, empty or occupied checkpoints/outputs are refused with a reason."""

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from sciml.solvers.solution import SolveError

from sciml.cli import main as cli_main
from sciml.neural_de.tasks import TASKS, DigitsTask
from sciml.neural_de.training import (
    VARIANTS,
    TrainConfig,
    TrainingDiverged,
    check_variant,
    make_variant,
    train,
)

#: the pairs the CLI refuses up front (each with its reason), and nothing else
REFUSED = {(task, reg) for task in ("kinetics", "spiral-sde", "digits-sde") for reg in ("rnode", "taynode")}
REFUSED |= {(task, "local-exact") for task in ("spiral-sde", "digits-sde")}  # its exact step is the ODE's
#: tasks without the continuous adjoint: their local variants need ``--backend backprop`` (as the error says)
BACKPROP_ONLY = ("kinetics", "spiral-sde", "digits-sde")


def _cheap(name: str):
    """The task at loose tolerances (and, for spiral-sde, fewer reference paths): one step costs little."""
    task = dataclasses.replace(TASKS[name], rtol=1e-3, atol=1e-3)
    if name == "spiral-sde":
        task = dataclasses.replace(task, data_paths=200, test_paths=50)
    return task


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_offered_task_and_reg_trains_one_step_or_is_refused_up_front(name):
    task = _cheap(name)
    batch = tuple(t[:2] for t in task.data()["train"])
    models = {}
    for reg in VARIANTS:
        if (name, reg) in REFUSED:
            refused = f"--reg {reg} is not available on --task {name}: .+; choose"
            with pytest.raises(ValueError, match=refused):
                check_variant(task, reg)
            continue
        if name in BACKPROP_ONLY and reg.startswith("local"):
            default = f"--reg {reg} defaults to --backend continuous.*pass --backend backprop"
            with pytest.raises(ValueError, match=default):
                check_variant(task, reg)
        backend = check_variant(task, reg, "backprop" if name in BACKPROP_ONLY else None)
        regularizer, _ = make_variant(reg, task, epochs=2)
        torch.manual_seed(0)
        model = models.setdefault(backend, task.model(backend))
        out = model(batch, regularizer=regularizer)
        extra = out.result.regularization
        loss = out.loss if extra is None else out.loss + extra
        assert torch.isfinite(loss), (name, reg)
        loss.backward()


def test_steer_fits_the_spiral_windows_on_every_draw():
    task = TASKS["spiral"]
    regularizer, _ = make_variant("steer", task, epochs=1)
    assert 0 < regularizer.b < task.train_span()[1] - task.train_span()[0]
    model = task.model("backprop")
    batch = tuple(t[:2] for t in task.data()["train"])
    torch.manual_seed(0)
    for _ in range(40):  # a stretched save time one ulp off the drawn end time failed 8 % of the solves
        model(batch, regularizer=regularizer)


def test_refused_pairs_stop_train_before_any_work(tmp_path, monkeypatch):
    def no_data(self):
        raise AssertionError("the data were loaded: the refusal came too late")

    monkeypatch.setattr(type(TASKS["kinetics"]), "data", no_data)
    with pytest.raises(ValueError, match="--reg rnode is not available on --task kinetics"):
        train(TrainConfig(task="kinetics", reg="rnode", epochs=1, out=str(tmp_path / "k"), progress=False))
    with pytest.raises(ValueError, match="--backend continuous is not available on --task kinetics"):
        train(TrainConfig(task="kinetics", backend="continuous", epochs=1, out=str(tmp_path / "k")))
    assert not (tmp_path / "k").exists()


# ------------------------------------------------------------------------------------------ divergence
def test_a_step_to_nan_parameters_stops_with_one_message(tmp_path, monkeypatch):
    # the third Adam step puts a NaN into a parameter while the loss was finite (lr=3 alone did so through
    # the dynamics on one CPU and not on another; the patch makes it happen everywhere)
    step, calls = torch.optim.Adam.step, []

    def nan_step(self, *args, **kwargs):
        out = step(self, *args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[0] = float("nan")
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", nan_step)
    config = TrainConfig(task="spiral", lr=3.0, epochs=1, out=str(tmp_path), progress=False)
    message = r"diverged at epoch 1, batch \d+: the optimizer step made the parameters non-finite"
    with pytest.raises(TrainingDiverged, match=message) as info:
        train(config)
    assert "--lr 3" in str(info.value) and "no checkpoint was written yet" in str(info.value)


def test_a_huge_learning_rate_ends_with_a_message_not_a_traceback(tmp_path, capsys):
    argv = ["train", "node", "--task", "spiral", "--lr", "1e6", "--epochs", "1", "--out", str(tmp_path)]
    assert cli_main([*argv, "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "training diverged at epoch 1" in err and "a training solve failed" in err and "--lr 1e+06" in err
    assert "Traceback" not in err


@dataclass(frozen=True)
class _FailingDigits(DigitsTask):
    """Digits whose solve fails (SolveError) from the ``fail_from``-th training call on, or in evaluation."""

    fail_from: int = 1
    fail_in_eval: bool = False

    def model(self, backend):
        model = super().model(backend)
        forward, calls = model.forward, {"n": 0}

        def failing(batch, regularizer=None):
            calls["n"] += model.training
            if calls["n"] >= self.fail_from if model.training else self.fail_in_eval:
                raise SolveError("reached max_steps", None)
            return forward(batch, regularizer)

        model.forward = failing
        return model


@pytest.mark.parametrize(
    ("fail_from", "fail_in_eval", "error", "message"),
    [
        (1, False, ValueError, r"first training solve failed at the initial parameters \(epoch 1, batch 1\)"),
        (3, False, TrainingDiverged, r"diverged at epoch 1, batch 3: a training solve failed"),
        (99, True, TrainingDiverged, r"diverged at the evaluation after epoch 1: a test solve failed"),
    ],
)
def test_a_failing_solve_names_where_and_why(monkeypatch, tmp_path, fail_from, fail_in_eval, error, message):
    task = _FailingDigits("failing", "node", "accuracy", True, epochs=1, batch_size=256, lr=3e-3, rtol=1e-4,
                          atol=1e-4, hidden=8, fail_from=fail_from, fail_in_eval=fail_in_eval)  # fmt: skip
    monkeypatch.setitem(TASKS, "failing", task)
    with pytest.raises(error, match=message):
        train(TrainConfig(task="failing", epochs=1, out=str(tmp_path), progress=False))


# ------------------------------------------------------------------------------------------ bench node
@pytest.fixture
def no_training(monkeypatch):
    from sciml.bench import node

    def refuse(*args, **kwargs):
        raise AssertionError("the bench started training")

    monkeypatch.setattr(node, "run_trainings", refuse)


@pytest.mark.parametrize(
    ("extra", "flags"),
    [
        (["--weights", "1"], ["--weights", "--sweep"]),
        (["--sweep-variant", "stiffness", "--reuse"], ["--sweep-variant", "--reuse", "--sweep"]),
        (["--e2e", "--weights", "1"], ["--weights", "--e2e"]),
        (["--sweep", "--tasks", "spiral"], ["--sweep", "no validation split", "mnist1d"]),
        (["--sweep", "--tasks", "mnist1d", "--variants", "error"], ["--variants", "--sweep-variant"]),
        (["--sweep", "--tasks", "mnist1d", "--weight-delays", "two"], ["--weight-delays"]),
        (["--sweep", "--tasks", "mnist1d", "--sweep-variant", "steer"], ["--sweep-variant", "with a weight"]),
    ],
)
def test_bench_node_refuses_options_its_mode_would_ignore(no_training, tmp_path, capsys, extra, flags):
    assert cli_main(["bench", "node", "--out", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert all(flag in err for flag in flags), err


# ------------------------------------------------------------------------------------------ checkpoints
def _spiral(out, **kw) -> TrainConfig:
    return TrainConfig(task="spiral", epochs=1, out=str(out), progress=False, **kw)


@pytest.mark.parametrize(
    ("reg", "kw", "flags"),
    [
        ("vanilla", {"weight": 3.0}, "--weight would"),
        ("steer", {"weight_delay": 0}, "--weight-delay would"),
        ("vanilla", {"weight": 1.0, "weight_delay": 1}, "--weight and --weight-delay would"),
    ],
)
def test_a_weight_for_a_variant_without_one_is_refused_before_training(tmp_path, reg, kw, flags):
    with pytest.raises(ValueError, match=f"--reg {reg} has no regularization weight, so {flags} be ignored"):
        train(_spiral(tmp_path / "run", reg=reg, **kw))
    assert not (tmp_path / "run").exists()


def test_an_empty_checkpoint_is_called_empty(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"--resume: .*checkpoint.pt is empty \(0 bytes\)"):
        train(_spiral(tmp_path, resume=True))


def test_a_torch_file_that_is_not_a_training_checkpoint_is_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"--resume: .* is not a checkpoint of `sciml train` \(it lacks mod"):
        train(_spiral(tmp_path, resume=True))
    with pytest.raises(ValueError, match=r"--init-from: .* is not a checkpoint of `sciml train`"):
        train(_spiral(tmp_path / "b", reg="error", weight_delay=0, init_from=str(tmp_path / "checkpoint.pt")))


def test_resume_without_a_checkpoint_creates_nothing(tmp_path):
    with pytest.raises(ValueError, match="--resume: no checkpoint at .*; drop --resume"):
        train(_spiral(tmp_path / "new", resume=True))
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["checkpoint.pt", "metrics.json", "summary.json"])
def test_training_afresh_into_an_out_that_holds_a_run_is_refused(tmp_path, capsys, name):
    (tmp_path / name).write_text("an earlier run")
    argv = ["train", "node", "--task", "spiral", "--reg", "steer", "--epochs", "1", "--out", str(tmp_path)]
    assert cli_main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"already holds a run ({name})" in err and "--resume" in err and "new --out" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert (tmp_path / name).read_text() == "an earlier run"

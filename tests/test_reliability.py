"""Probes a new user ran into: each must give the right answer or a clear error."""

import os
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from sciml.problems.ode import ODEProblem
from sciml.solvers.cache import callable_fingerprint
from sciml.solvers.ode import reference_solution

from sciml.checkpoint import check_writable_dir, load_checkpoint, save_checkpoint, write_json
from sciml.cli import main as cli_main
from sciml.neural_de.training import _check_history

TS = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCIML_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _decay(rate: float) -> ODEProblem:
    return ODEProblem(lambda t, y: -rate * y, torch.ones(1, dtype=torch.float64), (0.0, 1.0))


def test_reference_cache_tells_vector_fields_apart(cache):
    # same default name, same y0 and times: only the field differs
    slow, fast = _decay(1.0), _decay(3.0)
    assert slow.name == fast.name
    a = reference_solution(slow, TS)
    b = reference_solution(fast, TS)
    torch.testing.assert_close(a[-1], torch.exp(torch.tensor([-1.0], dtype=torch.float64)))
    torch.testing.assert_close(b[-1], torch.exp(torch.tensor([-3.0], dtype=torch.float64)))
    # a module-level value the field reads is part of its identity too
    global SCALE
    SCALE = 1.0
    field = lambda t, y: -SCALE * y  # noqa: E731
    first = reference_solution(ODEProblem(field, torch.ones(1, dtype=torch.float64), (0.0, 1.0)), TS)
    SCALE = 2.0
    second = reference_solution(ODEProblem(field, torch.ones(1, dtype=torch.float64), (0.0, 1.0)), TS)
    assert abs(float(first[-1] - second[-1])) > 0.2


def test_damaged_cache_is_recomputed(cache):
    problem = _decay(2.0)
    right = reference_solution(problem, TS)
    (path,) = list(cache.glob("*.h5"))
    with h5py.File(path, "r+") as f:
        f["ys"][...] = f["ys"][...] + 32.5  # bytes changed inside a cached array
    with pytest.warns(UserWarning, match="checksum"):
        again = reference_solution(problem, TS)
    torch.testing.assert_close(again, right)


def test_field_that_cannot_be_fingerprinted_is_not_cached(cache):
    class Holder:
        pass

    holder = Holder()
    holder.rate = 1.0
    problem = ODEProblem(lambda t, y: -holder.rate * y, torch.ones(1, dtype=torch.float64), (0.0, 1.0))
    assert callable_fingerprint(problem.f) is None
    with pytest.warns(UserWarning, match="cache_version"):
        reference_solution(problem, TS)
    holder.rate = 4.0
    with pytest.warns(UserWarning):
        late = reference_solution(problem, TS)
    torch.testing.assert_close(late[-1], torch.exp(torch.tensor([-4.0], dtype=torch.float64)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reference_solution(problem, TS, cache_version="rate-4")


@pytest.mark.parametrize(
    "flag, value",
    [("--lr", "0"), ("--lr=-1e-3", None), ("--batch-size", "0"), ("--weight", "-1"), ("--threads", "0")],
)
def test_train_refuses_numbers_that_would_be_ignored(tmp_path, capsys, flag, value):
    option = [flag] if value is None else [flag, value]
    code = cli_main(["train", "node", "--task", "spiral", "--out", str(tmp_path / "run"), *option])
    assert code == 2
    assert flag.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_checkpoint_whose_epoch_disagrees_with_its_history_is_refused(tmp_path):
    history = [{"epoch": 1}, {"epoch": 2}, {"epoch": 3}]
    _check_history({"epoch": 2, "history": history}, 5, tmp_path / "c.pt")  # consistent
    for epoch, planned in [(99, 5), (1, 5), (2, 2)]:
        with pytest.raises(ValueError, match="inconsistent"):
            _check_history({"epoch": epoch, "history": history}, planned, tmp_path / "c.pt")


def test_checkpoint_checksum_catches_changed_bytes(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"weights": torch.arange(1000, dtype=torch.float64), "epoch": 3}, path)
    assert load_checkpoint(path)["epoch"] == 3
    data = bytearray(path.read_bytes())
    marker = np.arange(1000, dtype=np.float64)[500:502].tobytes()
    at = bytes(data).find(marker)
    assert at > 0
    data[at + 3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        load_checkpoint(path)


def test_written_files_get_the_usual_mode_and_no_probe_file_is_touched(tmp_path):
    old = os.umask(0o022)
    try:
        user_file = tmp_path / ".write-test"
        user_file.write_text("mine")
        check_writable_dir(tmp_path)
        assert user_file.read_text() == "mine"
        assert sorted(p.name for p in tmp_path.iterdir()) == [".write-test"]
        written = write_json(tmp_path / "m.json", {"a": 1})
        save_checkpoint({"a": 1}, tmp_path / "c.pt")
        for path in (written, Path(tmp_path / "c.pt")):
            assert (path.stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)


def test_neural_ode_says_how_to_use_a_network_of_the_state_alone():
    from torch import nn

    from sciml.neural_de import Autonomous, NeuralODE

    net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
    with pytest.raises(TypeError, match=r"Autonomous\(net\)"):
        NeuralODE(net)
    out = NeuralODE(Autonomous(net))(torch.randn(4, 2))
    assert out.ys.shape == (1, 4, 2)


def test_spiral_training_draws_its_trajectory_against_the_data(tmp_path):
    assert (
        cli_main(
            ["train", "node", "--task", "spiral", "--epochs", "1", "--out", str(tmp_path), "--no-progress"]
        )
        == 0
    )
    assert (tmp_path / "trajectories.png").stat().st_size > 10_000


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["bench", "node", "--jobs", "0"], "--jobs"),
        (["bench", "ode", "--repeats", "0"], "--repeats"),
        (["medida", "--case", "3", "--members", "0"], "--members"),
        (["medida", "--case", "3", "--noise", "nan"], "--noise"),
        (["bench", "medida", "--cases", "1", "--seeds=-1"], "--seeds"),
    ],
)
def test_every_command_refuses_numbers_it_cannot_use(argv, flag, tmp_path, capsys):
    assert cli_main([*argv, "--out", str(tmp_path)]) == 2
    assert flag in capsys.readouterr().err

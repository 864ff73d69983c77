"""``--local-dtype`` of ``sciml train node`` and ``sciml bench node --sweep``: the local regularizers' step in
float64 reaches the model (its value is a float64 copy's), the default stays the model's dtype (the same
run), it is refused where it would be ignored or where no weight is calibrated, and it keys resumed and
reused runs."""

import copy
import dataclasses
import json

import pytest
import torch

import sciml.neural_de.model as model_module
from sciml.checkpoint import load_checkpoint, save_checkpoint
from sciml.cli import main as cli_main
from sciml.neural_de.model import NeuralODE
from sciml.neural_de.tasks import TASKS
from sciml.neural_de.training import TrainConfig, make_variant, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tiny(monkeypatch):
    """mnist1d, small: a renamed copy takes mnist1d's calibrated (float32) local weights."""
    task = dataclasses.replace(TASKS["mnist1d"], name="tiny-local", n_samples=200, channels=4, batch_size=50)
    monkeypatch.setitem(TASKS, task.name, task)
    return task.name


def _local(tiny, out, **kw) -> TrainConfig:
    return TrainConfig(task=tiny, reg="local-unbiased", backend="backprop", epochs=1, out=str(out),
                       progress=False, **kw)  # fmt: skip


@pytest.fixture
def local_calls(monkeypatch):
    """Every ``NeuralODE.local_error`` call of a run: the node as it was (copied), ``t``, the state, the
    value returned, and the step's ``E`` and ``h`` before the value is cast back to the state's dtype."""
    calls = []
    real_local, real_ratio, real_h = (
        NeuralODE.local_error,
        model_module.error_ratio,
        model_module.initial_step_size,
    )

    def local_error(self, t, y):
        calls.append({"node": copy.deepcopy(self), "t": t, "y": y.detach().clone()})
        value = real_local(self, t, y)
        calls[-1]["value"] = value.detach()
        return value

    def error_ratio(*args, **kwargs):
        ratio = real_ratio(*args, **kwargs)
        calls[-1]["E"] = ratio.detach()
        return ratio

    def initial_step_size(*args, **kwargs):
        h = real_h(*args, **kwargs)
        calls[-1]["h"] = h
        return h

    monkeypatch.setattr(NeuralODE, "local_error", local_error)
    monkeypatch.setattr(model_module, "error_ratio", error_ratio)
    monkeypatch.setattr(model_module, "initial_step_size", initial_step_size)
    return calls


def test_float64_reaches_the_model_and_gives_the_float64_copys_value(tiny, tmp_path, local_calls):
    train(_local(tiny, tmp_path / "run", local_dtype="float64", weight=1.0))
    assert len(local_calls) == 3  # one step per training batch (140 samples, batches of 50)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    returned = [float(c["value"]) for c in local_calls]
    assert history[0]["regularization"] == pytest.approx(sum(returned) / 3, rel=1e-6)  # these are the reg
    recorded = [(c["node"], c["t"], c["y"], c["E"] * abs(c["h"])) for c in local_calls]
    for node, t, y, value64 in recorded:
        assert node.local_dtype == torch.float64 and y.dtype == torch.float32
        assert value64.dtype == torch.float64  # the step ran in float64
        f64 = copy.deepcopy(node).double()
        f64.local_dtype = None
        reference = f64.local_error(t, y.double()).detach()  # the whole model in float64
        assert reference.dtype == torch.float64
        assert abs(float(value64) / float(reference) - 1) < 1e-12
    for (node, t, y, _), value in zip(recorded, returned):  # the float32 value the loss got: rounded
        assert value == pytest.approx(
            float(copy.deepcopy(node).double().local_error(t, y.double()).detach()), rel=1e-6
        )
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["local_dtype"] == "float64" and summary["local_step_dtype"] == "float64"
    assert load_checkpoint(tmp_path / "run" / "checkpoint.pt")["identity"]["local_dtype"] == "float64"


def test_a_default_run_takes_the_step_in_the_models_dtype_as_before(tiny, tmp_path, local_calls):
    # (also true of the code before --local-dtype)
    train(TrainConfig(task=tiny, reg="local-unbiased", backend="backprop", epochs=1, out=str(tmp_path),
                      progress=False))  # fmt: skip
    assert len(local_calls) == 3 and all(c["node"].local_dtype is None for c in local_calls)
    assert all(c["E"].dtype == torch.float32 and c["value"].dtype == torch.float32 for c in local_calls)


def test_the_default_is_the_models_dtype_and_float32_is_the_same_run(tiny, tmp_path, local_calls):
    train(_local(tiny, tmp_path / "default"))
    default_calls = list(local_calls)
    assert default_calls and all(c["node"].local_dtype is None for c in default_calls)
    local_calls.clear()
    train(_local(tiny, tmp_path / "float32", local_dtype="float32"))
    assert all(c["node"].local_dtype is None for c in local_calls)  # the model's dtype: nothing to cast
    a, b = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("default", "float32"))
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    strip = [{k: v for k, v in h.items() if k != "epoch_seconds"} for h in (a["history"][0], b["history"][0])]
    assert strip[0] == strip[1]
    assert a["identity"] == b["identity"] and a["identity"]["local_dtype"] is None  # one run's identity
    summary = json.loads((tmp_path / "float32" / "summary.json").read_text())
    assert summary["local_dtype"] is None and summary["local_step_dtype"] == "float32"
    # float64 computes another (much smaller) estimate from the same start
    local_calls.clear()
    train(_local(tiny, tmp_path / "float64", local_dtype="float64", weight=100.0))  # the calibrated start
    first32, first64 = default_calls[0], local_calls[0]
    assert first32["t"] == first64["t"] and torch.equal(first32["y"], first64["y"])
    assert float(first64["value"]) != float(first32["value"])


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"reg": "error"}, "--local-dtype only applies to the local regularizers"),
        ({"reg": "vanilla"}, "--reg vanilla would ignore it"),
        (
            {"reg": "local-biased", "local_dtype": "float16"},
            r"--local-dtype must be one of \['float32', 'flo",
        ),
        ({"reg": "local-unbiased"}, "--reg local-unbiased with --local-dtype float64 has no calibrated"),
        ({"reg": "local-biased"}, "pass --weight W"),
    ],
)
def test_refused_before_any_work(tiny, tmp_path, kw, message):
    config = TrainConfig(
        task=tiny, epochs=1, out=str(tmp_path / "run"), progress=False, local_dtype="float64"
    )
    with pytest.raises(ValueError, match=message):
        train(dataclasses.replace(config, **kw))
    assert not (tmp_path / "run").exists()


def test_the_neural_sde_tasks_refuse_it(tmp_path):
    config = TrainConfig(task="spiral-sde", kind="sde", reg="local-unbiased", backend="backprop", weight=1.0,
                         epochs=1, out=str(tmp_path / "run"), local_dtype="float64")  # fmt: skip
    with pytest.raises(ValueError, match="--local-dtype is for the neural ODE tasks"):
        train(config)


def test_float64_never_takes_the_float32_weight():
    task = TASKS["mnist1d"]
    _, schedule = make_variant("local-unbiased", task, 10)
    assert schedule(0) == 100.0  # the calibrated float32 start
    _, schedule = make_variant("local-unbiased", task, 10, local_dtype="float64")
    with pytest.raises(ValueError, match="--local-dtype float64 has no calibrated regularization weight"):
        schedule(0)
    _, schedule = make_variant("local-unbiased", task, 10, weight=3e4, local_dtype="float64")
    assert schedule(0) == 3e4 and schedule(9) == pytest.approx(3e3)  # the variant's usual 10x decay
    with pytest.raises(ValueError, match="only applies to the local regularizers"):
        make_variant("error", task, 10, weight=1.0, local_dtype="float64")


def test_train_cli_states_and_checks_it(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(["train", "node", "--help"])
    assert "--local-dtype {float32,float64}" in capsys.readouterr().out
    argv = [
        "train",
        "node",
        "--task",
        "mnist1d",
        "--epochs",
        "1",
        "--no-progress",
        "--out",
        str(tmp_path / "r"),
    ]
    assert cli_main([*argv, "--reg", "error", "--local-dtype", "float64"]) == 2
    assert "--local-dtype only applies to the local regularizers" in capsys.readouterr().err
    assert cli_main([*argv, "--reg", "local-unbiased", "--local-dtype", "float64"]) == 2
    assert "pass --weight W" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_default_out_keeps_a_float64_run_apart():
    import argparse

    from sciml.neural_de.cli import default_out

    args = argparse.Namespace(out=None, kind="node", task="mnist1d", reg="local-unbiased", seed=0)
    assert default_out(args) == "runs/node-mnist1d-local-unbiased-s0"
    assert default_out(argparse.Namespace(**vars(args), local_dtype="float64")).endswith(
        "unbiased-float64-s0"
    )


# ------------------------------------------------------------------------------------------ resume
def test_resume_checks_the_local_dtype(tiny, tmp_path):
    out = tmp_path / "run"
    train(_local(tiny, out, weight=1.0))
    with pytest.raises(
        ValueError, match=r"--resume: .*\(differs in local_dtype: \{'local_dtype': None\} there"
    ):
        train(_local(tiny, out, weight=1.0, local_dtype="float64", resume=True))
    train(_local(tiny, out, weight=1.0, local_dtype="float32", resume=True))  # the same run: nothing to do
    # a checkpoint from before --local-dtype (no such key) is a run in the model's dtype
    state = load_checkpoint(out / "checkpoint.pt")
    del state["identity"]["local_dtype"]
    save_checkpoint(state, out / "checkpoint.pt")
    train(_local(tiny, out, weight=1.0, resume=True))
    with pytest.raises(ValueError, match="differs in local_dtype"):
        train(_local(tiny, out, weight=1.0, local_dtype="float64", resume=True))


# ------------------------------------------------------------------------------------------ bench --reuse
@pytest.mark.parametrize(
    ("stored", "served"),
    [
        ({"local_dtype": None}, {None: True, "float32": True, "float64": False}),
        ({"local_dtype": "float64"}, {None: False, "float32": False, "float64": True}),
        ({}, {None: True, "float32": True, "float64": False}),  # a run from before --local-dtype
    ],
)
def test_reuse_never_takes_a_run_of_another_local_dtype(tmp_path, stored, served):
    from sciml.bench.node import finished_run

    config = TrainConfig(task="mnist1d", reg="local-unbiased", backend="backprop", weight=20.0, epochs=10,
                         out=str(tmp_path))  # fmt: skip
    record = {k: v for k, v in dataclasses.asdict(config).items() if k != "local_dtype"} | stored
    (tmp_path / "metrics.json").write_text(json.dumps({"config": record, "history": []}))
    (tmp_path / "summary.json").write_text("{}")
    for dtype, expected in served.items():
        assert finished_run(dataclasses.replace(config, local_dtype=dtype)) is expected, dtype


def _sweep_args(tiny, out, **kw):
    import argparse

    base = dict(tasks=tiny, sweep_variant="local-unbiased", epochs=1, full=False, weights="1", seeds=1,
                weight_delays=None, jobs=1, tolerance=None, reuse=True, out=str(out),
                sweep_backend="backprop", local_dtype=None)  # fmt: skip
    return argparse.Namespace(**(base | kw))


def test_the_sweep_keys_its_runs_on_the_local_dtype(tiny, tmp_path, monkeypatch):
    from sciml.bench import node

    trained = []
    monkeypatch.setattr(node, "run_trainings", lambda configs, jobs, root: trained.extend(configs) or
                        [train(c) for c in configs])  # fmt: skip
    result = node.run_sweep(_sweep_args(tiny, tmp_path, local_dtype="float64"))
    assert [(c.reg, c.local_dtype) for c in trained] == [("vanilla", None), ("local-unbiased", "float64")]
    runs = tmp_path / "node-sweep-runs"
    assert load_checkpoint(runs / "local-unbiased-backprop-float64-w1-s0" / "checkpoint.pt")["identity"][
        "local_dtype"
    ] == "float64"  # fmt: skip
    assert result["local_dtype"] == "float64" and [r["local_dtype"] for r in result["rows"]] == [
        None,
        "float64",
    ]
    assert (tmp_path / "node-sweep-local-unbiased-backprop-float64.png").is_file()
    trained.clear()  # the same weight in float32: a run of its own, vanilla reused
    result = node.run_sweep(_sweep_args(tiny, tmp_path))
    assert [(c.reg, c.local_dtype) for c in trained] == [("local-unbiased", None)]
    assert result["local_dtype"] is None and result["rows"][1]["local_dtype"] == "float32"
    trained.clear()  # float32 spelled out is the default run; float64 again: both reused
    node.run_sweep(_sweep_args(tiny, tmp_path, local_dtype="float32"))
    node.run_sweep(_sweep_args(tiny, tmp_path, local_dtype="float64"))
    assert trained == []


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--local-dtype", "float64"], "--local-dtype only applies to --sweep"),
        (["--sweep", "--local-dtype", "float64", "--weights", "1"], "--sweep-variant error would ignore it"),
        (
            ["--sweep", "--sweep-variant", "local-unbiased", "--local-dtype", "float64"],
            "no calibrated weight",
        ),
    ],
)
def test_bench_node_refuses_it_where_it_cannot_apply(monkeypatch, tmp_path, capsys, extra, message):
    from sciml.bench import node

    def refuse(*args, **kwargs):
        raise AssertionError("the bench started training")

    monkeypatch.setattr(node, "run_trainings", refuse)
    assert cli_main(["bench", "node", "--tasks", "mnist1d", "--out", str(tmp_path), *extra]) == 2
    assert message in capsys.readouterr().err

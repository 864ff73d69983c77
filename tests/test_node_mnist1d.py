"""The mnist1d task's model: conv stem -> convolutional ODE block -> pooling -> linear head."""

import dataclasses

import torch

from sciml.neural_de.tasks import TASKS, ConcatConvField, MNIST1DTask


def _small(channels: int = 8) -> MNIST1DTask:
    return dataclasses.replace(TASKS["mnist1d"], n_samples=300, channels=channels, rtol=1e-4, atol=1e-4)


def test_the_model_has_the_papers_structure_and_shapes():
    task = TASKS["mnist1d"]
    assert isinstance(task, MNIST1DTask) and task.rtol == 1e-6
    model = task.model("backprop")
    assert isinstance(model.node.field, ConcatConvField) and model.node.method == "tsit5"
    x, labels = task.data()["val"]
    features = model.stem(x[:5, None, :])
    assert features.shape == (5, task.channels, task.length // 2)  # downsampled 40 -> 20 points
    t = torch.tensor(0.3)
    assert model.node.field(t, features).shape == features.shape
    out = model((x[:5], labels[:5]))
    assert out.result.ys.shape == (1, 5, task.channels, task.length // 2)
    assert out.metric_count == 5 and 0 <= out.metric_sum <= 500 and out.loss.ndim == 0


def test_the_field_reads_the_time_channel():
    field = ConcatConvField(4)
    x = torch.randn(2, 4, 10)
    assert not torch.allclose(field(torch.tensor(0.0), x), field(torch.tensor(1.0), x))


def test_a_few_training_steps_lower_the_loss():
    task = _small()
    batch = tuple(t[:32] for t in task.data()["train"])
    torch.manual_seed(0)
    model = task.model("backprop")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = model(batch).loss.item()
    for _ in range(15):
        loss = model(batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert model(batch).loss.item() < 0.8 * before


def test_the_model_is_deterministic_given_the_seed():
    task = _small()
    batch = tuple(t[:16] for t in task.data()["train"])
    outs = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        outs.append(task.model("backprop")(batch))
    assert torch.equal(outs[0].result.ys, outs[1].result.ys)
    assert outs[0].result.solution.stats.nfe == outs[1].result.solution.stats.nfe
    assert not torch.equal(outs[0].result.ys, outs[2].result.ys)


def test_the_sweep_reuses_only_finished_runs_with_the_same_configuration(tmp_path):
    import json

    from sciml.bench.node import finished_run
    from sciml.neural_de.training import TrainConfig

    config = TrainConfig(task="mnist1d", reg="error", seed=1, epochs=10, weight=3.0, out=str(tmp_path))
    stored = dataclasses.asdict(config) | {"backend": "backprop", "lr": 3e-3}
    (tmp_path / "metrics.json").write_text(json.dumps({"config": stored, "history": []}))
    assert not finished_run(config)  # no summary.json: the run did not finish
    (tmp_path / "summary.json").write_text("{}")
    assert finished_run(config)
    assert not finished_run(dataclasses.replace(config, weight=1.0))
    assert not finished_run(dataclasses.replace(config, seed=2))

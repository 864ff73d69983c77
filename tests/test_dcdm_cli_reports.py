"""User reports on ``sciml dcdm``: a diverging run ends in one line naming --lr and the checkpoint kept,
a new run refuses an --out that holds one, --resume names each differing option (and allows the ones that
do not change the result, bit for bit), and an unreadable --model file is named as such."""

import dataclasses
import json

import pytest
import torch

from sciml import cli
from sciml.dcdm import train as train_module
from sciml.dcdm.train import TrainConfig, TrainingDiverged, _resume_differences, train

TINY = dict(size=16, coarsest=4, layouts=2, rhs_per_layout=2, lanczos_steps=10, batch_size=2)
TINY_FLAGS = [
    "--size", "16", "--coarsest", "4", "--layouts", "2", "--rhs-per-layout", "2", "--lanczos-steps", "10",
    "--batch-size", "2", "--no-progress",
]  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One training-set cache for the module (the tiny set is generated once)."""
    return str(tmp_path_factory.mktemp("cache"))


def sciml(capsys, *args):
    """Run ``sciml ARGS`` in this process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def dcdm_train(capsys, out, cache, *flags):
    return sciml(capsys, "dcdm", "train", "--out", out, "--cache-dir", cache, *TINY_FLAGS, *flags)


# ---------------------------------------------------------------- 1: a diverging run
def test_diverging_training_is_one_line_naming_lr_and_what_was_kept(tmp_path, cache, capsys):
    flags = ("--steps", "40", "--lr", "1000", "--validate-layouts", "0")
    # no checkpoint written yet: nothing kept, and the folder can be trained into again
    out = tmp_path / "none"
    rc, _, err = dcdm_train(capsys, out, cache, *flags)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "became nan" in err and "--lr 1000 is likely too high" in err, err
    assert "nothing was kept" in err and not (out / "checkpoint.pt").exists(), err
    # a checkpoint every step: the message names it and says what --resume would do
    out = tmp_path / "kept"
    rc, _, err = dcdm_train(capsys, out, cache, *flags, "--checkpoint-every", "1")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "--lr 1000 is likely too high" in err, err
    step = torch.load(out / "checkpoint.pt", weights_only=True)["step"]
    assert f"kept {out / 'checkpoint.pt'} from step {step}" in err and "--resume" in err, err
    assert not (out / "model.pt").exists()
    # from Python it is still a FloatingPointError
    config = TrainConfig(**TINY, steps=40, lr=1000.0, validate_layouts=0)
    with pytest.raises(FloatingPointError, match="likely too high"):
        train(config, tmp_path / "py", progress=False, cache_dir=cache)
    assert issubclass(TrainingDiverged, FloatingPointError) and issubclass(TrainingDiverged, ValueError)


# ---------------------------------------------------------------- 2: an --out that holds a run
def test_train_refuses_an_out_that_already_holds_a_run(tmp_path, cache, capsys):
    out = tmp_path / "run"
    rc, _, err = dcdm_train(capsys, out, cache, "--steps", "2", "--validate-layouts", "0")
    assert rc == 0, err
    before = {name: (out / name).read_bytes() for name in ("checkpoint.pt", "model.pt", "model.json")}
    rc, _, err = dcdm_train(capsys, out, cache, "--steps", "3", "--validate-layouts", "0")
    assert rc == 2 and "already holds a run" in err and "--resume" in err and "--out" in err, err
    assert {name: (out / name).read_bytes() for name in before} == before  # nothing overwritten
    # a folder holding only a model (say, copied there) is refused too
    other = tmp_path / "model-only"
    other.mkdir()
    (other / "model.pt").write_bytes(before["model.pt"])
    rc, _, err = dcdm_train(capsys, other, cache, "--steps", "2", "--validate-layouts", "0")
    assert rc == 2 and "already holds a run (model.pt)" in err, err


# ---------------------------------------------------------------- 3: --resume with other options
def test_resume_names_each_differing_option_and_advises_another_out(tmp_path, cache, capsys):
    out = tmp_path / "run"
    assert dcdm_train(capsys, out, cache, "--steps", "2", "--validate-layouts", "0")[0] == 0
    rc, _, err = dcdm_train(
        capsys, out, cache, "--resume", "--steps", "2", "--validate-layouts", "0", "--lr", "0.01",
        "--threads", "1",
    )  # fmt: skip
    assert rc == 2, err
    assert "--lr: stored 0.003, given 0.01" in err and "--threads: stored 2, given 1" in err, err
    assert "another --out" in err and "drop --resume" not in err and "'ndim'" not in err, err


def test_resume_with_other_checkpoint_cadence_and_validation_is_bit_identical(
    tmp_path, cache, capsys, monkeypatch
):
    flags = ["--steps", "8", "--checkpoint-every", "3", "--validate-layouts", "0"]
    assert dcdm_train(capsys, tmp_path / "whole", cache, *flags)[0] == 0
    # interrupt a second run just after its first checkpoint (step 3)
    real_save = train_module.save_checkpoint

    def save_then_interrupt(state, path):
        real_save(state, path)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_interrupt)
    assert dcdm_train(capsys, tmp_path / "cut", cache, *flags)[0] == 130
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert torch.load(tmp_path / "cut" / "checkpoint.pt", weights_only=True)["step"] == 3
    # resume it with another checkpoint cadence and a final validation: allowed, and the same run
    real_loss, batches = train_module.scale_invariant_loss, []
    monkeypatch.setattr(train_module, "scale_invariant_loss", lambda *a: batches.append(1) or real_loss(*a))
    rc, out, err = dcdm_train(
        capsys, tmp_path / "cut", cache, "--resume", "--steps", "8", "--checkpoint-every", "5",
        "--validate-layouts", "1",
    )  # fmt: skip
    assert rc == 0 and len(batches) == 5, err  # it went on from step 3
    whole = json.loads((tmp_path / "whole" / "model.json").read_text())
    cut = json.loads((tmp_path / "cut" / "model.json").read_text())
    assert len(cut["loss_history"]) == 8 and cut["loss_history"] == whole["loss_history"]
    assert cut["validation_iterations"] and cut["train_config"]["checkpoint_every"] == 5
    a = torch.load(tmp_path / "whole" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_comparison_resolves_defaults_and_ignores_fields_the_architecture_does_not_use():
    def stored(**fields):
        return dataclasses.asdict(TrainConfig(**fields))

    assert _resume_differences(stored(size=24), TrainConfig(size=24, coarsest=16, checkpoint_every=7)) == []
    paper = dict(architecture="paper", size=24)
    assert _resume_differences(stored(**paper), TrainConfig(**paper, hidden=3, cycle="V")) == []
    assert _resume_differences(None, TrainConfig(size=24))  # not a training checkpoint: refused
    (line,) = _resume_differences(stored(size=24, seed=1), TrainConfig(size=24, seed=2))
    assert line == "--seed: stored 1, given 2"


# ---------------------------------------------------------------- 4: an unreadable --model file
@pytest.mark.parametrize(
    "kind,expected",
    [("empty", "is empty (0 bytes)"), ("junk", "cannot be read by torch.load"), ("folder", "is a folder")],
)
def test_unreadable_model_file_is_named_without_advice_to_delete_it(kind, expected, tmp_path, capsys):
    path = tmp_path / "model.pt"
    if kind == "folder":
        path.mkdir()
    else:
        path.write_bytes(b"" if kind == "empty" else b"not a torch file\n" * 4)
    for action in (["info"], ["eval", "--sizes", "8"], ["export", tmp_path / "x.pt"]):
        rc, _, err = sciml(capsys, "dcdm", *action, "--model", path)
        assert rc == 2 and f"--model {path} {expected}" in err, err
        assert "not a usable sciml DCDM model file" in err and "delete" not in err, err
        assert "Traceback" not in err and ": ." not in err, err
    assert path.exists()

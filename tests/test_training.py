"""Training really trains: a tiny spec learns a synthetic task; same seed, same numbers; NaN stops cleanly."""
import io
import time

import pytest
import torch

from fmnist.builder.spec import load_spec
from fmnist.hparams import resolve
from fmnist.runner.augment import ERASE_AREA, crop_and_flip, random_erase
from fmnist.datasets.splits import Splits
from fmnist.runner.models import make_model
from fmnist.runner.mixing import mix_batch
from fmnist.runner.trainer import NonFiniteLoss, Trainer
from tests.conftest import only_run

SYNTHETIC_SPEC = """  # for the 12x12 synthetic images below
name: tiny
input: [1, 12, 12]
layers: [conv 3x3x8, relu, pool 2x2, fc 10]
"""


def synthetic_splits(n_train=2000, n_eval=500, seed=0) -> Splits:
    """Class c is a bright 3x3 square at one of ten places on a noisy 12x12 image: learnable, not trivial."""
    generator = torch.Generator().manual_seed(seed)
    places = [(r, c) for r in (1, 5, 8) for c in (1, 5, 8)] + [(4, 4)]

    def make(n):
        labels = torch.randint(0, 10, (n,), generator=generator)
        images = torch.randint(0, 90, (n, 1, 12, 12), generator=generator)
        for index, label in enumerate(labels.tolist()):
            row, col = places[label]
            images[index, 0, row:row + 3, col:col + 3] = 230
        return images.to(torch.uint8), labels

    (train_x, train_y), (val_x, val_y), (test_x, test_y) = make(n_train), make(n_eval), make(n_eval)
    return Splits(train_x, train_y, val_x, val_y, test_x, test_y, tuple(f"class {n}" for n in range(10)))


def tiny_trainer(write_spec, **flags):
    spec = load_spec(write_spec(SYNTHETIC_SPEC))
    hparams = resolve(spec.train, {"batch_size": 64, "lr": 1e-2, **flags})
    return Trainer(make_model(spec, hparams), synthetic_splits(), hparams, torch.device("cpu"))


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "sigmoid-ce"])
def test_a_tiny_spec_learns_the_synthetic_task(write_spec, loss):
    trainer = tiny_trainer(write_spec, loss=loss)
    before = trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y).accuracy
    for epoch in range(1, 4):
        trainer.train_epoch(epoch)
    after = trainer.evaluate(trainer.splits.test_x, trainer.splits.test_y)
    assert before < 0.3
    assert after.accuracy > 0.9


@pytest.mark.parametrize("loss", ["softmax", "sigmoid", "sigmoid-ce"])
def test_same_seed_gives_identical_metrics(write_spec, loss):
    runs = []
    for _ in range(2):
        trainer = tiny_trainer(write_spec, seed=7, loss=loss, augment=True)
        runs.append([trainer.train_epoch(1), trainer.train_epoch(2), trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y).loss])
    assert runs[0] == runs[1]
    other = tiny_trainer(write_spec, seed=8, loss=loss, augment=True)
    assert other.train_epoch(1) != runs[0][0]


def test_nan_loss_stops_and_says_where(write_spec):
    trainer = tiny_trainer(write_spec, lr=1e30)
    with pytest.raises(NonFiniteLoss, match=r"the loss became NaN/inf at epoch 1, step \d+ of 32 \(try a lower --lr\)"):
        trainer.train_epoch(1)


def test_last_batch_of_one_image_is_dropped(write_spec):
    trainer = tiny_trainer(write_spec, batch_size=999)
    assert trainer.steps_per_epoch() == 3  # 2000 = 999 + 999 + 2
    trainer = tiny_trainer(write_spec, batch_size=1999)
    assert trainer.steps_per_epoch() == 1  # the 1 image left over would break batch norm


def test_augmentation_shifts_and_flips_each_image_on_its_own():
    images = torch.randint(1, 255, (64, 1, 28, 28), dtype=torch.uint8)
    out = crop_and_flip(images, torch.Generator().manual_seed(0), pad=4)
    assert out.shape == images.shape and out.dtype == torch.uint8
    changed = (out != images).flatten(1).any(1)
    assert changed.float().mean() > 0.9  # nearly every image moved (1 in 162 keeps offset 0 and no flip)
    for original, augmented in zip(images, out):  # each output is its image, shifted (and maybe mirrored)
        found = False
        for candidate in (original, original.flip(-1)):
            padded = torch.nn.functional.pad(candidate, (4, 4, 4, 4))
            found |= any(torch.equal(padded[:, dy:dy + 28, dx:dx + 28], augmented) for dy in range(9) for dx in range(9))
        assert found


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_every_optimizer_learns_the_synthetic_task(write_spec, optimizer):
    lr = {"adam": 1e-2, "adamw": 1e-2, "sgd": 0.1}[optimizer]
    trainer = tiny_trainer(write_spec, optimizer=optimizer, lr=lr, nesterov=True, schedule="onecycle", num_epochs=3)
    assert type(trainer.optimizer).__name__.lower() == optimizer
    for epoch in range(1, 4):
        trainer.train_epoch(epoch)
    assert trainer.evaluate(trainer.splits.test_x, trainer.splits.test_y).accuracy > 0.9


def test_schedules_shape_the_learning_rate_per_step(write_spec):
    steps = 32  # 2000 images / 64 per step
    seen = {}
    for schedule in ("constant", "cosine", "onecycle"):
        trainer = tiny_trainer(write_spec, schedule=schedule, warmup_epochs=1 if schedule != "onecycle" else 0, num_epochs=4)
        rates = []
        for _ in range(4 * steps):
            rates.append(trainer.optimizer.param_groups[0]["lr"])
            trainer.optimizer.step()
            trainer.schedule.step()
        seen[schedule] = rates
    lr = 1e-2
    assert seen["constant"][0] == pytest.approx(lr / steps) and seen["constant"][steps:] == [pytest.approx(lr)] * 3 * steps
    assert seen["cosine"][steps] == pytest.approx(lr) and seen["cosine"][-1] < lr * 0.01
    assert seen["onecycle"][0] == pytest.approx(lr / 25)
    assert max(seen["onecycle"]) == pytest.approx(lr, rel=0.01) and seen["onecycle"][-1] < lr * 0.01


def test_label_smoothing_raises_the_loss_of_confident_answers():
    from fmnist.runner.losses import LOSSES

    logits = torch.tensor([[10.0, -10.0, -10.0]])
    labels = torch.tensor([0])
    for loss in LOSSES.values():
        assert loss(logits, labels, 0.1) > loss(logits, labels, 0.0) + 0.01


def test_schedule_and_optimizer_state_survive_a_resume(write_spec):
    first = tiny_trainer(write_spec, optimizer="sgd", lr=0.1, schedule="cosine", num_epochs=3)
    first.train_epoch(1)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)  # through bytes, as a checkpoint on disk: no tensors shared
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    second = tiny_trainer(write_spec, optimizer="sgd", lr=0.1, schedule="cosine", num_epochs=3)
    second.load_state_dict(state)
    assert second.optimizer.param_groups[0]["lr"] == first.optimizer.param_groups[0]["lr"] < 0.1
    assert second.train_epoch(2) == first.train_epoch(2)


def test_progress_bar_on_a_terminal_and_a_plain_line_now_and_then_in_a_pipe(write_spec, monkeypatch):
    from rich.console import Console

    from fmnist.runner.progress import epoch_progress

    trainer = tiny_trainer(write_spec)
    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=120)
    with epoch_progress(console, 1, 3, trainer.steps_per_epoch()) as on_progress:
        assert on_progress is not None
        on_progress(16, 0.75, 12_345.0)
    shown = terminal.getvalue()
    assert "epoch 1/3" in shown and "16/32" in shown and "loss 0.7500" in shown and "12,345 img/s" in shown
    piped = io.StringIO()
    with epoch_progress(Console(file=piped, force_terminal=False), 1, 3, 32) as on_progress:
        on_progress(4, 0.9, 100.0)  # within the interval (30 s): nothing per step
    assert piped.getvalue() == ""
    monkeypatch.setenv("FMNIST_PROGRESS_EVERY_S", "0.000001")
    with epoch_progress(Console(file=piped, force_terminal=False, width=200), 1, 3, 32) as on_progress:
        time.sleep(0.001)
        on_progress(16, 0.75, 12_345.0)
    assert piped.getvalue() == "epoch 1/3: step 16/32 (50%) loss 0.7500 12,345 img/s\n"
    terminal = io.StringIO()
    with epoch_progress(Console(file=terminal, force_terminal=True, width=120), 2, 5, 32, "trial 7 · ") as on_progress:
        on_progress(8, 0.5, 100.0)  # a search trial's bar says which trial it is
    assert "trial 7 · epoch 2/5" in terminal.getvalue()


def test_early_stopping_ends_the_run_and_says_why(cli, write_spec, real_data, tmp_path):
    import json

    spec = write_spec("name: still\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\ntrain: {patience: 2}\n")
    code, out, err = cli("run", spec, "--train-limit", "300", "--num-epochs", "10", "--lr", "1e-12", "--clip-grad", "1.0",
                         "--out", tmp_path / "runs")
    assert (code, err) == (0, "")
    run = only_run(tmp_path / "runs")
    summary = json.loads((run / "summary.json").read_text())
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2, 3]  # a learning rate of 1e-12 never improves on epoch 1
    assert summary["stopped"] == "early stop after epoch 3: no validation improvement for 2 epoch(s) since epoch 1 (--patience 2)"
    assert summary["stopped"] in out and summary["hparams"]["clip_grad"] == 1.0
    assert len((run / "metrics.csv").read_text().splitlines()) == 4


def test_onecycle_is_torchs_and_resumes_where_it_left_off(write_spec):
    trainer = tiny_trainer(write_spec, schedule="onecycle", num_epochs=2)
    assert type(trainer.schedule.inner).__name__ == "OneCycleLR"
    betas = []
    for _ in range(20):
        betas.append(trainer.optimizer.param_groups[0]["betas"][0])
        trainer.optimizer.step()
        trainer.schedule.step()
    assert betas[0] == pytest.approx(0.95) and betas[-1] < 0.95  # momentum cycles against the learning rate
    state = trainer.state_dict()
    again = tiny_trainer(write_spec, schedule="onecycle", num_epochs=2)
    again.load_state_dict(state)
    trainer.optimizer.step(), trainer.schedule.step()
    again.optimizer.step(), again.schedule.step()
    assert again.optimizer.param_groups[0]["lr"] == trainer.optimizer.param_groups[0]["lr"]


def test_plateau_halves_the_learning_rate_when_validation_stalls(write_spec):
    trainer = tiny_trainer(write_spec, schedule="plateau", num_epochs=5)
    lr = trainer.optimizer.param_groups[0]["lr"]
    for accuracy in (0.5, 0.6, 0.6):  # better, then one epoch no better: not yet
        trainer.end_epoch(accuracy)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(lr)
    state = trainer.state_dict()
    again = tiny_trainer(write_spec, schedule="plateau", num_epochs=5)
    again.load_state_dict(state)
    again.end_epoch(0.6)  # the second epoch in a row without a better one, counted across the resume
    assert again.optimizer.param_groups[0]["lr"] == pytest.approx(lr / 2)


def test_ema_weights_are_the_ones_judged_and_resumed(write_spec):
    trainer = tiny_trainer(write_spec, ema=0.9, num_epochs=2)
    trainer.train_epoch(1)
    averaged, trained = trainer.eval_model.state_dict(), trainer.model.state_dict()
    assert any(not torch.equal(averaged[key], trained[key]) for key in trained)  # a real average, not a copy
    judged = trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y).accuracy
    state = trainer.state_dict()
    again = tiny_trainer(write_spec, ema=0.9, num_epochs=2)
    again.load_state_dict(state)
    assert again.evaluate(again.splits.val_x, again.splits.val_y).accuracy == judged
    assert all(torch.equal(again.eval_model.state_dict()[key], averaged[key]) for key in averaged)


def test_tensorboard_log_reads_back_with_tensorboards_own_reader(cli, write_spec, real_data, tmp_path):
    import json

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    spec = write_spec("name: tb\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\n")
    quick = ("--train-limit", "640", "--num-epochs", "2", "--seed", "3")
    code, _, err = cli("run", spec, *quick, "--log", "tensorboard", "--out", tmp_path / "logged")
    assert (code, err) == (0, "")
    run = only_run(tmp_path / "logged")
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "lr", "train/step_loss"} <= set(scalars)
    assert [e.step for e in events.Scalars("val/acc")] == [1, 2]
    assert len(events.Scalars("train/step_loss")) == 2 * 5  # 640 images / 128 per step, two epochs
    summary = json.loads((run / "summary.json").read_text())
    assert [round(e.value, 4) for e in events.Scalars("val/acc")] == [round(e["val_acc"], 4) for e in summary["epochs"]]
    assert events.Graph() is not None  # the model's graph
    hparams = EventAccumulator(str(run / "tensorboard"))  # the hparams summary sits beside the scalars
    hparams.Reload()
    assert "_hparams_/experiment" in hparams.Tags()["tensors"] or any("hparam" in t for t in hparams.Tags()["scalars"])
    code, _, _ = cli("run", spec, *quick, "--out", tmp_path / "plain")  # logging does not change the run
    plain = json.loads((only_run(tmp_path / "plain") / "summary.json").read_text())
    assert [e["val_acc"] for e in plain["epochs"]] == [e["val_acc"] for e in summary["epochs"]]


def test_test_time_flip_averages_the_logits_of_each_image_and_its_mirror(write_spec):
    from fmnist.runner.evaluation import EvalSettings, evaluate
    from fmnist.runner.inputs import model_input

    trainer = tiny_trainer(write_spec, tta=True)
    trainer.train_epoch(1)
    images, labels = trainer.splits.val_x, trainer.splits.val_y
    model = trainer.eval_model.eval()
    with torch.no_grad():
        x = model_input(images)
        expected = ((model(x) + model(x.flip(3))) / 2).argmax(1)
        plain = model(x).argmax(1)
    flipped = trainer.evaluate(images, labels)
    assert torch.equal(flipped.predictions, expected)
    assert flipped.accuracy == pytest.approx((expected == labels).float().mean().item())
    assert torch.equal(evaluate(model, images, labels, EvalSettings("softmax", torch.device("cpu"))).predictions, plain)


def test_random_erasing_fills_one_rectangle_of_random_pixels_in_chosen_images():
    images = torch.full((400, 3, 28, 28), 7, dtype=torch.uint8)
    assert torch.equal(random_erase(images, torch.Generator().manual_seed(0), 0.0), images)
    erased = random_erase(images, torch.Generator().manual_seed(0), 0.5)
    assert torch.equal(erased, random_erase(images, torch.Generator().manual_seed(0), 0.5))  # the generator decides
    changed = (erased != 7).any(dim=1)  # (N, H, W): where the rectangle is
    touched = changed.flatten(1).any(1)
    assert 0.4 < touched.float().mean() < 0.6
    for image in changed[touched][:50]:
        rows, columns = image.any(1).nonzero().flatten(), image.any(0).nonzero().flatten()
        box = (rows[-1] - rows[0] + 1) * (columns[-1] - columns[0] + 1)
        assert ERASE_AREA[0] * 784 * 0.5 <= box <= ERASE_AREA[1] * 784 * 1.5  # one rectangle, of the drawn size (rounded)
        assert image.sum() > 0.9 * box  # filled with random pixels: only a 7 drawn by chance looks untouched
    assert erased.dtype == torch.uint8 and erased[touched].float().std() > 30


def test_mixup_and_cutmix_blend_the_batch_and_say_in_what_share():
    generator = torch.Generator().manual_seed(0)
    inputs, labels = torch.rand(16, 1, 12, 12, generator=generator), torch.arange(16)
    mixed = mix_batch(inputs, labels, {"mixup": 0.4}, generator)
    partner = mixed.partner_labels  # labels are 0..15, so the partner's label is its index
    assert 0 < mixed.share < 1
    assert torch.allclose(mixed.inputs, inputs * mixed.share + inputs[partner] * (1 - mixed.share))
    cut = mix_batch(inputs, labels, {"cutmix": 1.0}, generator)
    from_partner = (cut.inputs == inputs[cut.partner_labels]) & (cut.inputs != inputs)
    kept = 1 - from_partner[[n for n in range(16) if cut.partner_labels[n] != n][0]].float().mean().item()
    assert cut.share == pytest.approx(kept, abs=1e-6)  # the share is the area actually kept
    others = [n for n in range(16) if cut.partner_labels[n] != n]  # an image may draw itself as its partner
    assert all(torch.equal(from_partner[others[0]], from_partner[n]) for n in others)  # one rectangle for the batch
    both = {mix_batch(inputs, labels, {"mixup": 0.4, "cutmix": 1.0}, generator).inputs.eq(inputs).any().item()
            for _ in range(20)}
    assert both == {True, False}  # cutmix keeps some pixels, mixup none: each batch uses one of them


def test_erasing_and_mixing_train_and_resume_exactly(write_spec):
    levers = {"erase": 0.5, "mixup": 0.2, "cutmix": 1.0, "num_epochs": 3}
    first = tiny_trainer(write_spec, **levers)
    first.train_epoch(1)
    saved = io.BytesIO()
    torch.save(first.state_dict(), saved)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    uninterrupted = first.train_epoch(2)
    second = tiny_trainer(write_spec, **levers)
    second.load_state_dict(state)  # also torch's global generator, which the mixing draws from
    assert second.train_epoch(2) == uninterrupted  # the draws (rectangles, shares, partners) resume too
    first.train_epoch(3)
    assert first.evaluate(first.splits.test_x, first.splits.test_y).accuracy > 0.6  # still learns the task (chance: 0.1)
    plain = tiny_trainer(write_spec, num_epochs=3)
    assert plain.train_epoch(1)[0] < tiny_trainer(write_spec, **levers).train_epoch(1)[0]  # a harder task to fit


def test_a_run_with_the_levers_says_so_and_records_them(cli, real_data, tmp_path):
    import json

    from tests.conftest import SPECS

    code, out, err = cli("run", SPECS / "cnn_4.yaml", "--train-limit", "300", "--num-epochs", "1", "--augment",
                         "--erase", "0.5", "--mixup", "0.2", "--cutmix", "1", "--out", tmp_path)
    assert (code, err) == (0, "")
    assert "augment crop ±1 + flip + erase 0.5 + mixup 0.2 + cutmix 1 ·" in out
    hparams = json.loads((only_run(tmp_path) / "summary.json").read_text())["hparams"]
    assert (hparams["erase"], hparams["mixup"], hparams["cutmix"]) == (0.5, 0.2, 1.0)

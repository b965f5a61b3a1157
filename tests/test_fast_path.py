"""The fast path computes what the plain path computes; the CUDA levers run where there is a GPU; the benchmark runs."""
import json
import subprocess
import sys

import pytest
import torch

from fmnist.builder.spec import load_spec
from fmnist.hparams import resolve
from fmnist.runner import speedups
from fmnist.runner.models import make_model
from fmnist.runner.trainer import Trainer
from tests.conftest import ROOT
from tests.test_training import SYNTHETIC_SPEC, synthetic_splits

BN_SPEC = """
name: tiny_bn
input: [1, 12, 12]
layers: [conv 3x3x8, bn, relu, pool 2x2, conv 3x3x16, bn, relu, fc 32, dropout 0.3, relu, fc 10]
"""


def trajectory(write_spec, text, device, steps=3, **speed):
    spec = load_spec(write_spec(text))
    hparams = resolve(spec.train, {"batch_size": 64, "lr": 3e-3, "seed": 5})
    trainer = Trainer(make_model(spec, hparams), synthetic_splits().to(device), hparams, torch.device(device), **speed)
    losses = [trainer.train_epoch(epoch) for epoch in range(1, steps + 1)]
    return losses, trainer.evaluate(trainer.splits.val_x, trainer.splits.val_y)


@pytest.mark.parametrize("text", [SYNTHETIC_SPEC, BN_SPEC])
def test_fast_and_plain_paths_give_the_same_trajectory_on_cpu(write_spec, text):
    fast, fast_val = trajectory(write_spec, text, "cpu", fast=True)
    plain, plain_val = trajectory(write_spec, text, "cpu", fast=False)
    assert [loss for loss, _ in fast] == pytest.approx([loss for loss, _ in plain], rel=1e-4, abs=1e-5)
    assert [acc for _, acc in fast] == pytest.approx([acc for _, acc in plain], abs=0.002)
    assert fast_val.loss == pytest.approx(plain_val.loss, rel=1e-4)


def test_bf16_learns_as_well_within_noise(write_spec):
    bf16 = trajectory(write_spec, BN_SPEC, "cpu", precision="bf16")[0][-1][1]  # last epoch's training accuracy
    fp32 = trajectory(write_spec, BN_SPEC, "cpu")[0][-1][1]
    assert bf16 > 0.85 and abs(bf16 - fp32) < 0.05


def test_cpu_allocator_tuning_applies_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("the allocator lever is glibc's")
    assert speedups.tune_cpu_allocator() is True


@pytest.mark.parametrize("flags, precision, cpu_class", [
    ("fpu sse avx2 avx512f avx512_bf16", "bf16", "AVX-512 with bf16"),  # AMD EPYC (Zen 4), Intel Cooper Lake
    ("fpu sse avx2 avx512f amx_bf16 amx_tile", "bf16", "AVX-512"),  # Intel Sapphire Rapids: AMX does bf16
    ("fpu sse avx2 avx512f", "fp32", "AVX-512"),  # bf16 would be emulated, slower than fp32
    ("fpu sse avx2", "fp32", "AVX2"),
    ("", "fp32", "other"),  # no /proc/cpuinfo (not Linux)
])
def test_auto_precision_is_bf16_only_where_the_cpu_does_it_natively(monkeypatch, flags, precision, cpu_class):
    from fmnist import machine

    monkeypatch.setattr(machine, "_cpuinfo", lambda: ("processor\t: 0", f"flags\t\t: {flags}") if flags else ())
    assert speedups.check_precision("auto", torch.device("cpu")) == precision
    assert machine.cpu_class() == cpu_class
    assert speedups.speed_settings(False, "bf16", torch.device("cpu")) == {"fast": False, "precision": "fp32"}


def test_unknown_precision_is_refused():
    from fmnist.errors import UsageError

    with pytest.raises(UsageError, match="--precision fp8: use one of auto, fp32, bf16"):
        speedups.check_precision("fp8", torch.device("cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fast_path_matches_the_plain_path(write_spec):
    fast, fast_val = trajectory(write_spec, BN_SPEC, "cuda", fast=True)
    plain, plain_val = trajectory(write_spec, BN_SPEC, "cuda", fast=False)
    assert [loss for loss, _ in fast] == pytest.approx([loss for loss, _ in plain], rel=2e-2, abs=2e-3)  # cuDNN picks other kernels
    assert abs(fast_val.accuracy - plain_val.accuracy) < 0.03


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_learns(write_spec):
    assert trajectory(write_spec, BN_SPEC, "cuda", precision="bf16")[0][-1][1] > 0.85


def test_benchmark_runs_on_a_tiny_setting(real_data, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "epoch_speed.py"), str(ROOT / "specs" / "cnn_4.yaml"),
                             "--train-limit", "256", "--epochs", "1", "--workers", "0", "--json", str(tmp_path / "b.json")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    (row,) = report["results"]
    assert f"| CNN_4 | 256 | {row['gflop_per_epoch']:,} | plain, 0 workers |" in result.stdout
    peaks = report["machine"]["peak_gflops"]
    assert 0 < peaks["fp32"] and 0 < peaks["bf16"] and "measured peaks" in result.stdout
    # CNN_4 trains 2.86 GFLOP per step of 128 images (FlopCounterMode: forward and backward)
    assert row["gflop_per_epoch"] == pytest.approx(2.86 * 256 / 128, rel=0.02)
    share = row["gflop_per_epoch"] * 1e9 / row["fmnist fp32"]["epoch_s"] / 1e9 / peaks["fp32"]
    assert row["fmnist fp32"]["share_of_peak"] == pytest.approx(share, rel=0.02)  # (from figures rounded for JSON)
    assert f"({100 * row['fmnist fp32']['share_of_peak']:.0f}%)" in result.stdout
    assert row["fmnist fp32"]["epoch_s"] > 0 and row["plain, 0 workers"]["epoch_s"] > 0
    assert row["speedup"]["fp32"] == pytest.approx(row["plain, 0 workers"]["epoch_s"] / row["fmnist fp32"]["epoch_s"], rel=0.02)


def test_the_levers_benchmark_measures_each_lever_against_the_fast_path(real_data, tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "levers.py"), str(ROOT / "specs" / "cnn_4.yaml"),
                             "--train-limit", "256", "--epochs", "1", "--rounds", "1", "--variants", "fused-adam",
                             "relu-after-pool", "--json", str(tmp_path / "l.json")],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    rows = json.loads((tmp_path / "l.json").read_text())["results"]
    assert set(rows) == {"fast path", "fused-adam", "relu-after-pool"} and rows["fast path"]["ratio_to_fast_path"] == 1.0
    for name, row in rows.items():
        # (epochs of 256 images take a few hundredths of a second: the JSON's rounding to 1 ms is a few %)
        assert row["ratio_to_fast_path"] == pytest.approx(row["epoch_s"] / rows["fast path"]["epoch_s"], rel=0.06)
        assert f"| {name} | {row['epoch_s']:.3f} |" in result.stdout


def test_relu_after_pool_is_the_same_function_and_gradient():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from levers import relu_after_pool
    finally:
        sys.path.pop(0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 13 * 13, 10))
    moved = relu_after_pool(model)
    assert [type(m).__name__ for m in moved][1:3] == ["MaxPool2d", "ReLU"]
    images = torch.randn(8, 1, 28, 28)
    model(images).sum().backward()
    expected = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    out = moved(images)
    assert torch.equal(out, model(images))
    out.sum().backward()
    assert all(torch.equal(a, p.grad) for a, p in zip(expected, moved.parameters()))

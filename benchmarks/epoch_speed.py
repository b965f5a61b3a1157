"""Epoch speed: a plain PyTorch loop written the usual way against fmnist's runner, in one process, same settings.

(a) plain: torchvision FashionMNIST + per-sample transforms (RandomCrop(28, padding=crop pad), RandomHorizontalFlip,
    ToTensor) + DataLoader + .to(device) per batch, eager fp32, Adam;
(b) fmnist: the runner's Trainer (data resident on the device as uint8, vectorised augmentation, fast path).
Prints epoch seconds (median of the timed epochs), the ratio, images/s and peak memory, as a table and as JSON; and
how far each path is from the machine's limit: the measured fp32 and bf16 matmul peaks (limits.py) and each path's
training FLOPs per second as a share of the peak of its precision (the plain loop is fp32).

    python benchmarks/epoch_speed.py specs/cnn_4.yaml specs/cnn_1.yaml          # CPU, full 50k epochs
    python benchmarks/epoch_speed.py specs/cnn_4.yaml --train-limit 512 --epochs 1   # a quick smoke run
"""
from __future__ import annotations

import argparse
import gzip
import json
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Subset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from fmnist.builder.spec import load_spec
from fmnist.machine import cpu_class, cpu_model
from fmnist.hparams import resolve
from fmnist.datasets.choice import DataChoice
from fmnist.datasets.loading import load_data, plan_data
from fmnist.datasets.fashion_mnist import FILES, locate, read_dataset
from fmnist.datasets.named import DATASETS
from fmnist.datasets.splits import stratified_split

VALIDATION_PER_CLASS = DATASETS["fashion-mnist"].val_per_class
from fmnist.runner.device import resolve_device
from fmnist.runner.models import make_model
from fmnist.runner.trainer import Trainer

from limits import PEAK_SIZES, measured_peaks, share, step_flops


def reset_peak_memory(device: torch.device) -> None:
    """Linux lets a process reset its peak RSS (VmHWM); CUDA keeps its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def torchvision_root(source) -> Path:
    """torchvision's FashionMNIST wants <root>/FashionMNIST/raw/<uncompressed files>; make one from what we found."""
    root = Path(tempfile.mkdtemp(prefix="fmnist-bench-"))
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for key, spec in FILES.items():
        path = source.paths[key]
        with (gzip.open(path) if path.suffix == ".gz" else open(path, "rb")) as stream, open(raw / spec.name, "wb") as out:
            shutil.copyfileobj(stream, out)
    return root


def plain_epochs(spec, hparams, device, root, train_indices, epochs, workers):
    """The usual loop: Dataset + per-sample transforms + DataLoader + .to(device) per batch."""
    chain = [transforms.RandomCrop(28, padding=hparams.crop_pad), transforms.RandomHorizontalFlip()] if hparams.augment else []
    dataset = FashionMNIST(str(root), train=True, transform=transforms.Compose([*chain, transforms.ToTensor()]))
    loader = DataLoader(Subset(dataset, train_indices.tolist()), batch_size=hparams.batch_size, shuffle=True,
                        num_workers=workers, persistent_workers=workers > 0)
    model = make_model(spec, hparams).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=hparams.lr, weight_decay=hparams.rs)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    for _ in range(epochs):
        model.train()
        started = time.perf_counter()
        for images, labels in loader:
            images, labels = images.to(device), labels.to(device)
            loss = loss_fn(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return times


def fmnist_epochs(spec, hparams, device, train_limit, epochs, precision):
    """fmnist's runner on its fast path, data loading (the same path `fmnist run` takes) in its memory figure."""
    splits = load_data(plan_data(DataChoice(), None, device), train_limit).to(device)
    trainer = Trainer(make_model(spec, hparams), splits, hparams, device, fast=True, precision=precision)
    times = []
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        trainer.train_epoch(epoch)
        times.append(time.perf_counter() - started)
    return times


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs per path (the median is reported)")
    parser.add_argument("--train-limit", type=int, default=None, help="images per epoch (default: all 50,000)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader workers of the plain loop(s)")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=["fp32", "bf16"], help="fmnist precision(s) to time")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    source = locate()
    train_labels = torch.from_numpy(read_dataset(source)["train_labels"].astype("int64"))
    train_indices, _ = stratified_split(train_labels, VALIDATION_PER_CLASS)  # the very images fmnist trains on
    if args.train_limit:
        train_indices = train_indices[:args.train_limit]
    root = torchvision_root(source)
    specs = [load_spec(path) for path in args.specs]
    settings = {spec.name: resolve(spec.train, {"augment": not args.no_augment, "loss": "softmax"}) for spec in specs}
    rows = {spec.name: {"spec": spec.name, "images": len(train_indices), "batch_size": settings[spec.name].batch_size,
                        "augment": settings[spec.name].augment} for spec in specs}

    def measure(spec, name, epochs_of):
        reset_peak_memory(device)
        seconds = statistics.median(epochs_of())
        row = rows[spec.name]
        row[name] = {"epoch_s": round(seconds, 3), "images_per_s": round(len(train_indices) / seconds),
                     "peak_mb": round(peak_memory_mb(device))}
        print(f"  {spec.name:<8} {name:<18} {seconds:8.2f} s/epoch {len(train_indices) / seconds:10,.0f} img/s "
              f"peak {row[name]['peak_mb']:,} MB", file=sys.stderr, flush=True)

    try:
        # every plain loop first: fmnist's fast path tunes the process's allocator, which must not help the reference
        for spec in specs:
            for workers in args.workers:
                measure(spec, f"plain, {workers} workers",
                        lambda: plain_epochs(spec, settings[spec.name], device, root, train_indices, args.epochs, workers))
        for spec in specs:
            for precision in args.precision:
                measure(spec, f"fmnist {precision}", lambda: fmnist_epochs(spec, settings[spec.name], device,
                                                                         args.train_limit, args.epochs, precision))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    peaks = measured_peaks() if device.type == "cpu" else {}  # quiet machine: measured after the epochs, not beside them
    results = list(rows.values())
    for spec in specs:
        row = rows[spec.name]
        best_plain = min((row[name]["epoch_s"], name) for name in row if isinstance(row[name], dict) and name.startswith("plain"))
        row["best_plain"] = best_plain[1]
        row["speedup"] = {p: round(best_plain[0] / row[f"fmnist {p}"]["epoch_s"], 2) for p in args.precision}
        hparams = settings[spec.name]
        per_image = step_flops(make_model(spec, hparams), hparams.batch_size, spec.input) / hparams.batch_size
        row["gflop_per_epoch"] = round(per_image * len(train_indices) / 1e9, 1)  # FLOPs grow with the batch: per image
        for name in [name for name in row if isinstance(row[name], dict) and "epoch_s" in row[name]]:
            precision = "bf16" if name.endswith("bf16") else "fp32"
            if peaks:
                row[name]["share_of_peak"] = round(share(row["gflop_per_epoch"] * 1e9, row[name]["epoch_s"], peaks[precision]), 3)

    machine = {"device": str(device), "processor": platform.processor() or platform.machine(), "cpu": cpu_model(),
               "cpu_class": cpu_class(), "threads": torch.get_num_threads(),
               "torch": str(torch.__version__), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
               "peak_gflops": peaks}
    print(f"\nepoch seconds, median of {args.epochs}; {machine}")
    if peaks:
        print(f"measured peaks (matmul {'/'.join(map(str, PEAK_SIZES))}², {torch.get_num_threads()} threads): "
              f"fp32 {peaks['fp32']:,} GFLOP/s, bf16 {peaks['bf16']:,} GFLOP/s")
    print("| model | images | GFLOP/epoch | best plain loop | plain s/epoch (share of fp32 peak) | fmnist | fmnist s/epoch "
          "(share of its peak) | speed-up | fmnist img/s | peak MB plain / fmnist |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    percent = lambda entry: f" ({100 * entry['share_of_peak']:.0f}%)" if "share_of_peak" in entry else ""  # noqa: E731
    for row in results:
        plain = row[row["best_plain"]]
        for precision in args.precision:
            ours = row[f"fmnist {precision}"]
            print(f"| {row['spec']} | {row['images']:,} | {row['gflop_per_epoch']:,} | {row['best_plain']} | "
                  f"{plain['epoch_s']:.2f}{percent(plain)} | {precision} | {ours['epoch_s']:.2f}{percent(ours)} | "
                  f"{row['speedup'][precision]:.2f}x | {ours['images_per_s']:,} | {plain['peak_mb']:,} / {ours['peak_mb']:,} |")
    report = {"machine": machine, "epochs": args.epochs, "results": results}
    print(json.dumps(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The data path's speed on this machine: scanning a large folder, decoding it into the cache, and training from the
cache file read by index (and through a memory map) against training from the same images in RAM.

    python benchmarks/data_speed.py [--out results/data_speed.json] [--images 500000]

  - scan and check: a generated folder of --images 8x8 PNGs in 10 classes; `fmnist data`'s first two steps (list the
    files, read every header), in a fresh process: seconds and peak memory;
  - decode: images per second per process for 28-px PNGs (Fashion-MNIST's, as scripts/make_image_folder.py writes
    them) and for 256-px JPEGs (generated photos), with 1 and with 2 decoding processes;
  - an epoch of CNN_4 (28 px) and of ResNet-18 at 64 px from RAM, read from the cache file by index (data: {read:
    disk}) and through a memory map of it, in this one process, alternating (two rounds), and the ratios to RAM;
  - under a memory limit (a cgroup, as root): random batches from a 1.47 GB cache read by index and through a memory
    map, images/s, each from a cold page cache.
The machine is written beside the figures.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DECODED = {"png28": 6_000, "jpeg256": 600}  # images decoded per measurement


def generate_small(folder: Path, count: int) -> None:
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 256, (8, 8), dtype=np.uint8)
    image = Image.fromarray(pixels, "L")
    for number in range(count):
        target = folder / f"class{number % 10}"
        if number < 10:
            target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"{number:07d}.png")


def scan_and_check(folder: Path) -> dict:
    """Seconds and peak MB of listing and checking `folder` in a fresh process."""
    code = ("import resource, sys, time; from pathlib import Path; from fmnist.datasets.folder import native_shape, "
            "scan_folder; started = time.perf_counter(); scan = scan_folder(Path(sys.argv[1])); listed = "
            "time.perf_counter(); native_shape(scan, None, None); checked = time.perf_counter(); print(len(scan.files), "
            "listed - started, checked - listed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    words = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, check=True).stdout.split()
    return {"images": int(words[0]), "list_s": round(float(words[1]), 2), "check_headers_s": round(float(words[2]), 2),
            "peak_mb": round(float(words[3]))}


def generate_photos(folder: Path, count: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:256, 0:256]
    for number in range(count):
        target = folder / f"class{number % 10}"
        target.mkdir(parents=True, exist_ok=True)
        base = (np.sin(x / (7 + number % 13)) * 60 + np.cos(y / (5 + number % 11)) * 60 + 128)
        pixels = np.clip(base[..., None] + rng.normal(0, 12, (256, 256, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels, "RGB").save(target / f"{number:05d}.jpg", quality=90)


def decode_rate(folder: Path, processes: int, resize: int | None = None) -> float:
    """Images per second per process of decoding `folder` into a fresh cache with `processes` processes."""
    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import _conversion, ordered_scan
    from fmnist.datasets.folder import native_shape, scan_folder
    from fmnist.datasets import cache

    with tempfile.TemporaryDirectory() as where:
        os.environ.update(FMNIST_CACHE=where, FMNIST_DECODE_WORKERS=str(processes))
        choice = choose_data({"folder": str(folder), **({"resize": resize} if resize else {})})
        scan = scan_folder(folder)
        ordered, _ = ordered_scan(scan, choice)
        shape = native_shape(scan, None, (resize, resize) if resize else None)
        started = time.perf_counter()
        cache.decode(folder, _conversion(choice), ordered, shape)
        seconds = time.perf_counter() - started
    return len(scan.files) / seconds / processes


def _mapped(images):
    """The same images as a copy-on-write memory map of the cache file (np.load's mmap_mode), for comparison."""
    import torch

    whole = np.memmap(images.path, dtype=np.uint8, mode="c", offset=images.offset, shape=(images.stop, *images.image_shape))
    return torch.from_numpy(whole).narrow(0, images.start, len(images))


def epoch_ratio(spec: str, folder: Path, overrides: list[str], images: int) -> dict:
    """One epoch from RAM (data: {read: memory}), read from the cache file by index (read: disk), and from a memory
    map of that file, alternating over two rounds, in this process; the ratios to RAM."""
    import torch

    from fmnist.builder.spec import load_spec, packaged_or_path
    from fmnist.datasets.choice import choose_data
    from fmnist.datasets.loading import check_fits, load_data, plan_data
    from fmnist.hparams import resolve
    from fmnist.runner.models import make_model
    from fmnist.runner.speedups import speed_settings
    from fmnist.runner.trainer import Trainer

    torch.set_num_threads(os.cpu_count() or 1)
    spec = load_spec(packaged_or_path(spec), overrides)
    device = torch.device("cpu")
    ways = {}
    for read in ("memory", "disk"):
        data = plan_data(choose_data({**(spec.data if isinstance(spec.data, dict) else {}), "read": read},
                                     str(folder)), None, device)
        check_fits(data, spec)
        ways[read] = load_data(data, images)
    ways["map"] = load_data(data, images)
    for name in ("train_x", "val_x", "test_x"):
        setattr(ways["map"], name, _mapped(getattr(ways["disk"], name)))
    hparams = resolve(spec.train, {"augment": True})
    seconds: dict[str, list[float]] = {way: [] for way in ways}
    for _ in range(2):
        for way, splits in ways.items():
            trainer = Trainer(make_model(spec, hparams), splits, hparams, device, **speed_settings(True, "auto", device))
            started = time.perf_counter()
            trainer.train_epoch(1)
            seconds[way].append(time.perf_counter() - started)
    best = {way: min(values) for way, values in seconds.items()}
    return {"spec": spec.name, "images": len(ways["memory"].train_y), "ram_s": round(best["memory"], 2),
            "disk_s": round(best["disk"], 2), "map_s": round(best["map"], 2),
            "disk_ratio": round(best["disk"] / best["memory"], 3), "map_ratio": round(best["map"] / best["memory"], 3)}


GATHER = """
import sys, time, numpy as np, torch
from fmnist.datasets.disk_images import DiskImages
path, offset, count, way = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
shape = (3, 256, 256)
reader = DiskImages(path, offset, shape, 0, count)
mapped = torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c", offset=offset, shape=(count, *shape)))
order = torch.randperm(count, generator=torch.Generator().manual_seed(0))[:2000]
started = time.perf_counter()
for start in range(0, len(order), 64):
    batch = (reader if way == "disk" else mapped)[order[start:start + 64]]
print(len(order) / (time.perf_counter() - started))
"""


def under_a_limit(scratch: Path, limit_mb: int = 700) -> dict | None:
    """Random batches of 64 from a 1.47 GB cache of 3x256x256 images, read by index and through a memory map, by a
    process in a memory cgroup of `limit_mb` (cgroup v1, as root; None where one cannot be made): images/s. (torch
    alone is about 520 MB resident in such a process.)"""
    group = Path("/sys/fs/cgroup/memory") / f"fmnist-bench-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit_mb * 2**20))
    except OSError:
        return None
    shape, count = (3, 256, 256), 7_500
    path = scratch / "big.npy"
    block = np.random.default_rng(0).integers(0, 256, (500, *shape), dtype=np.uint8)  # real blocks, not a sparse file
    written = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, *shape))
    for start in range(0, count, len(block)):
        written[start:start + len(block)] = block[:count - start]
    written.flush()
    del written
    os.sync()
    with open(path, "rb") as stream:
        np.lib.format.read_magic(stream)
        np.lib.format.read_array_header_1_0(stream)
        offset = stream.tell()
    rates = {}
    try:
        for way in ("disk", "map"):
            with open("/proc/sys/vm/drop_caches", "w") as caches:  # each starts from the disk
                caches.write("3\n")
            run = subprocess.run([sys.executable, "-c", GATHER, str(path), str(offset), str(count), way],
                                 capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 preexec_fn=lambda: (group / "cgroup.procs").write_text(str(os.getpid())))
            rates[way] = round(float(run.stdout.split()[-1]))
    finally:
        group.rmdir()
    return {"limit_mb": limit_mb, "cache_gb": round(path.stat().st_size / 1e9, 2), "disk_images_per_s": rates["disk"],
            "map_images_per_s": rates["map"], "ratio": round(rates["disk"] / rates["map"], 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "data_speed.json")
    parser.add_argument("--images", type=int, default=500_000)
    args = parser.parse_args(argv)
    result: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        scratch_path = Path(scratch)
        os.environ["FMNIST_CACHE"] = str(scratch_path / "cache")
        generate_small(scratch_path / "small", args.images)
        result["scan"] = scan_and_check(scratch_path / "small")
        print(f"scan and check: {result['scan']}")
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_image_folder.py"), str(scratch_path / "fm"),
                        "--split", "train"], check=True, capture_output=True)
        generate_photos(scratch_path / "photos", DECODED["jpeg256"])
        subset = scratch_path / "fm6k"
        for path in sorted((scratch_path / "fm").rglob("*.png"))[:DECODED["png28"]]:
            target = subset / path.parent.name / path.name  # one folder per class
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)
        result["decode"] = [{"images": kind, "processes": processes,
                             "per_process_per_s": round(decode_rate(folder, processes), 1)}
                            for kind, folder in (("png28", subset), ("jpeg256", scratch_path / "photos"))
                            for processes in (1, 2)]
        for row in result["decode"]:
            print(f"decode {row}")
        os.environ["FMNIST_CACHE"] = str(scratch_path / "cache")
        os.environ.pop("FMNIST_DECODE_WORKERS", None)
        result["epochs"] = [epoch_ratio("cnn_4", scratch_path / "fm", [], 50_000),
                            epoch_ratio("resnet18", scratch_path / "photos64",
                                        ["input=[3,64,64]", "classes=10", "expect={}"], 4_000)
                            if _photos64(scratch_path) else None]
        for row in result["epochs"]:
            print(f"epoch {row}")
        result["under_a_limit"] = under_a_limit(scratch_path)
        print(f"under a memory limit: {result['under_a_limit']}")
    import torch

    from fmnist.machine import cpu_class, cpu_model

    result["machine"] = {"cpu": cpu_model(), "cpu_class": cpu_class(), "cores": os.cpu_count(),
                         "torch": torch.__version__.split("+")[0], "python": platform.python_version()}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _photos64(scratch: Path) -> bool:
    """A 64-px RGB folder of Fashion-MNIST for the zoo model (make_image_folder.py --size 64 --rgb)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_image_folder.py"), str(scratch / "photos64"),
                    "--limit", "5000", "--size", "64", "--rgb"], check=True, capture_output=True)
    return True


if __name__ == "__main__":
    sys.exit(main())

"""Data-parallel speed on this machine, and the scaling it implies elsewhere, on paper.

    python benchmarks/distributed_speed.py [--out results/distributed_speed.json]

Measured here, one configuration after the other in this one run (the machine is written beside them):
  - an epoch of CNN_4 on 50,000 images and of CNN_1 on 10,000: `fmnist run` in 1 process x 2 threads, and with
    --nproc 2 in 2 processes x 1 thread (the second epoch's seconds, past the start-up), and their ratio; for a
    spec with batch norm, 2 processes without synchronising it too (--no-sync-bn);
  - gloo's all-reduce of each model's gradient (its parameters in float32) between 2 processes, timed, and its share
    of a step (the all-reduce's time over the step's).
On paper, from the same gradient sizes and stated link speeds (the assumptions are in ASSUMED, and printed): the
expected scaling of CNN_4, ResNet-18 at 64 px and ResNet-50 at 224 px on 8 GPUs of one node and on 2 nodes of 8, with
a ring all-reduce, t = 2 (W - 1) x (latency + bytes / (W x bandwidth)), against the step's compute time.
`--paper-only` recomputes that part alone, keeping the measured rows of --out.
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

ROOT = Path(__file__).resolve().parents[1]
MEASURED = (("cnn_4", 50_000), ("cnn_1", 10_000))  # (spec, training images): the two epochs
ALL_REDUCES = 20  # timed all-reduces of each gradient (after 3 untimed)
# On paper: per-GPU batch, and each model's compute time per step on one GPU, with where that figure comes from.
ASSUMED = {
    "gpu_batch": 128,
    "achieved_tflops": 100,  # a dense bf16 training step at MLPerf's ResNet-50 rate on an H100, about 10% of peak
    "launch_bound_ms": 3.5,  # CNN_4's eager step on an H200 (issue #38's reference: 1.2-1.6 s an epoch of 391 steps)
    "nvlink_gbps": 300,  # NCCL's all-reduce bus bandwidth inside an 8-GPU NVLink node, GB/s
    "internode_gbps": 50,  # 400 Gb/s InfiniBand per GPU between nodes, GB/s
    "nvlink_latency_us": 5,  # per step of the ring inside a node
    "internode_latency_us": 10,  # per step of the ring between nodes
}
PAPER = (("CNN_4", "cnn_4", None), ("ResNet-18 at 64 px", "resnet18", [3, 64, 64]),
         ("ResNet-50 at 224 px", "resnet50", [3, 224, 224]))


def epoch_seconds(spec: str, images: int, processes: int, folder: Path, *extra: str) -> float:
    """The second epoch's seconds of `fmnist run SPEC` on `images` images, in 1 process x 2 threads or 2 x 1."""
    how = ["--threads", "2"] if processes == 1 else ["--threads", "1", "--nproc", str(processes), *extra]
    out = folder / f"{spec}-{processes}{'-'.join(extra)}"
    subprocess.run([sys.executable, "-m", "fmnist", "run", spec, "--train-limit", str(images), "--num-epochs", "2",
                    *how, "--out", str(out)], check=True, capture_output=True, text=True)
    summary = json.loads(next(out.glob("*/summary.json")).read_text())
    return summary["epochs"][1]["seconds"]


def has_batch_norm(spec: str) -> bool:
    from fmnist.builder.build import plan
    from fmnist.builder.spec import packaged_or_path

    return any(record.kind == "bn" for record in plan(packaged_or_path(spec)).records)


def parameters(spec: str, input_shape: list[int] | None = None) -> tuple[int, int]:
    """(parameters, mult-adds per image) of a packaged spec, as `fmnist summary` counts them."""
    from fmnist.builder.build import plan
    from fmnist.builder.spec import load_spec, packaged_or_path

    overrides = [f"input={input_shape}".replace(" ", "")] if input_shape else []
    built = plan(load_spec(packaged_or_path(spec), overrides))
    return built.params["total"], built.macs


def all_reduce_seconds(sizes: list[int]) -> list[float]:
    """Seconds of one gloo all-reduce of each float32 tensor size, between 2 processes of this machine."""
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    with tempfile.TemporaryDirectory() as folder:
        config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=2, rdzv_backend="c10d",
                              rdzv_endpoint="localhost:0", run_id="bandwidth", max_restarts=0)
        elastic_launch(config, sys.executable)(__file__, "--all-reduce", json.dumps(sizes), folder)
        return json.loads((Path(folder) / "rank0.json").read_text())


def _all_reduce_worker(sizes: list[int], folder: str) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    seconds = []
    for size in sizes:
        tensor = torch.ones(size)
        for _ in range(3):
            dist.all_reduce(tensor)
        dist.barrier()
        started = time.perf_counter()
        for _ in range(ALL_REDUCES):
            dist.all_reduce(tensor)
        seconds.append((time.perf_counter() - started) / ALL_REDUCES)
    if dist.get_rank() == 0:
        (Path(folder) / "rank0.json").write_text(json.dumps(seconds))
    dist.destroy_process_group()


def on_paper(name: str, spec: str, input_shape: list[int] | None) -> dict:
    """Expected step time and scaling of one model on 8 GPUs in a node and on 2 nodes of 8, from the formula."""
    params, macs = parameters(spec, input_shape)
    gradient = 4 * params  # float32 gradients, as DDP all-reduces them by default
    compute_ms = ASSUMED["launch_bound_ms"] if spec == "cnn_4" else \
        3 * 2 * macs * ASSUMED["gpu_batch"] / (ASSUMED["achieved_tflops"] * 1e12) * 1e3  # forward + backward = 3x
    row = {"model": name, "params": params, "gradient_mb": round(gradient / 1e6, 2), "compute_ms": round(compute_ms, 2)}
    for label, gpus, bandwidth, latency in (("node_8", 8, ASSUMED["nvlink_gbps"], ASSUMED["nvlink_latency_us"]),
                                            ("nodes_2x8", 16, ASSUMED["internode_gbps"], ASSUMED["internode_latency_us"])):
        reduce_ms = 2 * (gpus - 1) * (latency * 1e-6 + gradient / (gpus * bandwidth * 1e9)) * 1e3
        row[f"{label}_all_reduce_ms"] = round(reduce_ms, 3)
        row[f"{label}_efficiency_no_overlap"] = round(compute_ms / (compute_ms + reduce_ms), 3)
        row[f"{label}_efficiency_overlapped"] = round(min(1.0, compute_ms / reduce_ms), 3)  # DDP overlaps its buckets
    return row


def main(argv=None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--all-reduce":
        _all_reduce_worker(json.loads(sys.argv[2]), sys.argv[3])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "distributed_speed.json")
    parser.add_argument("--paper-only", action="store_true", help="Recompute the on-paper table alone.")
    args = parser.parse_args(argv)
    if args.paper_only:
        result = json.loads(args.out.read_text())
        result.update(assumed=ASSUMED, on_paper=[on_paper(*model) for model in PAPER])
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        return 0
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for spec, images in MEASURED:
            one, two = (epoch_seconds(spec, images, processes, Path(folder)) for processes in (1, 2))
            params, _ = parameters(spec)
            unsynced = epoch_seconds(spec, images, 2, Path(folder), "--no-sync-bn") if has_batch_norm(spec) else None
            rows.append({"spec": spec, "images": images, "params": params, "gradient_mb": round(4 * params / 1e6, 2),
                         "one_process_two_threads_s": one, "two_processes_one_thread_s": two,
                         "ratio": round(one / two, 3), "two_processes_no_sync_bn_s": unsynced})
            print(f"{spec}: {images:,} images, 1 x 2 threads {one:.2f} s, 2 x 1 thread {two:.2f} s, "
                  f"ratio {one / two:.2f}" + (f"; without synchronised batch norm {unsynced:.2f} s" if unsynced else ""))
    reduced = all_reduce_seconds([row["params"] for row in rows])  # the gradient: one float32 per parameter
    for row, seconds in zip(rows, reduced):
        steps = -(-row["images"] // 128)  # the study's batch of 128: the last, partial batch is a step too
        step_s = row["two_processes_one_thread_s"] / steps
        row.update(all_reduce_ms=round(1e3 * seconds, 3), gloo_gbps=round(row["gradient_mb"] / 1e3 / seconds, 2),
                   step_ms=round(1e3 * step_s, 2), all_reduce_share=round(seconds / step_s, 4))
        print(f"{row['spec']}: gradient {row['gradient_mb']} MB, all-reduce {row['all_reduce_ms']} ms "
              f"({row['gloo_gbps']} GB/s), {100 * row['all_reduce_share']:.1f}% of a {row['step_ms']} ms step")
    paper = [on_paper(*model) for model in PAPER]
    for row in paper:
        print(json.dumps(row))
    import torch

    from fmnist.machine import cpu_class, cpu_model

    result = {"machine": {"cpu": cpu_model(), "cpu_class": cpu_class(), "cores": os.cpu_count(),
                          "torch": torch.__version__.split("+")[0], "python": platform.python_version()},
              "measured": rows, "assumed": ASSUMED, "on_paper": paper}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Datasets bigger than memory: a folder decoded once, with every core, into a memory-mapped cache that training reads
by index; real files, real memory limits (a cgroup), a real full disk (a small tmpfs), a real read-only folder, a
real SIGTERM in the middle of a decode."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, mount_or_skip, only_run, spawn, tiny_folder, unmount, wait_until

CGROUP_V1 = Path("/sys/fs/cgroup/memory")


def cache_folders(cache: Path) -> list[Path]:
    return sorted((cache / "folders").glob("*")) if (cache / "folders").is_dir() else []


def fmnist(*args, cwd: Path, env: dict | None = None, preexec=None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "fmnist", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, preexec_fn=preexec, timeout=timeout)


@contextmanager
def memory_cgroup(limit: int):
    """A memory cgroup (v1, as these machines have it) limited to `limit` bytes, and a preexec function that moves a
    child process into it before it starts; skipped with the reason where one cannot be made (not root, no v1)."""
    if not CGROUP_V1.is_dir():
        pytest.skip("no cgroup v1 memory controller mounted at /sys/fs/cgroup/memory")
    group = CGROUP_V1 / f"fmnist-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(limit))
        (group / "memory.memsw.limit_in_bytes").write_text(str(limit)) if (group / "memory.memsw.limit_in_bytes").exists() else None
    except OSError as error:
        pytest.skip(f"cannot make a memory cgroup here ({error.strerror}; needs root)")

    def join() -> None:
        (group / "cgroup.procs").write_text(str(os.getpid()))

    try:
        yield group, join
    finally:
        for _ in range(50):
            try:
                group.rmdir()
                break
            except OSError:  # its last process is still being reaped
                import time

                time.sleep(0.1)


BIG = "name: big\ninput: [3, 128, 128]\nlayers: [conv 8x8x8 stride=8, relu, gap, fc 10]\n"
HUGE = "name: huge\ninput: [3, 256, 256]\nlayers: [conv 32x32x8 stride=32, bn, relu, fc 10]\n"


def in_group(group: Path) -> list[int]:
    """The processes still in a cgroup."""
    return [int(pid) for pid in (group / "cgroup.procs").read_text().split()]


@pytest.mark.timeout(600)
def test_a_folder_twice_the_memory_limit_trains_one_epoch_inside_it(tmp_path):
    """7,500 tiny PNGs stored at 3x256x256 make a 1.47 GB cache; the run, its decoding workers included, is held to a
    700 MB cgroup (torch alone is about 520 MB resident here): the images are read from the file by index as the epoch
    goes, not held. The same folder decoded into memory (a cache folder that cannot be written) is refused under
    that limit, before anything is read."""
    limit = 700 * 2**20
    folder = tiny_folder(tmp_path / "photos", per_class=750)
    (tmp_path / "huge.yaml").write_text(HUGE)
    data = ("--data", folder, "--set", "data.resize=256", "--set", "data.channels=3")
    env = {"FMNIST_CACHE": str(tmp_path / "cache")}
    with memory_cgroup(limit) as (group, join):
        done = fmnist("run", "huge.yaml", *data, "--num-epochs", "1", "--threads", "2", "--batch-size", "64",
                      "--out", tmp_path / "runs", cwd=tmp_path, env=env, preexec=join)
        peak = int((group / "memory.max_usage_in_bytes").read_text())
        killed = "oom_kill 0" not in (group / "memory.oom_control").read_text()
        wait_until(lambda: not in_group(group), what="the run's helper processes to end with it", limit_s=10)
    assert done.returncode == 0, done.stderr
    (cache,) = cache_folders(tmp_path / "cache")
    size = (cache / "images.npy").stat().st_size
    assert size > 2 * limit and peak <= limit and not killed
    assert "read from the cache by index as training goes, not held in memory: they need 1.4 GiB" in done.stdout
    summary = json.loads((only_run(tmp_path / "runs") / "summary.json").read_text())
    assert len(summary["epochs"]) == 1 and summary["test_acc"] > 0.5  # the classes' patterns were learnt
    with memory_cgroup(limit) as (group, join):
        refused = fmnist("run", "huge.yaml", *data, "--num-epochs", "1", "--out", tmp_path / "runs2", cwd=tmp_path,
                         env={"FMNIST_CACHE": "/proc/fmnist-cannot-be-here"}, preexec=join)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "cannot be written" in refused.stderr and "so in memory" in refused.stderr and "free" in refused.stderr


def test_decoding_workers_end_with_the_process_that_started_them(tmp_path):
    """The run killed by the OOM killer, or with SIGKILL, in the middle of a decode leaves no worker behind."""
    folder = tiny_folder(tmp_path / "photos", per_class=300)
    env = {"FMNIST_CACHE": str(tmp_path / "cache"), "FMNIST_DECODE_CHUNK": "16"}
    with memory_cgroup(2**34) as (group, join):
        (tmp_path / "huge.yaml").write_text(HUGE)
        decoding = spawn("run", "huge.yaml", "--data", folder, "--set", "data.resize=256", "--set", "data.channels=3",
                         "--out", tmp_path / "runs", cwd=tmp_path, env=env, preexec=join)
        done_log = lambda: next(iter(cache_folders(tmp_path / "cache")), tmp_path) / "chunks.done"  # noqa: E731
        wait_until(lambda: done_log().is_file() and done_log().read_text().strip(), decoding, what="a chunk decoded")
        assert len(in_group(group)) >= 3  # the run, its workers (and multiprocessing's tracker)
        decoding.kill()
        decoding.wait()
        wait_until(lambda: not in_group(group), what="the workers to end", limit_s=20)


def test_the_memory_check_reads_the_containers_limit(tmp_path):
    """Fashion-MNIST resized to 256 px needs 4.3 GiB: room on this machine, none in a 1 GiB cgroup (v1 here)."""
    (tmp_path / "grey.yaml").write_text(HUGE.replace("[3, 256, 256]", "[1, 256, 256]"))
    asked = ("run", "grey.yaml", "--set", "data.resize=256", "--dry-run")
    assert fmnist(*asked, cwd=tmp_path).returncode == 0  # outside: fits
    with memory_cgroup(2**30) as (group, join):
        inside = fmnist(*asked, cwd=tmp_path, preexec=join)
    assert inside.returncode == 2 and inside.stderr.count("\n") == 1, inside.stderr
    assert "fashion-mnist: 70,000 images of 1x256x256 need 4.3 GiB as uint8; this machine has" in inside.stderr


def test_an_interrupted_decode_continues_where_it_stopped_and_trains_the_same(tmp_path, real_data):
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_image_folder.py"), tmp_path / "photos",
                           "--limit", "3000"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    env = {"FMNIST_CACHE": str(tmp_path / "cache"), "FMNIST_DECODE_CHUNK": "64"}
    decoding = spawn("data", "--data", tmp_path / "photos", cwd=tmp_path, env=env)
    done_log = lambda: next(iter(cache_folders(tmp_path / "cache")), tmp_path) / "chunks.done"  # noqa: E731
    wait_until(lambda: done_log().is_file() and len(done_log().read_text().splitlines()) >= 5, decoding,
               what="five chunks decoded")
    decoding.send_signal(signal.SIGTERM)
    _, err = decoding.communicate(timeout=60)
    assert decoding.returncode == 130 and err.count("fmnist: ") == 1, err
    (cache,) = cache_folders(tmp_path / "cache")
    chunks = {tuple(map(int, line.split())) for line in done_log().read_text().splitlines()}
    assert 5 <= len(chunks) < 47 and not (cache / "manifest.json").exists()  # a half-written cache is never read
    quick = ("--train-limit", "1000", "--num-epochs", "1", "--threads", "2", "--seed", "2")
    # the rest is decoded in chunks of another size: what was kept is recorded as ranges of images
    resumed = fmnist("run", "cnn_4", "--data", tmp_path / "photos", *quick, "--out", tmp_path / "resumed",
                     cwd=tmp_path, env={**env, "FMNIST_DECODE_CHUNK": "100"})
    assert resumed.returncode == 0, resumed.stderr
    assert f"{64 * len(chunks):,} of them kept from an interrupted decode" in resumed.stdout
    fresh = fmnist("run", "cnn_4", "--data", tmp_path / "photos", *quick, "--out", tmp_path / "fresh", cwd=tmp_path,
                   env={**env, "FMNIST_CACHE": str(tmp_path / "cache2")})
    assert fresh.returncode == 0, fresh.stderr
    first, second = (json.loads((only_run(tmp_path / name) / "summary.json").read_text()) for name in ("resumed", "fresh"))
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert strip(first["epochs"]) == strip(second["epochs"]) and first["test_acc"] == second["test_acc"]
    assert (cache / "images.npy").read_bytes() == (cache_folders(tmp_path / "cache2")[0] / "images.npy").read_bytes()


def _listing(folder: Path) -> list[tuple[str, int, int]]:
    return sorted((str(path), path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*"))


def test_a_cache_folder_without_room_is_one_line_and_nothing_half_written_is_used(tmp_path):
    folder = tiny_folder(tmp_path / "photos", per_class=100)  # 1,000 images: 48 MB stored at 3x128x128
    before = _listing(folder)
    small = tmp_path / "small"
    mount_or_skip(small, "-t", "tmpfs", "-o", "size=8m", "tmpfs")
    try:
        (tmp_path / "big.yaml").write_text(BIG)
        data = ("--data", folder, "--set", "data.resize=128", "--set", "data.channels=3")
        full = fmnist("run", "big.yaml", *data, "--num-epochs", "1", "--out", tmp_path / "runs", cwd=tmp_path,
                      env={"FMNIST_CACHE": str(small)})
        assert full.returncode == 1 and full.stderr.count("\n") == 1, full.stderr
        assert "the decoded images need 47 MiB" in full.stderr and "set $FMNIST_CACHE to a folder with room" in full.stderr
        assert not list(small.rglob("manifest.json")) and not list(small.rglob("images.npy"))
        assert not (tmp_path / "runs").exists()
    finally:
        unmount(small)
    assert _listing(folder) == before  # the image folder untouched


def test_a_read_only_cache_folder_decodes_into_memory_where_it_fits_and_says_so(tmp_path):
    folder = tiny_folder(tmp_path / "photos", per_class=30)
    locked = tmp_path / "locked"
    locked.mkdir()
    mount_or_skip(locked, "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs")
    try:
        done = fmnist("data", "--data", folder, cwd=tmp_path, env={"FMNIST_CACHE": str(locked)})
    finally:
        unmount(locked)
    assert done.returncode == 0, done.stderr
    assert f"decoded 300 images into memory: the cache folder {locked}/folders/" in done.stdout
    assert "cannot be written (Read-only file system" in done.stdout


def test_a_file_changed_while_the_folder_is_decoded_is_noticed(tmp_path):
    folder = tiny_folder(tmp_path / "photos", per_class=400)
    env = {"FMNIST_CACHE": str(tmp_path / "cache"), "FMNIST_DECODE_CHUNK": "16"}
    decoding = spawn("data", "--data", folder, cwd=tmp_path, env=env)
    wait_until(lambda: any((cache / "chunks.done").is_file() for cache in cache_folders(tmp_path / "cache")), decoding,
               what="the first chunk decoded")
    last = sorted((folder / "class09").iterdir())[-1]  # in the last chunk: far from decoded yet
    Image.fromarray(np.zeros((9, 9), dtype=np.uint8), "L").save(last)  # another size, another time
    _, err = decoding.communicate(timeout=120)
    assert decoding.returncode == 2 and err.count("\n") == 1, err
    assert f"{last}: changed while the folder was decoded" in err


def test_stored_larger_images_train_with_random_resized_crops_the_same_in_two_processes(tmp_path, real_data):
    """A folder stored at 40 px and trained at 32 (data: {store: 40}): each process reads its share of the mapped
    cache and crops it with the numbers one process draws for the whole batch, so the runs agree (a net without
    batch norm, the plain path: to float rounding, see test_distributed.py)."""
    made = subprocess.run([sys.executable, str(ROOT / "scripts" / "make_image_folder.py"), tmp_path / "photos",
                           "--limit", "600", "--size", "48", "--rgb"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    (tmp_path / "st.yaml").write_text("name: stored\ninput: [3, 32, 32]\ndata: {store: 40}\n"
                                      "layers: [conv 3x3x8 stride=2, relu, conv 3x3x16 stride=2, relu, gap, fc 10]\n")
    common = ("--data", tmp_path / "photos", "--num-epochs", "2", "--augment", "--erase", "0.3", "--plain",
              "--threads", "1", "--seed", "3")
    env = {"FMNIST_CACHE": str(tmp_path / "cache")}
    one = fmnist("run", "st.yaml", *common, "--out", tmp_path / "one", cwd=tmp_path, env=env)
    two = fmnist("run", "st.yaml", *common, "--nproc", "2", "--out", tmp_path / "two", cwd=tmp_path, env=env)
    assert one.returncode == 0 and two.returncode == 0, one.stderr + two.stderr
    for single, double in zip(*(json.loads((only_run(tmp_path / n) / "summary.json").read_text())["epochs"]
                                for n in ("one", "two")), strict=True):
        assert abs(single["train_loss"] - double["train_loss"]) <= 1e-4 and abs(single["val_acc"] - double["val_acc"]) <= 0.01
    config = json.loads(json.dumps(__import__("yaml").safe_load((only_run(tmp_path / "one") / "config.yaml").read_text())))
    assert config["data"]["choice"]["store"] == 40 and config["data"]["input"] == [3, 40, 40]


def test_read_by_index_trains_exactly_what_memory_trains_and_a_named_set_is_refused(tmp_path):
    """data: {read: disk} reads each batch from the cache file; read: memory holds it all: the same run, to the digit."""
    folder = tiny_folder(tmp_path / "photos", per_class=60, size=16)
    (tmp_path / "small.yaml").write_text("name: small\ninput: [1, 16, 16]\nlayers: [conv 3x3x8, bn, relu, gap, fc 10]\n")
    env = {"FMNIST_CACHE": str(tmp_path / "cache")}
    summaries = {}
    for read in ("disk", "memory"):
        done = fmnist("run", "small.yaml", "--data", folder, "--set", f"data.read={read}", "--num-epochs", "2",
                      "--threads", "1", "--augment", "--out", tmp_path / read, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        assert ("read from the cache by index as training goes, not held in memory: as asked" in done.stdout) == (read == "disk")
        summaries[read] = json.loads((only_run(tmp_path / read) / "summary.json").read_text())
    strip = lambda epochs: [{k: v for k, v in e.items() if k != "seconds"} for e in epochs]  # noqa: E731
    assert strip(summaries["disk"]["epochs"]) == strip(summaries["memory"]["epochs"])
    assert summaries["disk"]["test_acc"] == summaries["memory"]["test_acc"]
    refused = fmnist("run", "cnn_4", "--set", "data.read=disk", "--dry-run", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "a named dataset is held in memory" in refused.stderr

"""Shared helpers: run the real CLI in-process, write spec files, make tiny IDX datasets."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fmnist.cli import main

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs `-n auto`) the workers share the cores: each trains in-process with its
    share of them, as a grid's cells do, rather than every worker taking them all (which slows each several times)."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
SPECS = ROOT / "specs"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def cli(capsys):
    """cli('summary', 'x.yaml') -> (exit code, stdout, stderr), exactly as a user would see them."""

    def run(*args: str):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture
def write_spec(tmp_path):
    """write_spec(text, name='spec.yaml') -> path of a spec file with that (dedented) text."""

    def write(text: str, name: str = "spec.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


def write_idx(path: Path, array, magic: int | None = None, gz: bool = False) -> Path:
    """Write a uint8 array as an IDX file (optionally gzipped); `magic` overrides the right one."""
    import gzip

    import numpy as np

    array = np.asarray(array, dtype=np.uint8)
    magic = magic if magic is not None else 0x0800 + array.ndim
    header = magic.to_bytes(4, "big") + b"".join(n.to_bytes(4, "big") for n in array.shape)
    data = header + array.tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture(scope="session")
def real_data():
    """The real Fashion-MNIST (make test installs it); the tests that need it say so clearly if it is missing."""
    from fmnist.errors import UsageError
    from fmnist.datasets.fashion_mnist import locate

    try:
        return locate()
    except UsageError as error:
        pytest.fail(f"these tests need the real dataset ('make data' installs it): {error}")


TINY_SPEC = "name: tiny\nlayers: [conv 3x3x4, relu, pool 2x2, fc 10]\n"  # trains in a fraction of a second per epoch


def only_run(parent: Path) -> Path:
    """The one run folder fmnist made under `parent`."""
    (run,) = [path for path in parent.iterdir() if path.is_dir() and not path.is_symlink()]  # not the 'latest' link
    return run


def spawn(*args, cwd, env=None, preexec=None):
    """`python -m fmnist ARGS` as a separate process (for signals, kills and two processes at once); `preexec` runs in
    the child first (e.g. joining a cgroup)."""
    import os
    import subprocess
    import sys

    import signal

    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    # a suite started in the background (`cmd &`, nohup) passes SIGINT on as ignored: give the child Ctrl-C back
    return subprocess.Popen([sys.executable, "-m", "fmnist", *map(str, args)], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: (signal.signal(signal.SIGINT, signal.SIG_DFL), preexec and preexec()))


def wait_until(condition, process=None, limit_s: float = 120, what: str = "the condition"):
    """Poll `condition()` until it is true; fail if `process` exits first or time runs out."""
    import time

    deadline = time.time() + limit_s
    while time.time() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}: {process.communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {limit_s} s")


def mount_or_skip(target: Path, *options: str) -> None:
    """mount(8) a tmpfs (or bind) at `target`; tests of full and read-only disks need root, as CI has."""
    import subprocess

    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", *options, str(target)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount here (needs root): {result.stderr.strip()}")


def unmount(target: Path) -> None:
    import subprocess

    subprocess.run(["umount", "-l", str(target)], capture_output=True)


# ---- a real PostgreSQL server (Debian's package; .ci/run installs it) ----

def _postgres_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class PostgresServer:
    """A throw-away server on 127.0.0.1: its URL, and a restart, stop and start as an operator would do them (clients are
    cut off)."""

    url: str
    pg_ctl: list

    def restart(self) -> None:
        subprocess.run([*self.pg_ctl, "-m", "fast", "-w", "restart"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.pg_ctl, "-m", "fast", "-w", "stop"], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([*self.pg_ctl, "-w", "start"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def postgres_server():
    binaries = _postgres_bin()
    if binaries is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="fmnist-pg-"))
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_postgres:
        shutil.chown(folder, "postgres")
    port = _free_port()
    data = folder / "data"
    subprocess.run([*as_postgres, binaries / "initdb", "-D", data, "-A", "trust", "-U", "fmnist"], check=True, capture_output=True)
    pg_ctl = [*as_postgres, binaries / "pg_ctl", "-D", data, "-l", folder / "log", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1"]
    subprocess.run([*pg_ctl, "-w", "start"], check=True, capture_output=True)
    try:
        subprocess.run([binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "fmnist", "fmnist"], check=True)
        yield PostgresServer(f"postgresql://fmnist@127.0.0.1:{port}/fmnist", pg_ctl)
    finally:
        subprocess.run([*pg_ctl, "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres(postgres_server):
    """The throw-away server's URL."""
    return postgres_server.url


def tiny_folder(root: Path, per_class: int, classes: int = 10, size: int = 8) -> Path:
    """A folder for the image-folder path: `per_class` small grey PNGs in each class folder (a pattern per class, so a
    net can learn something)."""
    for label in range(classes):
        folder = root / f"class{label:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(label)
        base = rng.integers(0, 256, (size, size), dtype=np.uint8)
        for number in range(per_class):
            noise = rng.integers(0, 40, (size, size), dtype=np.uint8)
            Image.fromarray(base // 2 + noise, "L").save(folder / f"{number:05d}.png")
    return root

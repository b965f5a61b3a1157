"""`fmnist run --nproc N`: the same command in N processes per machine, started by torch's elastic launcher (the
engine behind torchrun, through its launch API), each one `python -m fmnist run ...` without the launcher's flags.

The launcher trains nothing itself: it waits for its processes and ends as they do. Rank 0 says what happened
(its last line, or the error); the launcher adds a line only for what no rank could say (a rank killed by a signal,
machines that never met).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import uuid
from pathlib import Path

from ..errors import UsageError, one_line
from .options import RunOptions

LAUNCHER_FLAGS = ("--nproc", "--nnodes", "--rdzv-endpoint", "--rdzv-timeout")  # each takes one value
MAX_PROCESSES = 1024
EXIT_INTERRUPTED = 130
RENDEZVOUS_GRACE_S = 5  # past --rdzv-timeout, before the launcher gives up on a rendezvous that never answers


def worker_words(words: list[str]) -> list[str]:
    """The command line each process runs: the user's, less the launcher's own flags."""
    kept, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        name = word.split("=", 1)[0]
        if name in LAUNCHER_FLAGS:
            skip = "=" not in word
            continue
        kept.append(word)
    return kept


def check_launch(options: RunOptions) -> None:
    if options.nproc is None:
        return
    if not 1 <= options.nproc <= MAX_PROCESSES:
        raise UsageError(f"--nproc {options.nproc}: must be from 1 to {MAX_PROCESSES:,}")
    if options.nnodes < 1:
        raise UsageError(f"--nnodes {options.nnodes}: must be 1 or more")
    if options.nnodes > 1 and not options.rdzv_endpoint:
        raise UsageError("--nnodes above 1 needs --rdzv-endpoint HOST:PORT, the same on every machine")
    if options.rdzv_timeout < 1:
        raise UsageError(f"--rdzv-timeout {options.rdzv_timeout}: must be 1 second or more")


def launch(words: list[str], options: RunOptions) -> int:
    """Start the processes through torch's elastic launch API and wait for them; returns the exit code."""
    from torch.distributed.elastic.multiprocessing import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.rendezvous import RendezvousError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    check_launch(options)
    for name in ("torch.distributed.elastic", "torch.distributed.launcher"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # its progress and warnings: the ranks say what matters
    endpoint = options.rdzv_endpoint or "localhost:0"  # one machine: a free port of its own
    config = LaunchConfig(min_nodes=options.nnodes, max_nodes=options.nnodes, nproc_per_node=options.nproc or 1,
                          run_id="fmnist" if options.rdzv_endpoint else uuid.uuid4().hex, rdzv_backend="c10d",
                          rdzv_endpoint=endpoint,
                          rdzv_configs={"timeout": options.rdzv_timeout, "read_timeout": options.rdzv_timeout,
                                        "join_timeout": options.rdzv_timeout},
                          max_restarts=0, monitor_interval=0.2, start_method="spawn")
    watchdog = threading.Timer(options.rdzv_timeout + RENDEZVOUS_GRACE_S, _never_met, (endpoint, options.rdzv_timeout))
    watchdog.daemon = True
    watchdog.start()
    try:
        elastic_launch(config, sys.executable)("-m", "fmnist", *worker_words(words))
    except ChildFailedError as failed:
        return _exit_code(failed)
    except SignalException as stopped:  # Ctrl-C or kill on the launcher: it sent the same to every process
        return EXIT_INTERRUPTED if stopped.sigval in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP) else 1
    except RendezvousError as error:
        raise UsageError(f"--rdzv-endpoint {endpoint}: the machines did not meet ({type(error).__name__}: "
                         f"{one_line(error.__cause__ or error, 120)}); check the address and that every machine "
                         f"started within {options.rdzv_timeout} s") from None
    finally:
        watchdog.cancel()
    return 0


def _started_processes() -> bool:
    """Whether the launcher has started its processes (they are its children; Linux lists them per thread)."""
    return any(path.read_text().split() for path in Path("/proc/self/task").glob("*/children"))


def _never_met(endpoint: str, timeout: int) -> None:
    """Past the rendezvous timeout with no process started: torch's store client can wait for ever on an endpoint
    that accepts connections and never answers (a port another program holds), so the launcher ends itself."""
    if not Path("/proc/self/task").is_dir() or _started_processes():
        return
    print(f"fmnist: error: --rdzv-endpoint {endpoint}: the machines did not meet within {timeout} s (nothing there "
          f"answered as a rendezvous: a port another program holds?); check the address and that every machine "
          f"started within {timeout} s", file=sys.stderr, flush=True)
    os._exit(2)


def _exit_code(failed) -> int:
    """The run's exit code: rank 0's (it has said why); a rank killed by a signal is said here, as no rank could."""
    failures = failed.failures
    code = failures[min(failures)].exitcode if 0 not in failures else failures[0].exitcode
    for rank, failure in sorted(failures.items()):
        if failure.exitcode < 0:
            try:
                name = signal.Signals(-failure.exitcode).name
            except ValueError:
                name = f"signal {-failure.exitcode}"
            print(f"fmnist: error: process {rank} of the run was killed by {name}", file=sys.stderr)
    return 128 - code if code < 0 else code

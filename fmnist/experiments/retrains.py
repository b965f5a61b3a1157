"""The search's best trial retrained and tested, with one seed or several, shared among the study's workers.

Each seed is claimed before it is trained: a lock on a file in --out (workers on one machine), or, on PostgreSQL, an
advisory lock that the server drops when its holder's connection ends (workers on any machine). Its result is kept in
the study, so every worker reports every seed, and a seed whose worker died is trained again by the next to ask.
"""
from __future__ import annotations

import hashlib
import shutil
import statistics
import time
from pathlib import Path

CLAIM_POLL_S = 2.0  # how often a worker waiting for a seed another worker trains looks again


class FileClaims:
    """Claims on one machine: a lock on `out/.best-trial-N-seedS.lock` (the kernel drops it with its process)."""

    def __init__(self, out: Path):
        self.out = out

    def take(self, key: str):
        from .claims import claim

        return claim(self.out / f".{key}.lock")


class PostgresClaims:
    """Claims across machines: a session-level advisory lock on the study's database, held on a connection of its
    own; the server lets go when that connection ends, also when its worker is killed or its machine dies."""

    def __init__(self, url: str, study: str):
        import sqlalchemy
        from sqlalchemy.pool import NullPool

        self.engine = sqlalchemy.create_engine(url, poolclass=NullPool)  # close() really closes: the lock goes with it
        self.study = study

    def take(self, key: str):
        import sqlalchemy

        number = int.from_bytes(hashlib.sha256(f"fmnist:{self.study}:{key}".encode()).digest()[:8], "big", signed=True)
        connection = self.engine.connect()
        if connection.execute(sqlalchemy.text("SELECT pg_try_advisory_lock(:key)"), {"key": number}).scalar():
            return connection  # a context manager: leaving it closes the connection, and the lock with it
        connection.close()
        return None


def claims_for(storage: str | None, study: str, out: Path):
    """Advisory locks on a PostgreSQL study; otherwise files in --out (workers of one machine)."""
    from sqlalchemy.engine import make_url

    if storage and make_url(storage).get_backend_name() == "postgresql":  # any driver: postgresql+psycopg://…
        return PostgresClaims(storage, study)
    return FileClaims(out)


def seed_key(number: int, seed: int) -> str:
    return f"best-trial-{number}-seed{seed}"


def run_folder(out: Path, number: int, seed: int, first_seed: int) -> Path:
    """best-trial-N for the first seed (the one-seed layout), best-trial-N-seedS for the others."""
    return out / (f"best-trial-{number}" if seed == first_seed else seed_key(number, seed))


def retrain_seeds(study, number: int, seeds: list[int], out: Path, claims, train, report, worker: str) -> dict[int, dict]:
    """seed -> result of trial `number` retrained with it (experiments.results.result_of, plus the worker and run
    folder); each seed is trained once in the study: by this worker when it is free, else by the worker holding it,
    waited for. train(seed, folder) trains one run into `folder`."""
    from .results import result_of

    waiting_said: set[int] = set()
    while pending := [seed for seed in seeds if seed_key(number, seed) not in study.user_attrs]:
        held = next(((seed, handle) for seed in pending if (handle := claims.take(seed_key(number, seed)))), None)
        if held is None:  # every pending seed is being trained elsewhere: look again shortly
            if not waiting_said & set(pending):
                report(f"trial {number}: seed(s) {', '.join(map(str, pending))} being retrained by another worker; waiting")
                waiting_said.update(pending)
            time.sleep(CLAIM_POLL_S)
            continue
        seed, handle = held
        with handle:
            if seed_key(number, seed) in study.user_attrs:  # finished while this worker looked
                continue
            folder = run_folder(out, number, seed, seeds[0])
            if not (folder / "summary.json").is_file():
                shutil.rmtree(folder, ignore_errors=True)  # a retrain killed half-way starts over
                train(seed, folder)
            study.set_user_attr(seed_key(number, seed), {**result_of(folder), "worker": worker, "run": str(folder)})
    return {seed: study.user_attrs[seed_key(number, seed)] for seed in seeds}


def summarise(results: dict[int, dict]) -> dict:
    """search.json's `retrain`: the first seed's run and test accuracy (the one-seed form), every seed's, mean ± sd."""
    scores = [results[seed]["test_acc"] for seed in results]
    first = next(iter(results.values()))
    return {"run": first["run"], "test_acc": first["test_acc"],
            "seeds": [{"seed": seed, "test_acc": result["test_acc"], "worker": result["worker"], "run": result["run"]}
                      for seed, result in results.items()],
            "mean": statistics.mean(scores), "sd": statistics.stdev(scores) if len(scores) > 1 else None}


def describe(results: dict[int, dict]) -> str:
    """The line a search ends with: the retrain's test accuracy, or with several seeds their mean ± sd and each."""
    scores = [100 * result["test_acc"] for result in results.values()]
    first = next(iter(results.values()))
    if len(scores) == 1:
        return f"best trial retrained: test accuracy {scores[0]:.2f}% · {first['run']}"
    seeds = list(results)
    return (f"best trial retrained with seeds {seeds[0]}–{seeds[-1]}: test accuracy {statistics.mean(scores):.2f} ± "
            f"{statistics.stdev(scores):.2f}% ({', '.join(f'{score:.2f}' for score in scores)}) · {first['run']} "
            f"and {len(scores) - 1} more")

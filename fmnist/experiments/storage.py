"""Opening an Optuna study in a database that several workers share (search trials, grid cells)."""
from __future__ import annotations

import time

from ..errors import UsageError, one_line
from ..redact import masked

RACE_RETRIES = 3
HEARTBEAT_S = 30  # a worker killed mid-trial stops beating; after the grace period its trial is marked failed


def shared_storage(url: str, retry_stale: bool = False):
    """A database several workers share: each running trial beats, so a killed worker's trial is failed (and, with
    retry_stale, its point handed out again, once); a connection the server dropped (a restart) is replaced."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks heartbeats experimental (and renamed the retry callback)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=4 * HEARTBEAT_S,
                                          engine_kwargs={"pool_pre_ping": True},
                                          failed_trial_callback=retry(max_retry=1) if retry_stale else None)


def create_or_join(url: str, what: str, make_storage=None, **study_options):
    """optuna.create_study(load_if_exists=True) that survives workers starting together; errors are one masked line.

    make_storage() builds the storage object (an RDBStorage creates the tables, so it races too); default: the URL.
    """
    import optuna

    for attempt in range(RACE_RETRIES + 1):
        try:
            storage = make_storage() if make_storage else url
            return optuna.create_study(storage=storage, load_if_exists=True, **study_options)
        except Exception as error:  # SQLAlchemy/driver errors: unreachable server, bad URL, missing driver, races
            # workers started together race to create the tables: PostgreSQL says UniqueViolation, SQLite that a
            # table already exists or that the file is locked by the other worker's transaction
            racing = "UniqueViolation" in repr(error) or "IntegrityError" in type(error).__name__ or \
                any(sign in str(error) for sign in ("already exists", "database is locked"))
            if racing and attempt < RACE_RETRIES:  # look again
                time.sleep(0.5 * (attempt + 1))
                continue
            first = one_line(error, 200)
            raise UsageError(masked(f"--storage {url}: cannot open {what} ({type(error).__name__}: {first})")) from None

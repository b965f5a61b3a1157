"""Opening an Optuna study in a database that several workers share (search trials, grid cells).

Why this leans on more than Optuna's public API. Optuna gives a shared study heartbeats, a grace period and a retry
callback for the trials of a dead worker (used here as documented), and `pool_pre_ping` through `engine_kwargs`
replaces a connection that died while idle. What it has no setting for is a call made while the server is away (a
restart): RDBStorage raises at once, from its public methods and from the private ones its trial cache
(`_CachedStorage`, which every study wraps around an RDBStorage) calls directly. A wrapper around the study would not
see the cache's calls, and a storage of our own would re-implement Optuna's schema. So `_patient_storage` subclasses
RDBStorage and retries each call, the public ones and the five the cache makes (CACHE_CALLS), while the error is a
lost connection; it is made when first used, from whatever RDBStorage the installed Optuna has, and the tests run it
against a real PostgreSQL server restarted mid-trial, which is what would fail first if Optuna renamed those calls.

Workers that start together race to create Optuna's tables; the race is told from the driver's own error codes
where it gives them (PostgreSQL's SQLSTATE, SQLite's result code), and from SQLite's text where it does not.
"""
from __future__ import annotations

import functools
import time
from contextlib import contextmanager

from ..environment import seconds_from_environment
from ..errors import StorageError, UsageError, one_line
from ..redact import masked

RACE_RETRIES = 3
HEARTBEAT_S = 30  # a worker killed mid-trial stops beating; after the grace period its trial is marked failed
HEARTBEAT_ENV = "FMNIST_HEARTBEAT_S"  # how often a running trial beats (seconds); its grace period is 4 beats
RECONNECT_S = 120  # how long a call waits for a database that went away (a restart) before it gives up
RECONNECT_ENV = "FMNIST_RECONNECT_S"
MOST_S = 3600  # either setting, at most an hour


def heartbeat_seconds() -> int:
    """The heartbeat interval: $FMNIST_HEARTBEAT_S or HEARTBEAT_S."""
    return seconds_from_environment(HEARTBEAT_ENV, HEARTBEAT_S, MOST_S)


def reconnect_seconds() -> int:
    """How long a database call waits for the server to come back: $FMNIST_RECONNECT_S or RECONNECT_S."""
    return seconds_from_environment(RECONNECT_ENV, RECONNECT_S, MOST_S)


def _is_connection_loss(error: BaseException) -> bool:
    """A database error that another try may not meet (the server restarting, a dropped connection)."""
    import sqlalchemy.exc

    cause = error if isinstance(error, sqlalchemy.exc.SQLAlchemyError) else error.__cause__
    return isinstance(cause, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or \
        getattr(cause, "connection_invalidated", False)


def _connection_loss_in_chain(error: BaseException | None) -> BaseException | None:
    """The connection loss behind `error`, if any: Optuna, failing to record a trial's end, can raise an unrelated
    error (an UnboundLocalError in its clean-up) while handling the database error."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if _is_connection_loss(error):
            return error
        seen.add(id(error))
        # an error raised `from None` (our own one-line errors) has said all there is to say
        error = error.__cause__ if error.__cause__ is not None else \
            (None if error.__suppress_context__ else error.__context__)
    return None


def _patient(method):
    """`method`, tried again for up to reconnect_seconds() while the database cannot be reached."""
    @functools.wraps(method)
    def patient(self, *args, **kwargs):
        given_up_at = time.monotonic() + reconnect_seconds()
        while True:
            try:
                return method(self, *args, **kwargs)
            except Exception as error:  # Optuna wraps SQLAlchemy's errors in its StorageInternalError
                if not _is_connection_loss(error) or time.monotonic() > given_up_at:
                    raise
                time.sleep(1.0)
    return patient


# the private calls Optuna's trial cache makes on the storage (each opens its own session, so trying again is safe)
CACHE_CALLS = ("_create_new_trial", "_set_trial_param", "_get_best_trial_id", "_get_trials", "_get_stale_trial_ids")


@functools.cache
def _patient_storage():
    """RDBStorage whose calls wait out a server restart, and whose heartbeat skips a beat it cannot record (rather
    than ending its thread with a traceback, which would leave the live trial to be failed as stale)."""
    import optuna

    base = optuna.storages.RDBStorage
    methods = {name: _patient(getattr(base, name)) for name in dir(base)
               if (not name.startswith("_") or name in CACHE_CALLS) and callable(getattr(base, name))
               and name != "record_heartbeat"}

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            base.record_heartbeat(self, trial_id)
        except Exception as error:
            if not _is_connection_loss(error):
                raise
    return type("PatientRDBStorage", (base,), {**methods, "record_heartbeat": record_heartbeat})


def shared_storage(url: str, retry_stale: bool = False):
    """A database several workers share: each running trial beats, so a killed worker's trial is failed (and, with
    retry_stale, its point handed out again, once); a call made while the server restarts waits for it
    (reconnect_seconds())."""
    import warnings

    import optuna

    reconnect_seconds()  # a bad $FMNIST_RECONNECT_S is one line now, not in the middle of a trial

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks heartbeats experimental (and renamed the retry callback)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
        beat = heartbeat_seconds()
        return _patient_storage()(url, heartbeat_interval=beat, grace_period=4 * beat, engine_kwargs={"pool_pre_ping": True},
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
        except UsageError:
            raise
        except Exception as error:  # SQLAlchemy/driver errors: unreachable server, bad URL, missing driver, races
            if _is_race(error) and attempt < RACE_RETRIES:  # look again
                time.sleep(0.5 * (attempt + 1))
                continue
            first = one_line(error, 200)
            raise UsageError(masked(f"--storage {url}: cannot open {what} ({type(error).__name__}: {first})")) from None


RACING_SQLSTATES = ("23505", "42P07")  # PostgreSQL: unique_violation, duplicate_table
RACING_SQLITE_CODES = (5, 6)  # SQLite: SQLITE_BUSY, SQLITE_LOCKED (the other worker's transaction holds the file)


def _is_race(error: BaseException) -> bool:
    """Another worker created the study's tables (or holds the SQLite file) at the same moment: try again."""
    import sqlalchemy.exc

    if isinstance(error, sqlalchemy.exc.IntegrityError):
        return True
    chained = error.__cause__ if error.__cause__ is not None else error.__context__
    original = getattr(error, "orig", None) or getattr(chained, "orig", None)
    if getattr(original, "sqlstate", None) in RACING_SQLSTATES:  # psycopg's
        return True
    if (getattr(original, "sqlite_errorcode", 0) & 0xFF) in RACING_SQLITE_CODES:  # the primary code of an extended one
        return True
    # SQLite reports a CREATE TABLE race with its generic error code (1): only its text says what happened
    return "already exists" in str(original if original is not None else error)


@contextmanager
def database_lost(url: str | None, kept: str = "the finished trials are kept in it"):
    """A database that stayed away longer than reconnect_seconds() is one line (StorageError), not a traceback; what the
    study holds stays there."""
    try:
        yield
    except Exception as error:
        lost = _connection_loss_in_chain(error) if url is not None else None
        if lost is None:
            raise
        cause = lost.__cause__ if lost.__cause__ is not None else lost
        raise StorageError(masked(f"--storage {url}: the database cannot be reached ({type(cause).__name__}: "
                                  f"{one_line(cause, 160)}); {kept}: run the same command "
                                  f"again once it is back")) from None

"""Where a search's trials are stored: storage URLs (by default a SQLite file per search under results/optuna/),
the storage opened for trials to be written or opened read-only for a report, the Optuna study of a search at a
scale, and the refusal to continue a stored search whose definition changed."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

from bench.search.definition import Search
from bench.study import StudyError

OPTUNA = Path("results") / "optuna"  # the default storage's folder: one SQLite file per search
DEFINITION = "definition_sha256"  # the Optuna study's user attribute: Search.definition_hash of its trials


@contextmanager
def experimental_on_purpose():
    """Optuna's experimental features used here by choice (heartbeats, failing a dead worker's trials, metric
    names, the search report's plots): their ExperimentalWarning is nothing a user can act on, so it is not
    shown; any other warning is."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def without_password(url: str) -> str:
    """A storage URL fit for a record or a terminal: user:password@ loses the password."""
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not at or ":" not in credentials:
        return url
    return f"{scheme}{sep}{credentials.split(':')[0]}:***@{host}"


def optuna_name(search: Search, scale: str) -> str:
    """The Optuna study of a search at a scale: one per scale, as their scores do not compare."""
    return f"{search.name}-{scale}"


def storage_url(search: Search, asked: str | None) -> str:
    """The URL asked for, else the search's SQLite file under results/optuna/ (made by the first `bench search`:
    open_storage; a report only reads it)."""
    if asked:
        return asked
    return f"sqlite:///{(Path.cwd() / OPTUNA).resolve() / search.name}.db"


def open_storage(url: str, heartbeat: int):
    """The Optuna study's storage, for trials to be written to it (tables and SQLite file made where absent); a
    trial whose worker fell silent is failed and run again once, with the same settings (so its run resumes from
    its checkpoint)."""
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None:
        sqlite_file.parent.mkdir(parents=True, exist_ok=True)
    # SQLite with several workers: wait for a busy database rather than fail after 5 s
    engine = {"connect_args": {"timeout": 60}} if sqlite_file is not None else None
    with experimental_on_purpose():  # heartbeats
        try:
            return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                                  max_retry=1, inherit_intermediate_values=True))
        except Exception as error:  # noqa: BLE001 - a bad URL, a missing driver, a server that is down
            raise _storage_error(url, error) from None


# What RDBStorage reads when it opens a storage, and would create or stamp (write) where absent
OPTUNA_TABLES = {"studies", "version_info", "alembic_version"}


def open_storage_to_read(url: str, nothing_there: StudyError):
    """The storage of a search that has run, opened without writing a byte to it: a SQLite file read-only
    (SQLite's mode=ro: no journal either), another database without creating Optuna's tables. `nothing_there`
    is raised where it holds no search: a SQLite file that does not exist, a database without Optuna's tables."""
    from optuna.storages import RDBStorage

    sqlite_file = _sqlite_file(url)
    if sqlite_file is not None and not sqlite_file.is_file():
        raise nothing_there
    reading_url = url if sqlite_file is None else _read_only_sqlite(url, sqlite_file)
    if OPTUNA_TABLES - _table_names(reading_url, url):  # some or all of them absent
        raise nothing_there
    try:
        return RDBStorage(reading_url, skip_table_creation=True)
    except Exception as error:  # noqa: BLE001 - tables of another Optuna version (its message says what to do)
        raise _storage_error(url, error) from None


def nothing_stored(url: str, search_name: str, scale: str | None = None) -> StudyError:
    """The one line for a storage without the search (at `scale`, where one was asked for): a SQLite file named
    by its path (relative to the working directory where it lies under it), another storage by its URL."""
    sqlite_file = _sqlite_file(url)
    where = without_password(url) if sqlite_file is None else _relative_where_possible(sqlite_file)
    at_scale = f" --scale {scale}" if scale else ""
    return StudyError(f"{where}: no search stored there (run python -m bench search {search_name}{at_scale} first)")


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (":memory:" for one in memory, which holds nothing); None for another database."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError as error:
        raise _storage_error(url, error) from None
    return Path(parsed.database or ":memory:") if parsed.get_backend_name() == "sqlite" else None


def _relative_where_possible(path: Path) -> Path:
    absolute, here = path.absolute(), Path.cwd()
    return absolute.relative_to(here) if absolute.is_relative_to(here) else path


def _read_only_sqlite(url: str, sqlite_file: Path) -> str:
    """The URL of the same SQLite file opened read-only: a SQLite URI (the path percent-encoded, as URIs want)
    with mode=ro, the URL's own options kept."""
    from urllib.parse import quote

    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    read_only = parsed.set(database=f"file:{quote(str(sqlite_file.resolve()))}",
                           query={**parsed.query, "mode": "ro", "uri": "true"})
    return read_only.render_as_string(hide_password=False)


def _table_names(reading_url: str, url: str) -> set[str]:
    import sqlalchemy

    try:
        engine = sqlalchemy.create_engine(reading_url)
        try:
            return set(sqlalchemy.inspect(engine).get_table_names())
        finally:
            engine.dispose()
    except Exception as error:  # noqa: BLE001 - a missing driver, a server that is down, a file that is no database
        raise _storage_error(url, error) from None


def _storage_error(url: str, error: Exception) -> StudyError:
    return StudyError(f"--storage {without_password(url)}: {type(error).__name__}: "
                      f"{str(error).strip().splitlines()[0]}")


def refuse_a_changed_search(optuna_study, search: Search, scale: str, url: str) -> None:
    """Trials drawn, trained or scored under another definition would not compare with new ones: a stored
    search whose file (or the scale's own settings) changed since is not continued. One stored before
    the definition was recorded is taken as it is."""
    stored = optuna_study.user_attrs.get(DEFINITION)
    if stored not in (None, search.definition_hash(scale)):
        raise StudyError(f"{search.path}: changed since the Optuna study {optuna_study.study_name!r} in "
                         f"{without_password(url)} ran its trials at scale {scale}: give another --storage, or "
                         f"delete that study (optuna delete-study --study-name {optuna_study.study_name} "
                         f"--storage URL)")



def existing_optuna_study(name: str, url: str, heartbeat: int):
    import optuna

    try:
        return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat))
    except KeyError:
        raise StudyError(f"{without_password(url)}: no Optuna study {name!r} there (run bench search first)"
                         ) from None

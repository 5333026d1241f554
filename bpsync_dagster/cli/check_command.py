"""`bpsync check`: load the configuration and keys, open every connection, report each.

Every check runs, whatever the others found: one line for each key, the database, the broker, each
entry of each storage and the remote API, `ok` or the problem, so that one run shows all there is to fix.
"""

from collections.abc import Callable

from bpsync_dagster.broker import check_queue
from bpsync_dagster.c4gh import fingerprint
from bpsync_dagster.c4gh.keys import load_private_key, load_public_key
from bpsync_dagster.configuration import PosixStorage, S3Storage, Settings, StorageSettings
from bpsync_dagster.remote_api import RemoteSyncApi
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.storage import ArchiveStorage, SyncStorage

Result = tuple[str, str]


def _node_key(settings: Settings) -> list[Result]:
    crypt4gh = settings.crypt4gh
    key = load_private_key(crypt4gh.private_key_path, crypt4gh.passphrase)
    result = f"ok (read as {key.format}; public key fingerprint {fingerprint(key.public_key)})"
    if key.warning:
        result += f"; warning: {key.warning}"
    return [(f"crypt4gh node private key {crypt4gh.private_key_path}", result)]


def _receiver_key(settings: Settings) -> list[Result]:
    path = settings.crypt4gh.receiver_public_key_path
    key = load_public_key(path)
    return [
        (
            f"crypt4gh receiver public key {path}",
            f"ok (read as {key.format}; fingerprint {fingerprint(key.public_key)})",
        )
    ]


def _database(settings: Settings) -> list[Result]:
    database = SdaDatabase(settings.database)
    with database.connect() as connection:
        state = database.state(connection)
    subject = f"database {database.describe()}"
    results = [(subject, f"ok (schema version {state.version}, the SDA sync role's grants)")]
    if not state.reads_datasets:
        results.append(
            (
                f"{subject} {state.schema}.datasets",
                f"ok, not readable: syncs of messages with accession IDs need nothing more; `bpsync sync` without "
                f"accession IDs, backfill and audit need GRANT SELECT ON {state.schema}.datasets TO {state.user}",
            )
        )
    return results


def _broker(settings: Settings) -> list[Result]:
    broker = settings.broker
    return [(f"broker {broker.host}:{broker.port} queue {broker.queue}", check_queue(broker))]


def _remote(settings: Settings) -> list[Result]:
    remote = RemoteSyncApi(settings.remote, connect_timeout_seconds=5, read_timeout_seconds=10)
    return [(f"remote API {remote.url}", remote.reachability())]


def _entry_check(storage: StorageSettings, entry: S3Storage | PosixStorage) -> tuple[str, Callable[[], list[Result]]]:
    """The check of one storage entry alone, with the subject its failure is reported under."""
    kind, where = ("s3", entry.endpoint) if isinstance(entry, S3Storage) else ("posix", str(entry.path))
    alone = StorageSettings(name=storage.name, **{kind: (entry,)})
    subject = f"{storage.name} {kind} {where}"
    if storage.name == "archive":
        return subject, lambda: ArchiveStorage(alone).check()
    if entry.writer_disabled:
        return subject, lambda: [(subject, "ok, not checked: writer_disabled")]
    return subject, lambda: SyncStorage(alone).check()


def _checks(settings: Settings) -> list[tuple[str, Callable[[], list[Result]]]]:
    """Each check with the subject its failure is reported under."""
    crypt4gh = settings.crypt4gh
    broker = settings.broker
    return [
        (f"crypt4gh node private key {crypt4gh.private_key_path}", lambda: _node_key(settings)),
        (f"crypt4gh receiver public key {crypt4gh.receiver_public_key_path}", lambda: _receiver_key(settings)),
        ("database", lambda: _database(settings)),
        (f"broker {broker.host}:{broker.port} queue {broker.queue}", lambda: _broker(settings)),
        *(_entry_check(storage, entry) for storage in (settings.archive, settings.sync) for entry in storage.entries),
        ("remote API", lambda: _remote(settings)),
    ]


def check(settings: Settings, where: str) -> int:
    """Print a line for each check, the configuration (read from `where`) first. Exit status 0 when
    everything is ok; usable as a readiness probe."""
    print(f"config: {where}: ok (sync.centerPrefix {settings.center_prefix})")
    for warning in settings.warnings:
        print(warning)
    failed = False
    for subject, run_check in _checks(settings):
        try:
            results = run_check()
        except Exception as error:
            results = [(subject, str(error))]
        for line_subject, result in results:
            print(f"{line_subject}: {result}", flush=True)
            failed = failed or not result.startswith("ok")
    return 1 if failed else 0

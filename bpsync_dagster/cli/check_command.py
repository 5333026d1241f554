"""`bpsync check`: load the configuration and keys, open every connection, report each."""

from collections.abc import Callable

from bpsync_dagster.broker import check_queue
from bpsync_dagster.c4gh import fingerprint, load_node_keys
from bpsync_dagster.configuration import Settings
from bpsync_dagster.remote_api import RemoteSyncApi
from bpsync_dagster.sda_database import SdaDatabase
from bpsync_dagster.storage import ArchiveStorage, SyncStorage

Check = Callable[[Settings], list[tuple[str, str]]]


def _keys(settings: Settings) -> list[tuple[str, str]]:
    keys = load_node_keys(settings.crypt4gh)
    node = f"ok (read as {keys.node.format}; public key fingerprint {fingerprint(keys.public_key)})"
    if keys.node.warning:
        node += f"; warning: {keys.node.warning}"
    receiver = f"ok (read as {keys.receiver.format}; fingerprint {fingerprint(keys.receiver_public_key)})"
    return [
        (f"crypt4gh node private key {settings.crypt4gh.private_key_path}", node),
        (f"crypt4gh receiver public key {settings.crypt4gh.receiver_public_key_path}", receiver),
    ]


def _database(settings: Settings) -> list[tuple[str, str]]:
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


def _broker(settings: Settings) -> list[tuple[str, str]]:
    broker = settings.broker
    return [(f"broker {broker.host}:{broker.port} queue {broker.queue}", check_queue(broker))]


def _storages(settings: Settings) -> list[tuple[str, str]]:
    return [*ArchiveStorage(settings.archive).check(), *SyncStorage(settings.sync).check()]


def _remote(settings: Settings) -> list[tuple[str, str]]:
    remote = RemoteSyncApi(settings.remote, connect_timeout_seconds=5, read_timeout_seconds=10)
    return [(f"remote API {remote.url}", remote.reachability())]


CHECKS: dict[str, Check] = {
    "crypt4gh keys": _keys,
    "database": _database,
    "broker": _broker,
    "storage": _storages,
    "remote API": _remote,
}


def check(settings: Settings) -> int:
    """Exit status 0 when everything is ok; usable as a readiness probe."""
    print(f"config: ok (sync.centerPrefix {settings.center_prefix})")
    for warning in settings.warnings:
        print(warning)
    results: list[tuple[str, str]] = []
    for subject, run_check in CHECKS.items():
        try:
            results += run_check(settings)
        except Exception as error:
            results.append((subject, str(error)))
    for subject, result in results:
        print(f"{subject}: {result}")
    return 0 if all(result.startswith("ok") for _, result in results) else 1

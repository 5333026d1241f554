"""The `sync_dataset` job: copy one dataset's files to sync storage and tell the remote what it holds."""

import logging
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass

import dagster as dg
from pydantic import Field

from bpsync_dagster.c4gh import reencrypt_header
from bpsync_dagster.dataset_ids import InvalidId, check_id, escaped
from bpsync_dagster.errors import SyncError, is_final
from bpsync_dagster.inventory import DATASET_PARTITIONS, SYNC_JOB_NAME, SYNCED_DATASET
from bpsync_dagster.jobs.batching import MAX_BATCH_BYTES, MAX_BATCH_FILES, MIN_BATCH_BYTES, BatchLimits, plan_batches
from bpsync_dagster.jobs.executors import chosen_deployment
from bpsync_dagster.jobs.failures import COPY_RETRY, DATABASE_RETRY, REMOTE_API_RETRY, final_failures
from bpsync_dagster.jobs.progress import LIVE_COPIES, CopyProgress
from bpsync_dagster.remote_api import build_manifest, manifest_sha256, validate_manifest
from bpsync_dagster.resources import (
    ArchiveStorageResource,
    Crypt4ghKeysResource,
    RemoteSyncApiResource,
    SdaDatabaseResource,
    SyncStorageResource,
)
from bpsync_dagster.sda_database import FileRecord, check_records
from bpsync_dagster.storage import CopyOutcome, copy_file
from bpsync_dagster.storage.transfer import SERVER_SIDE, SMALL_FILE_BYTES, small_files_in_flight

logger = logging.getLogger(__name__)
DEPLOYMENT = chosen_deployment()

DATASET_TAG = "dataset_id"
MAX_TABLE_ROWS = 5000
# Below these a file's copy time is mostly per-file overhead (connections, the header, the rename),
# so its rate would say nothing about throughput: the per-file table shows NO_RATE instead.
MIN_RATE_BYTES = 1024**2
MIN_RATE_SECONDS = 0.010
NO_RATE = "—"
DATASET_MEMBERSHIP_SKIPPED = (
    "skipped the check that every file belongs to this dataset: the SDA database role may not read "
    "sda.datasets (files mapped to different datasets in sda.file_dataset are still refused)"
)
NOT_VERIFIED = (
    "not verified: sda.checksums has no ARCHIVED sha256 for it, so its body was copied with its length checked only"
)


class SyncRequest(dg.Config):
    """Which files of the dataset (the run's partition of `synced_dataset`) to sync."""

    accession_ids: list[str] = Field(
        default_factory=list,
        description="Accession IDs of the files to sync; empty means every file of the dataset in sda.file_dataset.",
    )


class CopyConfig(dg.Config):
    parallel_files: int = Field(default=4, ge=1, le=64, description="Files of a batch copied at the same time.")
    bandwidth_limit: int | None = Field(
        default=None,
        ge=0,
        description="Bytes per second the batch writes to sync storage, over all its files (0: no limit); "
        "unset: sync.copy.bandwidthLimit.",
    )


class BatchConfig(dg.Config):
    """Copy batches; unset limits are the executor's defaults (one batch in-process)."""

    max_batch_bytes: int | None = Field(
        default=None, ge=MIN_BATCH_BYTES, le=MAX_BATCH_BYTES, description="Bytes of a copy batch (a larger file alone)."
    )
    max_batch_files: int | None = Field(default=None, ge=1, le=MAX_BATCH_FILES, description="Files of a copy batch.")

    def limits(self, default: BatchLimits) -> BatchLimits:
        return BatchLimits(self.max_batch_bytes or default.max_bytes, self.max_batch_files or default.max_files)


@dataclass(frozen=True)
class DatasetFiles:
    dataset_id: str
    records: tuple[FileRecord, ...]


@dataclass(frozen=True)
class FileToCopy:
    record: FileRecord
    header: bytes


@dataclass(frozen=True)
class CopyBatch:
    """Files of a dataset copied by one step; batch `index` (from 0) of `count`."""

    dataset_id: str
    index: int
    count: int
    files: tuple[FileToCopy, ...]

    def describe(self) -> str:
        suffix = f" batch {self.index + 1} of {self.count}" if self.count > 1 else ""
        return f"dataset {self.dataset_id}{suffix}"


class CopyFailed(SyncError):
    """One or more files of the dataset could not be copied, none for good; names each file and cause."""

    transient = True


@dg.op(retry_policy=DATABASE_RETRY)
def fetch_file_records(
    context: dg.OpExecutionContext, config: SyncRequest, sda_database: SdaDatabaseResource
) -> DatasetFiles:
    """Look up the files' records of the run's dataset (its partition key) in one query; refuse the
    dataset before anything is copied if a record cannot be synced or the manifest could not be built."""
    dataset_id = context.partition_key
    try:
        check_id("dataset_id", dataset_id)
        for index, accession_id in enumerate(config.accession_ids):
            check_id(f"accession_ids/{index}", accession_id)
    except InvalidId as error:
        raise dg.Failure(description=str(error), allow_retries=False) from error
    if context.run.tags.get(DATASET_TAG) != dataset_id:
        context.instance.add_run_tags(context.run_id, {DATASET_TAG: dataset_id})
    with final_failures():
        lookup = sda_database.client().file_records(dataset_id, config.accession_ids)
        records = lookup.records
        if not records and not config.accession_ids:
            raise dg.Failure(
                description=f"dataset {dataset_id}: no files in sda.file_dataset for this dataset",
                allow_retries=False,
            )
        check_records(dataset_id, config.accession_ids, records)
        build_manifest(dataset_id, records)
    membership = "checked" if lookup.datasets_readable else DATASET_MEMBERSHIP_SKIPPED
    if not lookup.datasets_readable:
        context.log.warning(f"dataset {dataset_id}: {DATASET_MEMBERSHIP_SKIPPED}")
    context.add_output_metadata({"dataset_id": dataset_id, "files": len(records), "dataset_membership": membership})
    return DatasetFiles(dataset_id, tuple(records))


@dg.op
def reencrypt_headers(
    context: dg.OpExecutionContext, dataset: DatasetFiles, crypt4gh_keys: Crypt4ghKeysResource
) -> list[FileToCopy]:
    """Re-encrypt every header for the receiver's public key; bodies are never decrypted."""
    with final_failures():
        keys = crypt4gh_keys.node_keys()
    files, problems = [], []
    for record in dataset.records:
        try:
            header = reencrypt_header(bytes.fromhex(record.header_hex), keys.secret_key, keys.receiver_public_key)
        except Exception as error:
            problems.append(f"{record.describe()}: {error}")
        else:
            files.append(FileToCopy(record, header))
    if problems:
        raise dg.Failure(
            description=escaped(f"dataset {dataset.dataset_id}: cannot re-encrypt headers: {'; '.join(problems[:10])}"),
            allow_retries=False,
        )
    context.add_output_metadata({"headers": len(files)})
    return files


@dg.op(out=dg.DynamicOut(CopyBatch))
def plan_copy_batches(
    context: dg.OpExecutionContext, config: BatchConfig, dataset: DatasetFiles, files: list[FileToCopy]
) -> Iterator[dg.DynamicOutput[CopyBatch]]:
    """Group the files into batches by bytes and count, each copied by a step of its own (on any
    worker with a scale-out executor); one batch in-process unless the config asks for more."""
    limits = config.limits(DEPLOYMENT.batch_limits)
    sizes = [len(item.header) + (item.record.archive_file_size or 0) for item in files]
    ranges = plan_batches(sizes, limits)
    if len(ranges) > 1:
        context.log.info(
            f"dataset {dataset.dataset_id}: {len(files)} files in {len(ranges)} copy batches of at most "
            f"{limits.max_files} files and {limits.max_bytes} bytes (a larger file alone), executor {DEPLOYMENT.executor_name}"
        )
    for index, indices in enumerate(ranges):
        batch = CopyBatch(dataset.dataset_id, index, len(ranges), tuple(files[position] for position in indices))
        yield dg.DynamicOutput(
            batch,
            mapping_key=str(index),
            metadata={"files": len(indices), "bytes": sum(sizes[position] for position in indices)},
        )


@dg.op(retry_policy=COPY_RETRY)
def copy_files(
    context: dg.OpExecutionContext,
    config: CopyConfig,
    batch: CopyBatch,
    archive_storage: ArchiveStorageResource,
    sync_storage: SyncStorageResource,
) -> list[CopyOutcome]:
    """Copy header + archived body of every file of the batch, several at a time; reuse finished
    objects on a retry, a re-execution, or a batch a lost worker had begun."""
    reuse_existing = context.retry_number > 0 or context.run.parent_run_id is not None or _begun_before(context)
    with final_failures():
        archive, sync = archive_storage.client(), sync_storage.client(config.bandwidth_limit)
    outcomes: list[CopyOutcome] = []
    failures: list[tuple[FileRecord, BaseException]] = []
    dataset_id = batch.dataset_id
    progress = CopyProgress(batch.describe(), len(batch.files))
    step = op_step_key(_step_key(context))
    planned = sum(len(item.header) + (item.record.archive_file_size or 0) for item in batch.files)
    log_context = {"dataset_id": dataset_id, "run_id": context.run_id}
    small_in_flight = small_files_in_flight(sync)
    with (
        LIVE_COPIES.copying(step, len(batch.files), planned, lambda: sync.bandwidth.taken),
        ThreadPoolExecutor(max_workers=config.parallel_files, thread_name_prefix="copy") as pool,
        ThreadPoolExecutor(max_workers=max(small_in_flight, 1), thread_name_prefix="copy-small") as small_pool,
    ):
        pending = {
            (small_pool if small_in_flight and _is_small(item) else pool).submit(
                copy_file, item.record, item.header, archive, sync, reuse_existing
            ): item.record
            for item in batch.files
        }
        while pending and not failures:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                record = pending.pop(future)
                if future.exception() is not None:
                    failures.append((record, future.exception()))
                    continue
                outcome = future.result()
                outcomes.append(outcome)
                LIVE_COPIES.finished(step, outcome)
                accession_id = escaped(record.accession_id)
                logger.debug(
                    f"dataset {dataset_id} file {accession_id}: in place at {escaped(outcome.destination)}",
                    extra={**log_context, "accession_id": accession_id},
                )
                if not outcome.verified:
                    logger.warning(
                        f"dataset {dataset_id} file {record.accession_id}: {NOT_VERIFIED}",
                        extra={**log_context, "accession_id": record.accession_id},
                    )
                _log_progress(progress.add(outcome), log_context)
        for future in pending:
            future.cancel()
    _log_progress(progress.flush(), log_context)
    if failures:
        reasons = "; ".join(f"{record.describe()}: {error}" for record, error in failures)
        message = escaped(f"dataset {dataset_id}: copy failed: {reasons}")
        if any(is_final(error) for _, error in failures):
            raise dg.Failure(description=message, allow_retries=False)
        raise CopyFailed(message)
    outcomes.sort(key=lambda outcome: outcome.accession_id)
    context.add_output_metadata(
        {
            **copy_metadata(outcomes),
            "batch": f"{batch.index + 1} of {batch.count}",
            "peak_buffered_bytes": dg.MetadataValue.int(sync.budget.peak),
            "buffer_limit_bytes": dg.MetadataValue.int(sync.budget.limit),
            "bandwidth_limit_bytes_per_second": dg.MetadataValue.int(sync.bandwidth.bytes_per_second),
            "worker": f"{socket.gethostname()} pid {os.getpid()}",
        }
    )
    return outcomes


def _is_small(item: FileToCopy) -> bool:
    size = item.record.archive_file_size
    return size is not None and size <= SMALL_FILE_BYTES


def _begun_before(context: dg.OpExecutionContext) -> bool:
    """Whether this step started before in this run: a worker that died mid-batch handed it back
    to the broker, and another worker runs it again without a Dagster retry."""
    step_key = _step_key(context)
    starts = context.instance.get_records_for_run(context.run_id, of_type=dg.DagsterEventType.STEP_START).records
    return sum(record.event_log_entry.step_key == step_key for record in starts) > 1


def _step_key(context: dg.OpExecutionContext) -> str:
    return f"{context.op_handle}[{context.get_mapping_key()}]"


def op_step_key(step_key: str) -> str:
    """A step's key inside the `synced_dataset` graph, as `bpsync` prints it: `copy_files[0]`, `post_manifest`."""
    return step_key.removeprefix(f"{synced_dataset.node_def.name}.")


def is_copy_step(step_key: str) -> bool:
    """Whether a step of the run copies a batch (`copy_files[0]`, `copy_files[1]`, ...)."""
    return op_step_key(step_key).partition("[")[0] == copy_files.name


def all_outcomes(batches: list[list[CopyOutcome]]) -> list[CopyOutcome]:
    """The outcomes of every batch, by accession ID."""
    return sorted((outcome for batch in batches for outcome in batch), key=lambda outcome: outcome.accession_id)


def _log_progress(line: str | None, log_context: dict[str, str]) -> None:
    if line is not None:
        logger.info(line, extra=log_context)


def copy_rate(outcome: CopyOutcome) -> str:
    """The file's copy rate in MB/s (MiB per second) as the per-file table shows it: NO_RATE for a
    skipped file and for one under MIN_RATE_BYTES or MIN_RATE_SECONDS; one decimal below 10, none from 10,
    so that the value stays as narrow as its column's name."""
    if outcome.skipped or outcome.bytes_written < MIN_RATE_BYTES or outcome.seconds < MIN_RATE_SECONDS:
        return NO_RATE
    rate = outcome.megabytes_per_second
    return f"{rate:.1f}" if rate < 10 else f"{rate:.0f}"


def copy_metadata(outcomes: list[CopyOutcome]) -> dict[str, dg.MetadataValue]:
    """A copy step's output metadata: counts, and a table with one row per file (at most MAX_TABLE_ROWS)."""
    copied = [outcome for outcome in outcomes if not outcome.skipped]
    seconds = max((outcome.seconds for outcome in copied), default=0.0)
    total = sum(outcome.bytes_written for outcome in copied)
    table = dg.MetadataValue.table(
        records=[
            dg.TableRecord(
                {
                    "accession_id": escaped(outcome.accession_id),
                    "destination": escaped(outcome.destination),
                    "action": "skip" if outcome.skipped else "copy",
                    "bytes": outcome.bytes_written,
                    "seconds": round(outcome.seconds, 3),
                    "MB/s": copy_rate(outcome),
                    "checksum": "ok" if outcome.verified else "not verified",
                    "mode": "-" if outcome.skipped else outcome.mode,
                }
            )
            for outcome in outcomes[:MAX_TABLE_ROWS]
        ],
        schema=dg.TableSchema(
            columns=[
                dg.TableColumn("accession_id", "string"),
                dg.TableColumn("destination", "string"),
                dg.TableColumn("action", "string"),
                dg.TableColumn("bytes", "int"),
                dg.TableColumn("seconds", "float"),
                dg.TableColumn("MB/s", "string"),
                dg.TableColumn("checksum", "string"),
                dg.TableColumn("mode", "string"),
            ]
        ),
    )
    return {
        "files_copied": dg.MetadataValue.int(len(copied)),
        "files_skipped": dg.MetadataValue.int(len(outcomes) - len(copied)),
        "files_not_verified": dg.MetadataValue.int(sum(not outcome.verified for outcome in outcomes)),
        "files_copied_server_side": dg.MetadataValue.int(sum(outcome.mode == SERVER_SIDE for outcome in copied)),
        "bytes_copied": dg.MetadataValue.int(total),
        "slowest_file_seconds": dg.MetadataValue.float(round(seconds, 3)),
        "files": table,
    }


@dg.op
def build_file_sync_manifest(
    context: dg.OpExecutionContext,
    dataset: DatasetFiles,
    batches: list[list[CopyOutcome]],
    remote_api: RemoteSyncApiResource,
) -> dict:
    """The manifest of every file, validated against file-sync.json; built only once every batch is in place."""
    in_place = {outcome.accession_id for outcome in all_outcomes(batches)}
    missing = [record.accession_id for record in dataset.records if record.accession_id not in in_place]
    if missing:
        raise dg.Failure(
            description=escaped(
                f"dataset {dataset.dataset_id}: not every file is in sync storage ({', '.join(missing)})"
            ),
            allow_retries=False,
        )
    with final_failures():
        manifest = build_manifest(dataset.dataset_id, list(dataset.records))
        validate_manifest(manifest, remote_api.manifest_schema())
    context.add_output_metadata({"files": len(dataset.records), "manifest_sha256": manifest_sha256(manifest)})
    return manifest


@dg.op(retry_policy=REMOTE_API_RETRY, out=dg.Out(dg.Nothing))
def post_manifest(
    context: dg.OpExecutionContext,
    manifest: dict,
    batches: list[list[CopyOutcome]],
    remote_api: RemoteSyncApiResource,
) -> None:
    """POST the manifest to the remote sync API; only HTTP 200 counts as delivered. Its output is the
    dataset's partition of `synced_dataset`, whose metadata says what the remote now holds."""
    outcomes = all_outcomes(batches)
    with final_failures():
        result = remote_api.client().post_manifest(manifest)
    dataset_id = manifest["dataset_id"]
    logger.info(
        f"dataset {dataset_id}: manifest accepted by {result.url}",
        extra={"dataset_id": dataset_id, "run_id": context.run_id},
    )
    run = context.instance.get_run_record_by_id(context.run_id)
    started = run.start_time if run is not None and run.start_time else time.time()
    context.add_output_metadata(
        {
            "files": len(outcomes),
            "total_bytes": sum(outcome.object_size for outcome in outcomes),
            "sync_locations": escaped(", ".join(sync_locations(manifest, outcomes))),
            "manifest_sha256": manifest_sha256(manifest),
            "remote_url": dg.MetadataValue.url(result.url),
            "remote_http_status": result.status,
            "post_seconds": round(result.seconds, 3),
            "run_seconds": round(time.time() - started, 3),
        }
    )


def sync_locations(manifest: dict, outcomes: list[CopyOutcome]) -> list[str]:
    """The sync storage roots (directories, buckets) the dataset's objects are in."""
    paths = {entry["file_id"]: entry["filepath"] for entry in manifest["dataset_files"]}
    roots = set()
    for outcome in outcomes:
        path = paths.get(outcome.accession_id, "")
        destination = outcome.destination
        roots.add(destination[: -len(path)].rstrip("/") if path and destination.endswith(path) else destination)
    return sorted(roots)


@dg.graph_asset(
    key=SYNCED_DATASET,
    partitions_def=DATASET_PARTITIONS,
    group_name="sync",
    kinds={"crypt4gh"},
    description=(
        "A local dataset copied to sync storage and announced to the remote sync API, one partition per "
        "dataset ID. Materialized by a successful sync_dataset run; its check (run by audit_sync, or on its "
        "own from here) says whether sync storage still matches the SDA database."
    ),
)
def synced_dataset() -> object:
    """Sync one dataset: records, re-encrypted headers, copy batches, then the manifest to the remote."""
    dataset = fetch_file_records()
    batches = plan_copy_batches(dataset, reencrypt_headers(dataset)).map(copy_files).collect()
    return post_manifest(build_file_sync_manifest(dataset, batches), batches)


# Without the check: it lists the dataset's files, which needs SELECT on sda.datasets, and a sync of
# named files must not. A new materialization leaves the check's earlier results behind it.
sync_dataset = dg.define_asset_job(
    SYNC_JOB_NAME,
    selection=dg.AssetSelection.assets(SYNCED_DATASET).without_checks(),
    executor_def=DEPLOYMENT.executor,
    tags={"service": "bpsync"},
    description="Sync one dataset: materialize its partition of synced_dataset.",
)


def sync_run_config(
    accession_ids: list[str],
    parallel_files: int | None = None,
    batch_limits: dict[str, int] | None = None,
    bandwidth_limit: int | None = None,
) -> dict[str, object]:
    """Run config of a sync of the given files of the run's dataset (all of them when empty);
    `batch_limits` (`max_batch_files`, `max_batch_bytes`) where not the executor's defaults,
    `bandwidth_limit` (bytes per second, 0 for none) where not `sync.copy.bandwidthLimit`."""
    ops: dict[str, object] = {"fetch_file_records": {"config": {"accession_ids": list(accession_ids)}}}
    copy_config = {
        name: value
        for name, value in (("parallel_files", parallel_files), ("bandwidth_limit", bandwidth_limit))
        if value is not None
    }
    if copy_config:
        ops["copy_files"] = {"config": copy_config}
    if batch_limits:
        ops["plan_copy_batches"] = {"config": batch_limits}
    return {"ops": {synced_dataset.node_def.name: {"ops": ops}}}


def requested_accession_ids(run_config: dict) -> list[str] | None:
    """The accession IDs a sync run was asked for (`sync_run_config`), None if its config names none."""
    graph = run_config.get("ops", {}).get(synced_dataset.node_def.name, {})
    accession_ids = graph.get("ops", {}).get("fetch_file_records", {}).get("config", {}).get("accession_ids")
    return list(accession_ids) if isinstance(accession_ids, list) else None

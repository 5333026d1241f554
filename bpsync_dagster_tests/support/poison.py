"""Poison messages for the mapping queue: valid by the schema, or too costly to check in full, each
with the text its info-error's reason must hold. The sensor tests and the soak publish them."""

import json
from collections.abc import Callable

from bpsync_dagster_tests.support.sensor_ticks import mapping

MIB = 1024 * 1024
NOT_UTF8_CORRELATION_ID = b"\xff\xfe-corr"

PoisonMessages = dict[str | bytes, tuple[bytes, str]]


def poison_messages(dataset_id: Callable[[str], str]) -> PoisonMessages:
    """Correlation id → (body, text its info-error's reason must hold); `dataset_id` names a test's datasets."""
    nul_dataset = dataset_id("nul") + "\x00x"
    long_dataset = dataset_id("long-") + "7" * 10_000
    return {
        "nul-dataset": (
            json.dumps(mapping(nul_dataset, "SYNC-F1")).encode(),
            f"dataset_id: {nul_dataset!r} holds '\\x00', which is not a printable character",
        ),
        "nul-file": (
            json.dumps(mapping(dataset_id("nul-file"), "SYNC-F1", "SYNC-F\x002")).encode(),
            "accession_ids/1: 'SYNC-F\\x002' holds '\\x00', which is not a printable character",
        ),
        "long-dataset": (
            json.dumps(mapping(long_dataset, "SYNC-F1")).encode(),
            f"({len(long_dataset)} characters) is longer than 256 characters",
        ),
        NOT_UTF8_CORRELATION_ID: (
            json.dumps(mapping(dataset_id("binary-correlation"), "SYNC-F1")).encode(),
            "the correlation id b'\\xff\\xfe-corr' is not valid UTF-8",
        ),
        "16-mib": (
            json.dumps({"type": "mapping", "dataset_id": dataset_id("huge"), "accession_ids": [1] * (8 * MIB)})
            .replace(" ", "")
            .encode(),
            "accession_ids/0: 1 is not of type 'string'",
        ),
    }


def poison_dataset_ids(poison: PoisonMessages) -> set[str]:
    """The dataset IDs the poison messages name: no run may carry one of them."""
    return {json.loads(body)["dataset_id"] for body, _ in poison.values()}


def info_error_problem(poison: PoisonMessages, correlation_id: str | bytes, info_error: dict) -> str | None:
    """What is wrong with the info-error published for the poison message `correlation_id`, or None.

    Its reason names the cause in one printable line; the original message travels whole; the ID is
    in the original message once, and the reason shows only a cut of it."""
    message, cause = poison[correlation_id]
    reason = str(info_error.get("reason", ""))
    if cause not in reason:
        return f"{correlation_id!r}: the reason does not say {cause[:80]!r}: {reason[:300]!r}"
    if "\n" in reason or len(reason) > 1000:
        return f"{correlation_id!r}: the reason is not one line of at most 1000 characters ({len(reason)})"
    if info_error.get("original-message") != message.decode():
        return f"{correlation_id!r}: the original message is not the one published"
    if len(reason) >= 300 and correlation_id != "16-mib":
        return f"{correlation_id!r}: the reason repeats the value in full ({len(reason)} characters)"
    return None

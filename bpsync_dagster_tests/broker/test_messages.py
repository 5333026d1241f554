"""`decide` on bad dataset-mapping messages: every bad body gets a one-line reason naming its cause,
and no body, however malformed, large or deep, makes it raise."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.protocols import Validator

from bpsync_dagster.broker.messages import (
    MAX_REASON_LENGTH,
    Decision,
    ForeignDataset,
    InvalidMessage,
    SyncDataset,
    decide,
    info_error_body,
)
from bpsync_dagster.configuration.schemas import SHIPPED_SCHEMAS, load_schema, schema_validator

PREFIX = "SYNC"
DATASET = "SYNC-001-12345"
ISOLATED = schema_validator(load_schema(SHIPPED_SCHEMAS / "isolated" / "dataset-mapping.json"))
FEDERATED = schema_validator(load_schema(SHIPPED_SCHEMAS / "federated" / "dataset-mapping.json"))
MIB = 1024 * 1024


def body(message: object) -> bytes:
    return json.dumps(message).encode()


def mapping(**changes: object) -> bytes:
    message = {"type": "mapping", "dataset_id": DATASET, "accession_ids": ["SYNC-123-00003", "SYNC-123-00004"]}
    message.update(changes)
    return body({key: value for key, value in message.items() if value is not None})


def invalid_reason(message: bytes, validator: Validator = ISOLATED) -> str:
    decision = decide(message, validator, PREFIX)
    assert isinstance(decision, InvalidMessage), decision
    assert decision.reason and "\n" not in decision.reason
    assert len(decision.reason) <= MAX_REASON_LENGTH
    return decision.reason


def test_a_good_mapping_asks_for_its_files() -> None:
    assert decide(mapping(), ISOLATED, PREFIX) == SyncDataset(DATASET, ("SYNC-123-00003", "SYNC-123-00004"))


@pytest.mark.parametrize(
    "message", [b"{not json", b"", b"   ", b"{'single': 'quotes'}", b'{"a": 1,}', b"\xef\xbb\xbf{}"]
)
def test_a_body_that_is_not_json_says_so(message: bytes) -> None:
    assert invalid_reason(message).startswith("the message is not JSON: ")


@pytest.mark.parametrize("message", [b"\xff\xfe not utf-8", b'{"dataset_id": "\xc3"}', b"\xed\xa0\x80", b"\xc0\xaf"])
def test_a_body_that_is_not_utf8_says_so(message: bytes) -> None:
    assert invalid_reason(message) == "the message is not valid UTF-8"


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
@pytest.mark.parametrize("closed", [False, True], ids=["unclosed", "closed"])
def test_json_nested_100000_levels_deep_is_refused(opening: bytes, closed: bool) -> None:
    closing = (b"]" if opening == b"[" else b"}") * 100_000 if closed else b""

    reason = invalid_reason(opening * 100_000 + closing)

    assert reason.startswith("the message is not JSON: maximum recursion depth exceeded")


def test_deep_nesting_inside_a_mapping_is_refused_by_the_schema() -> None:
    reason = invalid_reason(
        b'{"type":"mapping","dataset_id":"SYNC-1","accession_ids":' + b"[" * 900 + b"]" * 900 + b"}"
    )

    assert reason.startswith("accession_ids/0: [[[")


def test_a_1_mib_body_that_is_not_json_gets_a_short_reason() -> None:
    assert invalid_reason(b"x" * MIB) == "the message is not JSON: Expecting value: line 1 column 1 (char 0)"


def test_a_1_mib_mapping_with_many_files_is_accepted() -> None:
    accession_ids = [f"SYNC-123-{number:08d}" for number in range(MIB // 20)]
    message = mapping(accession_ids=accession_ids)
    assert len(message) >= MIB

    decision = decide(message, ISOLATED, PREFIX)

    assert decision == SyncDataset(DATASET, tuple(accession_ids))


def test_a_1_mib_bad_value_still_names_the_cause() -> None:
    reason = invalid_reason(mapping(accession_ids=["SYNC-123-00003", "x" * MIB + " y"]))

    assert reason.startswith("accession_ids/1: ")
    assert "does not match" in reason


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (body(None), "the message: None is not of type 'object'"),
        (body([]), "the message: [] is not of type 'object'"),
        (body("mapping"), "the message: 'mapping' is not of type 'object'"),
        (body(17), "the message: 17 is not of type 'object'"),
        (b"NaN", "the message: nan is not of type 'object'"),
        (mapping(dataset_id=12345), "dataset_id: 12345 is not of type 'string'"),
        (mapping(dataset_id=["SYNC-1"]), "dataset_id: ['SYNC-1'] is not of type 'string'"),
        (mapping(accession_ids="SYNC-123-00003"), "accession_ids: 'SYNC-123-00003' is not of type 'array'"),
        (mapping(accession_ids=["SYNC-123-00003", 4]), "accession_ids/1: 4 is not of type 'string'"),
        (mapping(accession_ids=[None]), "accession_ids/0: None is not of type 'string'"),
        (mapping(accession_ids={"SYNC-123-00003": True}), "is not of type 'array'"),
        (mapping(type=["mapping"]), "type: ['mapping'] is not of type 'string'"),
        (mapping(dataset_id=None), "the message: 'dataset_id' is a required property"),
        (mapping(accession_ids=None), "the message: 'accession_ids' is a required property"),
        (mapping(dataset_id="S"), "dataset_id: 'S' is too short"),
    ],
)
def test_wrong_types_name_the_field_and_the_cause(message: bytes, expected: str) -> None:
    assert expected in invalid_reason(message)


@pytest.mark.parametrize("kind", ["release", "deprecate", "Mapping", "ingest", ""])
def test_a_type_other_than_mapping_is_refused(kind: str) -> None:
    assert invalid_reason(mapping(type=kind)) == "type: 'mapping' was expected"


def test_a_missing_type_is_refused() -> None:
    assert invalid_reason(mapping(type=None)) == "the message: 'type' is a required property"


@pytest.mark.parametrize(
    "dataset_id", ["SYNC 001", " SYNC-001", "SYNC-001 ", "SYNC-001\n", "SYNC-001\t", "SYNC\u00a0001", "SYNC-001\r\n"]
)
def test_a_dataset_id_with_whitespace_is_refused(dataset_id: str) -> None:
    reason = invalid_reason(mapping(dataset_id=dataset_id))

    assert reason == f"dataset_id: {dataset_id!r} does not match '^\\\\S+$'"


@pytest.mark.parametrize("accession_id", ["SYNC-123 00004", "SYNC-123-00004\n", "\tSYNC-123-00004", "SYNC\u2028x"])
def test_an_accession_id_with_whitespace_is_refused_and_named(accession_id: str) -> None:
    reason = invalid_reason(mapping(accession_ids=["SYNC-123-00003", accession_id]))

    assert reason == f"accession_ids/1: {accession_id!r} does not match '^\\\\S+$'"


@pytest.mark.parametrize("field", ["dataset_id", "accession_ids"])
def test_an_id_with_a_lone_surrogate_is_refused(field: str) -> None:
    escaped = {"dataset_id": b'"SYNC-1\\ud800"', "accession_ids": b'["SYNC-F1\\udfff"]'}
    message = b'{"type":"mapping","dataset_id":"SYNC-1","accession_ids":["SYNC-F1"]}'.replace(
        b'"SYNC-1"' if field == "dataset_id" else b'["SYNC-F1"]', escaped[field]
    )

    assert "UTF-8" in invalid_reason(message)


def test_every_bad_field_is_named() -> None:
    reason = invalid_reason(mapping(type="release", dataset_id="SYNC 1", accession_ids=["a b", 7]))

    assert reason.split("; ") == [
        "accession_ids/0: 'a b' does not match '^\\\\S+$'",
        "accession_ids/1: 7 is not of type 'string'",
        "dataset_id: 'SYNC 1' does not match '^\\\\S+$'",
        "type: 'mapping' was expected",
    ]


def test_an_empty_file_list_names_the_dataset() -> None:
    assert invalid_reason(mapping(accession_ids=[])) == (
        f"dataset {DATASET}: accession_ids is empty; the remote would reject an empty dataset"
    )


def test_federated_ids_must_be_ega_ids() -> None:
    reason = invalid_reason(mapping(dataset_id="EGAD00000000001", accession_ids=["SYNC-123-00003"]), FEDERATED)

    assert reason == "accession_ids/0: 'SYNC-123-00003' does not match '^EGAF[0-9]{11}$'"


@pytest.mark.parametrize("dataset_id", ["OTHER-001-12345", "sync-001-12345", "XSYNC-1"])
def test_a_dataset_of_another_centre_is_foreign(dataset_id: str) -> None:
    assert decide(mapping(dataset_id=dataset_id), ISOLATED, PREFIX) == ForeignDataset(dataset_id)


def test_unknown_or_foreign_accession_ids_are_left_to_the_database() -> None:
    """The message cannot know which files exist or belong to the dataset: the run checks that
    (`jobs/test_bad_data.py`)."""
    accession_ids = ("SYNC-999-NOT-IN-SDA", "SYNC-123-OF-ANOTHER-DATASET")

    assert decide(mapping(accession_ids=list(accession_ids)), ISOLATED, PREFIX) == SyncDataset(DATASET, accession_ids)


def test_the_info_error_keeps_an_undecodable_original_message_readable() -> None:
    published = json.loads(info_error_body("the message is not valid UTF-8", b"\xff{bad"))

    assert published == {
        "error": "Message validation failed in sync service",
        "reason": "the message is not valid UTF-8",
        "original-message": "\ufffd{bad",
    }


def assert_well_formed(decision: Decision) -> None:
    assert isinstance(decision, SyncDataset | ForeignDataset | InvalidMessage)
    if isinstance(decision, InvalidMessage):
        assert isinstance(decision.reason, str) and decision.reason.strip()
        assert len(decision.reason) <= MAX_REASON_LENGTH
        assert "\n" not in decision.reason
    elif isinstance(decision, SyncDataset):
        assert decision.dataset_id.startswith(PREFIX)
        assert decision.accession_ids and all(isinstance(item, str) for item in decision.accession_ids)
    else:
        assert not decision.dataset_id.startswith(PREFIX)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=25,
)
id_text = st.text(max_size=20) | st.sampled_from(["SYNC-1", "SYNC-001-12345", "SYNC", "EGAD00000000001", "S Y"])
near_mappings = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["mapping", "release", "deprecate"]) | json_values,
        "dataset_id": id_text.map(lambda text: PREFIX + text) | id_text | json_values,
        "accession_ids": st.lists(id_text | json_values, max_size=4) | json_values,
        "extra": json_values,
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=200))
def test_any_bytes_give_a_decision(message: bytes) -> None:
    assert_well_formed(decide(message, ISOLATED, PREFIX))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | near_mappings, ascii_only=st.booleans())
def test_any_json_value_gives_a_decision(value: object, ascii_only: bool) -> None:
    message = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass")

    for validator in (ISOLATED, FEDERATED):
        assert_well_formed(decide(message, validator, PREFIX))


@settings(max_examples=200, deadline=None)
@given(mapping_value=near_mappings)
def test_a_decision_to_sync_is_a_message_the_schema_accepts(mapping_value: dict[str, object]) -> None:
    decision = decide(json.dumps(mapping_value).encode(), ISOLATED, PREFIX)

    if isinstance(decision, SyncDataset):
        assert mapping_value["type"] == "mapping"
        assert decision.dataset_id == mapping_value["dataset_id"]
        assert list(decision.accession_ids) == mapping_value["accession_ids"]

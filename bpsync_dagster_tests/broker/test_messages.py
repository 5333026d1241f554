"""`decide` on bad dataset-mapping messages: every bad body gets a one-line reason naming its cause,
and no body, however malformed, large or deep, makes it raise."""

import json
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jsonschema.protocols import Validator

from bpsync_dagster.broker.messages import (
    MAX_REASON_LENGTH,
    Decision,
    ForeignDataset,
    InvalidMessage,
    SyncDataset,
    correlation_id_problem,
    decide,
    info_error_body,
)
from bpsync_dagster.configuration.schemas import SHIPPED_SCHEMAS, load_schema, schema_validator
from bpsync_dagster_tests.support.record_strategies import ids

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


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mapping_value=near_mappings)
def test_a_decision_to_sync_from_a_near_mapping_is_a_message_the_schema_accepts(
    mapping_value: dict[str, object],
) -> None:
    """Near-mappings are nearly all refused; `test_a_valid_mapping_*` below covers the valid branch."""
    decision = decide(json.dumps(mapping_value).encode(), ISOLATED, PREFIX)

    event(type(decision).__name__)
    if isinstance(decision, SyncDataset):
        assert mapping_value["type"] == "mapping"
        assert decision.dataset_id == mapping_value["dataset_id"]
        assert list(decision.accession_ids) == mapping_value["accession_ids"]


def valid_mappings(dataset_ids: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, object]]:
    """Mappings every schema check and ID check passes, with extra fields the schema allows."""
    return st.fixed_dictionaries(
        {
            "type": st.just("mapping"),
            "dataset_id": dataset_ids,
            "accession_ids": st.lists(ids(), min_size=1, max_size=5),
        },
        optional={"extra": json_values, "correlation": st.text(max_size=10)},
    )


local_mappings = valid_mappings(ids(min_size=0, max_size=30).map(lambda text: PREFIX + text))
foreign_mappings = valid_mappings(ids(min_size=2, max_size=30).filter(lambda text: not text.startswith(PREFIX)))


@settings(max_examples=200, deadline=None)
@given(message=local_mappings, ascii_only=st.booleans())
def test_a_valid_mapping_of_a_local_dataset_is_synced_as_it_is(message: dict[str, object], ascii_only: bool) -> None:
    decision = decide(json.dumps(message, ensure_ascii=ascii_only).encode(), ISOLATED, PREFIX)

    assert decision == SyncDataset(message["dataset_id"], tuple(message["accession_ids"]))  # type: ignore[arg-type]
    ISOLATED.validate(message)


@settings(max_examples=100, deadline=None)
@given(message=foreign_mappings)
def test_a_valid_mapping_of_a_foreign_dataset_is_left_alone(message: dict[str, object]) -> None:
    assert decide(json.dumps(message).encode(), ISOLATED, PREFIX) == ForeignDataset(message["dataset_id"])  # type: ignore[arg-type]


WHITESPACE = st.sampled_from([" ", "\t", "\n", "\r", "\u00a0", "\u2028", "\u3000", "\x1f"])
# Not printable, yet no whitespace: the schema's `\S` takes them, the ID check does not.
NOT_PRINTABLE = st.characters(codec="utf-8", categories=("Cc", "Cf", "Co")).filter(lambda char: not char.isspace())
NOT_STRINGS = st.none() | st.booleans() | st.integers() | st.lists(st.integers(), max_size=2)


@st.composite
def one_bad_change(draw: st.DrawFn) -> tuple[dict[str, object] | object, str, str]:
    """A valid local mapping changed in one way, the field its reason names, and the cause it gives."""
    message = dict(draw(local_mappings))
    accession_ids = list(message["accession_ids"])  # type: ignore[call-overload]
    index = draw(st.integers(min_value=0, max_value=len(accession_ids) - 1))
    dataset_id = str(message["dataset_id"])
    cut = draw(st.integers(min_value=1, max_value=len(dataset_id)))
    kind = draw(
        st.sampled_from(
            [
                "missing key",
                "other type",
                "dataset_id not a string",
                "whitespace in dataset_id",
                "whitespace in an accession_id",
                "accession_id not a string",
                "accession_ids not a list",
                "non-printable in an accession_id",
                "non-printable in dataset_id",
                "dataset_id too long",
                "no accession_ids",
                "not an object",
            ]
        )
    )
    event(kind)
    if kind == "missing key":
        key = draw(st.sampled_from(["type", "dataset_id", "accession_ids"]))
        del message[key]
        return message, "the message", f"'{key}' is a required property"
    if kind == "other type":
        message["type"] = draw(st.text(max_size=10).filter(lambda text: text != "mapping"))
        return message, "type", "'mapping' was expected"
    if kind == "dataset_id not a string":
        message["dataset_id"] = draw(NOT_STRINGS)
        return message, "dataset_id", "is not of type 'string'"
    if kind == "whitespace in dataset_id":
        message["dataset_id"] = dataset_id[:cut] + draw(WHITESPACE) + dataset_id[cut:]
        return message, "dataset_id", "does not match"
    if kind == "whitespace in an accession_id":
        accession_ids[index] += draw(WHITESPACE)
        message["accession_ids"] = accession_ids
        return message, f"accession_ids/{index}", "does not match"
    if kind == "accession_id not a string":
        accession_ids[index] = draw(NOT_STRINGS)
        message["accession_ids"] = accession_ids
        return message, f"accession_ids/{index}", "is not of type 'string'"
    if kind == "accession_ids not a list":
        message["accession_ids"] = draw(
            st.text(max_size=10) | st.integers() | st.dictionaries(st.text(), st.integers())
        )
        return message, "accession_ids", "is not of type 'array'"
    if kind == "non-printable in an accession_id":
        accession_ids[index] = draw(NOT_PRINTABLE) + accession_ids[index]
        message["accession_ids"] = accession_ids
        return message, f"accession_ids/{index}", "which is not a printable character"
    if kind == "non-printable in dataset_id":
        message["dataset_id"] = dataset_id[:cut] + draw(NOT_PRINTABLE) + dataset_id[cut:]
        return message, "dataset_id", "which is not a printable character"
    if kind == "dataset_id too long":
        message["dataset_id"] = dataset_id + "x" * (257 - len(dataset_id))
        return message, "dataset_id", "is longer than 256 characters"
    if kind == "no accession_ids":
        message["accession_ids"] = []
        return message, f"dataset {dataset_id}", "accession_ids is empty; the remote would reject an empty dataset"
    return draw(NOT_STRINGS | st.text(max_size=10)), "the message", "is not of type 'object'"


@settings(max_examples=300, deadline=None)
@given(case=one_bad_change(), ascii_only=st.booleans())
def test_one_bad_change_to_a_valid_mapping_names_its_field_and_cause(
    case: tuple[object, str, str], ascii_only: bool
) -> None:
    message, field, cause = case

    reason = invalid_reason(json.dumps(message, ensure_ascii=ascii_only).encode())

    assert reason.startswith(f"{field}: "), reason
    assert cause in reason and "; " not in reason.replace(cause, ""), reason


# Poison messages: valid by the schema, but carrying what no run can carry.


def test_a_nul_in_the_dataset_id_is_refused_and_shown_escaped() -> None:
    reason = invalid_reason(mapping(dataset_id="SYNC-001\x00x"))

    assert reason == "dataset_id: 'SYNC-001\\x00x' holds '\\x00', which is not a printable character"


def test_a_nul_in_an_accession_id_is_refused_and_named() -> None:
    reason = invalid_reason(mapping(accession_ids=["SYNC-123-00003", "SYNC-123-\x0000004"]))

    assert reason == "accession_ids/1: 'SYNC-123-\\x0000004' holds '\\x00', which is not a printable character"


@pytest.mark.parametrize("character", ["\x7f", "\x1b", "\u200b", "\u2066", "\ue000", "\U000e0001"])
def test_control_format_and_private_characters_are_refused(character: str) -> None:
    assert "which is not a printable character" in invalid_reason(mapping(dataset_id=f"SYNC-1{character}"))


def test_a_10000_character_dataset_id_is_refused_with_a_short_reason() -> None:
    dataset_id = "SYNC-" + "7" * 9995
    message = mapping(dataset_id=dataset_id)

    reason = invalid_reason(message)

    assert reason.startswith("dataset_id: 'SYNC-777")
    assert reason.endswith("... (10000 characters) is longer than 256 characters")
    assert len(reason) < 200
    assert len(info_error_body(reason, message)) < len(message) + 400


def test_ids_of_256_characters_are_accepted_and_of_257_refused() -> None:
    longest = "SYNC-" + "x" * 251
    accepted = decide(mapping(dataset_id=longest, accession_ids=["F" * 256]), ISOLATED, PREFIX)
    assert accepted == SyncDataset(longest, ("F" * 256,))

    assert "longer than 256 characters" in invalid_reason(mapping(dataset_id=longest + "x"))
    assert invalid_reason(mapping(accession_ids=["F" * 257])).startswith("accession_ids/0: 'FFF")


def test_ids_in_any_script_are_accepted() -> None:
    accession_ids = ("SYNC-Å-ß-λ-中文-🙂", "doi:10.1000/182", "urn:sda:file#1")

    assert decide(mapping(accession_ids=list(accession_ids)), ISOLATED, PREFIX) == SyncDataset(DATASET, accession_ids)


def test_a_foreign_dataset_id_no_run_could_carry_is_refused_too() -> None:
    assert "not a printable character" in invalid_reason(mapping(dataset_id="OTHER-1\x00"))


def test_many_bad_accession_ids_name_the_first_and_count_them() -> None:
    reason = invalid_reason(mapping(accession_ids=[f"SYNC-F{number}\x01" for number in range(500)]))

    assert reason.startswith("accession_ids/0: 'SYNC-F0\\x01' holds '\\x01'")
    assert reason.endswith("(500 IDs refused)")


def test_a_16_mib_message_with_millions_of_schema_errors_is_decided_in_seconds() -> None:
    message = body({"type": "mapping", "dataset_id": "SYNC-1", "accession_ids": [1] * (8 * MIB)})
    assert len(message) >= 16 * MIB

    started = time.monotonic()
    reason = invalid_reason(message)
    elapsed = time.monotonic() - started

    assert elapsed < 10, f"deciding took {elapsed:.1f} s"
    assert reason.startswith("accession_ids/0: 1 is not of type 'string'; accession_ids/1: 1 is not")
    assert reason.endswith("; and more")


@pytest.mark.parametrize(
    ("correlation_id", "expected"),
    [
        (b"\xff\xfe-corr", "the correlation id b'\\xff\\xfe-corr' is not valid UTF-8"),
        ("corr\x00id", "the correlation id 'corr\\x00id' holds '\\x00', which is not a printable character"),
        ("corr\nid", "the correlation id 'corr\\nid' holds '\\n', which is not a printable character"),
    ],
)
def test_a_correlation_id_no_run_tag_can_carry_is_named(correlation_id: str | bytes, expected: str) -> None:
    assert correlation_id_problem(correlation_id) == expected


@pytest.mark.parametrize("correlation_id", [None, "", "6b4e3f0a-1c2d-4e5f-8a9b-0c1d2e3f4a5b", "corr id with spaces"])
def test_usual_correlation_ids_are_accepted(correlation_id: str | None) -> None:
    assert correlation_id_problem(correlation_id) is None

"""Copy batches: every file once and in order, within both limits, and no batch closed early."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bpsync_dagster.jobs.batching import GIB, MAX_BATCH_BYTES, MIB, ONE_BATCH, BatchLimits, plan_batches

sizes_strategy = st.lists(st.integers(min_value=0, max_value=5 * MIB), max_size=200)
limits_strategy = st.builds(
    BatchLimits, st.integers(min_value=MIB, max_value=8 * MIB), st.integers(min_value=1, max_value=20)
)


@given(sizes_strategy, limits_strategy)
def test_batches_cover_every_file_once_in_order_within_the_limits(sizes: list[int], limits: BatchLimits) -> None:
    batches = plan_batches(sizes, limits)

    assert [index for batch in batches for index in batch] == list(range(len(sizes)))
    for batch in batches:
        assert 1 <= len(batch) <= limits.max_files
        assert len(batch) == 1 or sum(sizes[index] for index in batch) <= limits.max_bytes
    for batch, following in zip(batches, batches[1:], strict=False):
        with_next = [*batch, following[0]]
        assert len(with_next) > limits.max_files or sum(sizes[index] for index in with_next) > limits.max_bytes


def test_a_file_over_the_byte_limit_is_a_batch_of_its_own() -> None:
    limits = BatchLimits(GIB, 100)

    assert plan_batches([10 * MIB, 2 * GIB, 10 * MIB, 10 * MIB], limits) == [range(0, 1), range(1, 2), range(2, 4)]


def test_sixteen_files_two_per_batch_make_eight_batches() -> None:
    assert plan_batches([MIB] * 16, BatchLimits(GIB, 2)) == [range(index, index + 2) for index in range(0, 16, 2)]


def test_one_batch_holds_a_large_dataset_and_no_files_make_no_batch() -> None:
    assert plan_batches([GIB] * 1000, ONE_BATCH) == [range(0, 1000)]
    assert plan_batches([], ONE_BATCH) == []


@pytest.mark.parametrize(
    ("max_bytes", "max_files", "message"),
    [
        (MIB - 1, 10, f"max_batch_bytes is {MIB - 1}: must be {MIB} to {MAX_BATCH_BYTES}"),
        (MAX_BATCH_BYTES + 1, 10, f"max_batch_bytes is {MAX_BATCH_BYTES + 1}: must be"),
        (GIB, 0, "max_batch_files is 0: must be 1 to 100000"),
    ],
)
def test_limits_out_of_bounds_are_refused_naming_the_key(max_bytes: int, max_files: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BatchLimits(max_bytes, max_files)

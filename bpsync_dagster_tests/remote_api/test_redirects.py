"""A 3xx from the remote is not followed: a redirect to a login page or a moved proxy answers 200
to what follows it, but the manifest never reached the sync API."""

import pytest

from bpsync_dagster.configuration import RemoteApiSettings
from bpsync_dagster.remote_api import RemoteApiError, RemoteSyncApi, TransientRemoteApiError
from bpsync_dagster_tests.support.environment import REMOTE_PASSWORD, REMOTE_USER
from bpsync_dagster_tests.support.remote_api import StandInRemoteApi

MANIFEST = {
    "dataset_id": "SYNC-redirected",
    "dataset_files": [{"filepath": "a/b.c4gh", "file_id": "SYNC-redirected-F1", "sha256": "0" * 64}],
    "user": "submitter@example.org",
}


def client(remote_api: StandInRemoteApi) -> RemoteSyncApi:
    settings = RemoteApiSettings(remote_api.url, None, REMOTE_USER, REMOTE_PASSWORD)
    return RemoteSyncApi(settings, connect_timeout_seconds=5, read_timeout_seconds=5)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_final_failure_naming_its_location(remote_api: StandInRemoteApi, status: int) -> None:
    remote_api.redirect_next(1, status=status)

    with pytest.raises(RemoteApiError) as raised:
        client(remote_api).post_manifest(MANIFEST)

    assert not isinstance(raised.value, TransientRemoteApiError)
    assert str(raised.value) == (
        f"dataset SYNC-redirected: the remote API {remote_api.url}/dataset answered HTTP {status}, a redirect to "
        f"{remote_api.url}/login: not followed, the manifest must reach {remote_api.url}/dataset"
    )
    assert remote_api.attempts == 1
    assert remote_api.received == []


def test_a_redirect_to_a_location_with_control_characters_shows_it_escaped(remote_api: StandInRemoteApi) -> None:
    remote_api.redirect_next(1, location="/login\x1b[2J\u202e\x9b")

    with pytest.raises(RemoteApiError) as raised:
        client(remote_api).post_manifest(MANIFEST)

    assert "a redirect to /login\\x1b[2J\\u202e\\x9b: not followed" in str(raised.value)


def test_check_reports_a_redirect_as_a_failure(remote_api: StandInRemoteApi) -> None:
    remote = client(remote_api)
    assert remote.reachability() == "ok"

    remote_api.redirect_next(1)

    assert remote.reachability() == f"answers HTTP 302, a redirect to {remote_api.url}/login: a POST would fail"

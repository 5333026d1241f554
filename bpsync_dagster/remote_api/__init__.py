"""The receiving node's sync API and the manifest it accepts."""

from bpsync_dagster.remote_api.client import (
    PostResult,
    RemoteApiError,
    RemoteSyncApi,
    TransientRemoteApiError,
    dataset_url,
)
from bpsync_dagster.remote_api.manifest import (
    ManifestError,
    build_manifest,
    manifest_body,
    manifest_sha256,
    validate_manifest,
)

__all__ = [
    "ManifestError",
    "PostResult",
    "RemoteApiError",
    "RemoteSyncApi",
    "TransientRemoteApiError",
    "build_manifest",
    "dataset_url",
    "manifest_body",
    "manifest_sha256",
    "validate_manifest",
]

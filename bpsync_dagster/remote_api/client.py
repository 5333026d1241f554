"""POST the file-sync manifest to the receiving node's sync API."""

import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import requests

from bpsync_dagster.configuration import RemoteApiSettings
from bpsync_dagster.dataset_ids import escaped
from bpsync_dagster.errors import SyncError
from bpsync_dagster.remote_api.manifest import manifest_body
from bpsync_dagster.trust import ca_bundle_with

MAX_SHOWN_LOCATION = 200


class RemoteApiError(SyncError):
    """The remote refused the manifest for good (4xx): retrying cannot help."""


class TransientRemoteApiError(RemoteApiError):
    """The remote was unreachable, timed out or answered 5xx: a retry may succeed."""

    transient = True


def dataset_url(host: str, port: int | None) -> str:
    """`host` with its path replaced by `/dataset`; `port` is added only when `host` has none."""
    parts = urlsplit(host if "://" in host else f"https://{host}")
    netloc = parts.netloc
    if parts.port is None and port:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, "/dataset", "", ""))


@dataclass(frozen=True)
class PostResult:
    url: str
    status: int
    seconds: float


class RemoteSyncApi:
    """The remote's `/dataset` endpoint with Basic auth; only HTTP 200 is success."""

    def __init__(
        self, settings: RemoteApiSettings, connect_timeout_seconds: float, read_timeout_seconds: float
    ) -> None:
        self.url = dataset_url(settings.host, settings.port)
        self._user = settings.user
        self._session = _NoRedirects()
        self._session.auth = (settings.user, settings.password)
        # Given per request: requests prefers REQUESTS_CA_BUNDLE to a session's `verify`.
        self._verify: str | bool = ca_bundle_with(settings.ca_cert) if settings.ca_cert is not None else True
        self._timeout = (connect_timeout_seconds, read_timeout_seconds)

    def post_manifest(self, manifest: dict[str, object]) -> PostResult:
        dataset = manifest.get("dataset_id")
        try:
            response = self._session.post(
                self.url,
                data=manifest_body(manifest),
                headers={"Content-Type": "application/json"},
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        # from None below: requests' errors hold the request, whose Authorization header carries the password.
        except requests.exceptions.SSLError as error:
            raise RemoteApiError(
                f"dataset {dataset}: TLS with the remote API {self.url} failed: {_tls_failure(error)}"
            ) from None
        except requests.Timeout:
            raise TransientRemoteApiError(f"dataset {dataset}: the remote API {self.url} timed out") from None
        except requests.ConnectionError as error:
            reason = type(error.__context__ or error).__name__
            raise TransientRemoteApiError(
                f"dataset {dataset}: cannot reach the remote API {self.url} ({reason})"
            ) from None
        if response.status_code == 200:
            return PostResult(self.url, 200, response.elapsed.total_seconds())
        detail = escaped(" ".join(response.text.split())[:200])
        message = f"dataset {dataset}: the remote API {self.url} answered HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            raise RemoteApiError(
                f"{message}, a redirect to {_location(response)}: not followed, the manifest must reach {self.url}"
            )
        if response.status_code == 401:
            raise RemoteApiError(f"{message}: it refused the credentials of sync.remote.user {self._user!r}")
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientRemoteApiError(f"{message} {detail}".rstrip())
        raise RemoteApiError(f"{message} {detail}".rstrip())

    def reachability(self) -> str:
        """`ok` when the remote answers HTTP at all, for `bpsync check` (no manifest is sent)."""
        try:
            response = self._session.get(self.url, timeout=self._timeout, verify=self._verify, allow_redirects=False)
        except requests.RequestException as error:
            return f"unreachable ({type(error).__name__})"
        if 300 <= response.status_code < 400:
            return f"answers HTTP {response.status_code}, a redirect to {_location(response)}: a POST would fail"
        return "ok"


class _NoRedirects(requests.Session):
    """A session that neither follows a redirect nor reads one: even with `allow_redirects=False`,
    requests prepares the next request and fails on a `Location` that is not UTF-8."""

    def get_redirect_target(self, resp: requests.Response) -> None:
        return None


def _location(response: requests.Response) -> str:
    """The `Location` header, decoded as UTF-8 when it is (http.client reads headers as Latin-1), escaped and cut."""
    location = response.headers.get("Location", "")
    try:
        location = location.encode("latin-1").decode("utf-8")
    except UnicodeError:
        pass
    return escaped(location[:MAX_SHOWN_LOCATION]) or "nowhere (no Location header)"


def _tls_failure(error: requests.exceptions.SSLError) -> str:
    """Why the handshake failed, from the ssl error inside requests' and urllib3's wrappers."""
    pending: list[object] = [error]
    while pending:
        candidate = pending.pop()
        if isinstance(candidate, ssl.SSLCertVerificationError):
            return f"certificate verify failed: {candidate.verify_message}"
        if isinstance(candidate, ssl.SSLError):
            return str(candidate)
        if isinstance(candidate, BaseException):
            pending.extend([getattr(candidate, "reason", None), *candidate.args])
    return str(error)

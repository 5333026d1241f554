"""deploy/nginx/bpsync-ui.conf, run by a real nginx in front of a real `dagster-webserver`: the UI,
its GraphQL API and its GraphQL subscriptions (a websocket) answer only with the right credentials."""

import json
import secrets
import subprocess
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import dagster
import pytest
import requests
import websocket

from bpsync_dagster_tests.support.environment import PROJECT_ROOT
from bpsync_dagster_tests.support.nginx import NGINX_PACKAGE, Nginx, nginx_binary, render_site
from bpsync_dagster_tests.support.ports import free_port
from bpsync_dagster_tests.support.tls import make_tls_files

SITE = PROJECT_ROOT / "deploy" / "nginx" / "bpsync-ui.conf"
VERSION_QUERY = "query Version { version }"

pytestmark = pytest.mark.skipif(
    nginx_binary() is None, reason=f"nginx is not installed (apt-get install -y {NGINX_PACKAGE})"
)


@dataclass(frozen=True)
class Proxy:
    """The proxied UI's address, the CA that signed its certificate, and the accounts it accepts."""

    address: str
    ca_certificate: Path
    accounts: dict[str, str]


def htpasswd_lines(accounts: dict[str, str]) -> str:
    """One account hashed as `openssl passwd -apr1` does, the others as `htpasswd -B` (bcrypt) does."""
    (first, first_password), *others = accounts.items()
    apr1 = subprocess.run(
        ["openssl", "passwd", "-apr1", "-stdin"], input=first_password, capture_output=True, text=True, check=True
    ).stdout.strip()
    lines = [f"{first}:{apr1}"]
    lines += [f"{name}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt()).decode()}" for name, password in others]
    return "\n".join(lines) + "\n"


@pytest.fixture
def proxy(ui_node, start_webserver, tmp_path: Path) -> Iterator[Proxy]:
    """nginx with the shipped site file, on its own port, certificate and password file."""
    webserver = start_webserver(ui_node)
    tls = make_tls_files(tmp_path / "tls")
    accounts = {"operator-apr1": secrets.token_urlsafe(16), "operator-bcrypt": secrets.token_urlsafe(16)}
    htpasswd = tmp_path / "bpsync-ui.htpasswd"
    htpasswd.write_text(htpasswd_lines(accounts))
    port = free_port()
    site = render_site(
        SITE,
        {
            "listen 443 ssl;": f"    listen 127.0.0.1:{port} ssl;",
            "server 127.0.0.1:3000;": f"        server 127.0.0.1:{webserver.port};",
            "ssl_certificate     /etc/nginx/tls/bpsync-ui.crt;": f"    ssl_certificate {tls.server.certificate};",
            "ssl_certificate_key /etc/nginx/tls/bpsync-ui.key;": f"    ssl_certificate_key {tls.server.key};",
            "auth_basic_user_file /etc/nginx/bpsync-ui.htpasswd;": f"    auth_basic_user_file {htpasswd};",
        },
    )
    with Nginx(tmp_path / "nginx", site, port):
        yield Proxy(f"localhost:{port}", tls.ca_certificate, accounts)


def get_page(proxy: Proxy, auth: tuple[str, str] | None) -> requests.Response:
    return requests.get(f"https://{proxy.address}/runs", auth=auth, verify=proxy.ca_certificate, timeout=30)


def post_query(proxy: Proxy, auth: tuple[str, str] | None) -> requests.Response:
    return requests.post(
        f"https://{proxy.address}/graphql",
        json={"query": VERSION_QUERY, "variables": {}},
        auth=auth,
        verify=proxy.ca_certificate,
        timeout=30,
    )


def open_subscription_socket(proxy: Proxy, auth: tuple[str, str] | None) -> websocket.WebSocket:
    """The UI's websocket for GraphQL subscriptions, through the proxy, acknowledged by the webserver."""
    header = [] if auth is None else [f"Authorization: Basic {b64encode(':'.join(auth).encode()).decode()}"]
    connection = websocket.create_connection(
        f"wss://{proxy.address}/graphql",
        subprotocols=["graphql-ws"],
        header=header,
        sslopt={"ca_certs": str(proxy.ca_certificate)},
        timeout=30,
    )
    connection.send(json.dumps({"type": "connection_init", "payload": {}}))
    return connection


def refused_status(proxy: Proxy, auth: tuple[str, str] | None) -> list[int]:
    """What the page, a GraphQL query and the websocket handshake answer with these credentials."""
    statuses = [get_page(proxy, auth).status_code, post_query(proxy, auth).status_code]
    with pytest.raises(websocket.WebSocketBadStatusException) as handshake:
        open_subscription_socket(proxy, auth).close()
    return [*statuses, handshake.value.status_code]


def test_without_credentials_the_ui_its_api_and_its_websocket_answer_401(proxy: Proxy) -> None:
    assert refused_status(proxy, None) == [401, 401, 401]


def test_with_a_wrong_password_or_an_unknown_user_they_answer_401(proxy: Proxy) -> None:
    name, password = next(iter(proxy.accounts.items()))

    assert refused_status(proxy, (name, password + "x")) == [401, 401, 401]
    assert refused_status(proxy, ("intruder", password)) == [401, 401, 401]


def test_with_the_right_credentials_the_ui_its_api_and_its_websocket_answer(proxy: Proxy) -> None:
    for name, password in proxy.accounts.items():
        page = get_page(proxy, (name, password))
        assert page.status_code == 200, (name, page.status_code)
        assert ">Dagster</title>" in page.text, page.text[:500]

        answer = post_query(proxy, (name, password))
        assert answer.status_code == 200, (name, answer.status_code, answer.text[:500])
        assert answer.json() == {"data": {"version": dagster.__version__}}

        subscriptions = open_subscription_socket(proxy, (name, password))
        try:
            assert json.loads(subscriptions.recv()) == {"type": "connection_ack"}
        finally:
            subscriptions.close()

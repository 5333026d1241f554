"""`bpsync metrics`: serve the Prometheus endpoint `/metrics` until stopped."""

from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from dagster import DagsterInstance
from prometheus_client import CollectorRegistry, make_wsgi_app

from bpsync_dagster.configuration import Settings
from bpsync_dagster.errors import SyncError
from bpsync_dagster.metrics import SyncMetricsCollector


class CannotListen(SyncError):
    """`bpsync metrics` cannot bind its address (in use, not this machine's, not allowed)."""


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def metrics_server(instance: DagsterInstance, settings: Settings, host: str, port: int) -> WSGIServer:
    """A server of `/metrics` bound to `host:port` (port 0: any free one), one scrape at a time."""
    registry = CollectorRegistry()
    registry.register(SyncMetricsCollector(instance, settings))
    try:
        return make_server(host, port, make_wsgi_app(registry), handler_class=_QuietHandler)
    except OSError as error:
        raise CannotListen(f"metrics: cannot listen on {host}:{port}: {error.strerror or error}") from None


def serve_metrics(instance: DagsterInstance, settings: Settings, host: str, port: int) -> int:
    server = metrics_server(instance, settings, host, port)
    bound_host, bound_port = server.server_address[:2]
    print(f"bpsync metrics: serving http://{bound_host}:{bound_port}/metrics", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0

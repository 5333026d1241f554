"""pika connection parameters for the broker settings: vhost as an AMQP URI path, TLS ≥ 1.2."""

import ssl
from urllib.parse import unquote

import pika

from bpsync_dagster.configuration import BrokerSettings


def vhost_name(vhost: str) -> str:
    """`sda` and `/sda` both name the vhost `sda`; empty or `/` is the default vhost `/`."""
    name = unquote(vhost.strip().lstrip("/"))
    return name or "/"


def tls_context(settings: BrokerSettings) -> ssl.SSLContext:
    """The system roots plus `broker.caCert`; a client certificate when `broker.verifyPeer` is set."""
    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.ca_cert is not None:
        context.load_verify_locations(cafile=str(settings.ca_cert))
    if settings.verify_peer and settings.client_cert is not None and settings.client_key is not None:
        context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
    return context


def connection_parameters(settings: BrokerSettings, heartbeat_seconds: int = 60) -> pika.ConnectionParameters:
    ssl_options = None
    if settings.ssl:
        ssl_options = pika.SSLOptions(tls_context(settings), server_hostname=settings.server_name or settings.host)
    return pika.ConnectionParameters(
        host=settings.host,
        port=settings.port,
        virtual_host=vhost_name(settings.vhost),
        credentials=pika.PlainCredentials(settings.user, settings.password),
        ssl_options=ssl_options,
        heartbeat=heartbeat_seconds,
        connection_attempts=1,
        socket_timeout=10,
        blocked_connection_timeout=30,
    )


def check_queue(settings: BrokerSettings) -> str:
    """`ok` when the broker accepts the connection and the queue exists (a passive declare), else why."""
    try:
        connection = pika.BlockingConnection(connection_parameters(settings))
    except pika.exceptions.ProbableAuthenticationError:
        return f"the broker refused broker.user {settings.user!r} (authentication failed)"
    except pika.exceptions.ProbableAccessDeniedError:
        return f"broker.user {settings.user!r} has no access to broker.vhost {vhost_name(settings.vhost)!r}"
    except (pika.exceptions.AMQPError, OSError, ssl.SSLError) as error:
        detail = f"{type(error).__name__} {error}".strip()
        return f"cannot connect to {settings.host}:{settings.port}: {detail}"
    try:
        channel = connection.channel()
        channel.queue_declare(settings.queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as error:
        return f"broker.queue {settings.queue!r}: {error.reply_text}"
    finally:
        if connection.is_open:
            connection.close()
    return "ok"

"""boto3 clients for the S3 entries of the storage configuration."""

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from bpsync_dagster.configuration import S3Storage
from bpsync_dagster.storage.s3_errors import s3_error
from bpsync_dagster.trust import ca_bundle_with

CONNECT_TIMEOUT_SECONDS = 10
READ_TIMEOUT_SECONDS = 60
MAX_ATTEMPTS = 5


def make_s3_client(entry: S3Storage, max_pool_connections: int = 16) -> BaseClient:
    """A path-style client with bounded timeouts and standard retries for transient errors."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=entry.endpoint_url,
        aws_access_key_id=entry.access_key,
        aws_secret_access_key=entry.secret_key,
        region_name=entry.region,
        verify=ca_bundle_with(entry.ca_cert) if entry.ca_cert else True,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=READ_TIMEOUT_SECONDS,
            max_pool_connections=max_pool_connections,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def s3_reachability(client: BaseClient) -> str:
    """`ok`, or why the endpoint cannot list its buckets."""
    try:
        client.list_buckets()
    except (ClientError, BotoCoreError) as error:
        return str(s3_error(error, "list buckets"))
    return "ok"

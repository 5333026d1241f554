"""Which certificate authorities a TLS client trusts: the system's roots plus a configured CA.

boto3 and requests take the trusted CAs as the name of one file, which they read at every new
connection. The combined bundle is an anonymous file in this process's memory (`memfd_create`),
named by its `/proc/self/fd` path: no other local user can plant, replace or read it, and it is
gone when the process ends.
"""

import functools
import os
import ssl
from pathlib import Path


@functools.cache
def ca_bundle_with(ca_cert: Path) -> str:
    """The name of a bundle of the system's root certificates plus `ca_cert`, since boto3 takes one file."""
    system_bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    content = (system_bundle.read_bytes() if system_bundle.exists() else b"") + b"\n" + ca_cert.read_bytes()
    descriptor = os.memfd_create("bpsync-ca-bundle")
    with open(descriptor, "wb", closefd=False) as bundle:
        bundle.write(content)
    return f"/proc/self/fd/{descriptor}"

"""Which certificate authorities a TLS client trusts: the system's roots plus a configured CA."""

import functools
import hashlib
import ssl
import tempfile
from pathlib import Path


@functools.cache
def ca_bundle_with(ca_cert: Path) -> str:
    """A bundle of the system's root certificates plus `ca_cert`, since boto3 takes one file."""
    system_bundle = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    content = (system_bundle.read_bytes() if system_bundle.exists() else b"") + b"\n" + ca_cert.read_bytes()
    name = hashlib.sha256(content).hexdigest()[:16]
    bundle = Path(tempfile.gettempdir()) / f"bpsync-ca-{name}.pem"
    if not bundle.exists():
        bundle.write_bytes(content)
    return str(bundle)

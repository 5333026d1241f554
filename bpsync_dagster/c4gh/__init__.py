"""crypt4gh keys and header re-encryption."""

import logging

from bpsync_dagster.c4gh.header import HeaderError, reencrypt_header
from bpsync_dagster.c4gh.keys import KeyLoadError, NodeKeys, PrivateKey, PublicKey, fingerprint, load_node_keys

# The crypt4gh package logs secret keys at DEBUG and noisy errors while it tries keys; our own
# errors say what went wrong.
logging.getLogger("crypt4gh").setLevel(logging.CRITICAL)

__all__ = [
    "HeaderError",
    "KeyLoadError",
    "NodeKeys",
    "PrivateKey",
    "PublicKey",
    "fingerprint",
    "load_node_keys",
    "reencrypt_header",
]

"""A throw-away public key infrastructure for TLS tests, made with the `cryptography` package.

`make_tls_files(directory)` writes a CA, a server certificate for 127.0.0.1 and localhost (as
subject alternative names), a client certificate signed by that CA, and a second, unrelated CA
with its own client certificate for the "wrong CA" cases. Private keys are unencrypted PEM files
of mode 0600; certificates are PEM files of mode 0644.
"""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1",)
VALIDITY = datetime.timedelta(days=2)


@dataclass(frozen=True)
class CertificateFiles:
    """A certificate and its private key on disk."""

    certificate: Path
    key: Path


@dataclass(frozen=True)
class TlsFiles:
    """Everything a TLS test needs: who signs, who serves, who connects, and an unrelated CA."""

    ca_certificate: Path
    server: CertificateFiles
    client: CertificateFiles
    other_ca_certificate: Path
    other_client: CertificateFiles


@dataclass(frozen=True)
class _Authority:
    name: x509.Name
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "bpsync tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _authority(common_name: str) -> _Authority:
    key = _new_key()
    name = _name(common_name)
    certificate = (
        _builder(name, name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _Authority(name, key, certificate)


def _leaf(
    authority: _Authority, common_name: str, usage: x509.ObjectIdentifier, with_server_names: bool
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _new_key()
    builder = (
        _builder(_name(common_name), authority.name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
    )
    if with_server_names:
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_NAMES]
        names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_ADDRESSES]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(authority.key, hashes.SHA256()), key


def _write_certificate(path: Path, certificate: x509.Certificate) -> Path:
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)
    return path


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> Path:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _write_leaf(directory: Path, name: str, authority: _Authority, common_name: str, server: bool) -> CertificateFiles:
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    certificate, key = _leaf(authority, common_name, usage, with_server_names=server)
    return CertificateFiles(
        _write_certificate(directory / f"{name}.crt", certificate), _write_key(directory / f"{name}.key", key)
    )


def make_tls_files(directory: Path, client_common_name: str = "bpsync-client") -> TlsFiles:
    """Write the CA, server, client and unrelated-CA files into `directory` (created if needed).

    `client_common_name` is the client certificate's CN, which Postgres' `cert` authentication
    takes as the database user name.
    """
    directory.mkdir(parents=True, exist_ok=True)
    authority = _authority("bpsync test CA")
    other = _authority("unrelated test CA")
    return TlsFiles(
        ca_certificate=_write_certificate(directory / "ca.crt", authority.certificate),
        server=_write_leaf(directory, "server", authority, SERVER_NAMES[0], server=True),
        client=_write_leaf(directory, "client", authority, client_common_name, server=False),
        other_ca_certificate=_write_certificate(directory / "other-ca.crt", other.certificate),
        other_client=_write_leaf(directory, "other-client", other, client_common_name, server=False),
    )

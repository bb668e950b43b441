"""The lean KMS path over HTTPS: certificates verified against AWS_CA_BUNDLE.

KMS is reached through a local TLS endpoint (the fault proxy serving HTTPS, injecting nothing)
whose certificate a test CA signed; everything else goes to the embedded AWS as usual.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from table_sync.errors import DecryptError
from table_sync.handler import lambda_handler
from table_sync_dev.local.context import LocalLambdaContext
from table_sync_dev.local.seed import EmbeddedAws
from table_sync_dev.local.server import MotoServer
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.fault_proxy import FaultProxy


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _ca(directory: Path, label: str) -> tuple[Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"table-sync test CA {label}"))
        .issuer_name(_name(f"table-sync test CA {label}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"ca-{label}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path, key, cert


def _server_context(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca: x509.Certificate,
    names: tuple[str, ...] = ("localhost",),
) -> ssl.SSLContext:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("localhost"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(name) for name in names),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = directory / "server.pem", directory / "server.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


@pytest.fixture
def tls_kms(tmp_path: Path, moto_server: MotoServer) -> Any:
    """(the HTTPS endpoint for KMS, the CA that signed it, another CA)."""
    trusted, ca_key, ca_cert = _ca(tmp_path, "trusted")
    other, _, _ = _ca(tmp_path, "other")
    context = _server_context(tmp_path, ca_key, ca_cert)
    targets: frozenset[str] = frozenset()  # inject nothing: TLS in front of moto only
    with FaultProxy(moto_server.endpoint, targets=targets, tls=context) as proxy:
        yield proxy.endpoint, trusted, other


def _run_lean(
    aws: EmbeddedAws,
    monkeypatch: pytest.MonkeyPatch,
    endpoint: str,
    bundle: Path,
    attempts: int = 2,
) -> dict[str, Any]:
    env = aws.lambda_env(KMS_CLIENT="lean", KMS_MAX_ATTEMPTS=str(attempts))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(bundle))
    return dict(lambda_handler(load_event("scheduled-event.json"), LocalLambdaContext()))


@pytest.mark.items(10)
def test_the_lean_path_decrypts_over_https_verified_with_the_ca_bundle(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, tls_kms: Any, one_by_one: list[int]
) -> None:
    endpoint, trusted, _ = tls_kms
    assert endpoint.startswith("https://")
    summary = _run_lean(aws, monkeypatch, endpoint, trusted)
    assert one_by_one == []  # the page's Decrypts multiplexed over TLS, none one at a time
    assert summary["items_written"] == 10
    assert summary["kms_requests"] == summary["attributes_decrypted"] > 0
    copy = read_table(aws.account_b().client("dynamodb"), aws.destination_table)
    assert differences(aws.expected, copy) == []


@pytest.mark.items(3)
def test_the_lean_path_refuses_a_certificate_another_ca_signed(
    aws: EmbeddedAws,
    monkeypatch: pytest.MonkeyPatch,
    tls_kms: Any,
    no_retry_delay: None,
) -> None:
    endpoint, _, other = tls_kms
    # s2n (awscrt's TLS) reports a certificate that fails verification only after its
    # blinding delay (10-30 s a handshake, against timing attacks): one attempt here.
    with pytest.raises(DecryptError, match="SSLError"):
        _run_lean(aws, monkeypatch, endpoint, other, attempts=1)
    assert read_table(aws.account_b().client("dynamodb"), aws.destination_table) == {}

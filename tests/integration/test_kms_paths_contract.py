"""The lean KMS path (KMS_CLIENT=lean) and botocore's make the same copy, the same quarantine
records and the same errors.

Both paths run over the same table of good and bad ciphertexts, each with its own copy and
quarantine tables, on the embedded AWS with IAM enforced (so every request's SigV4 signature
and session token are checked). Two faults moto cannot produce are injected, and only those:
throttling (the fault proxy answers every 4th Decrypt as KMS does when throttling) and a
credential refresh mid-run (the refresh windows are widened past the session's length, so the
assumed role's credentials are renewed on every read of them, as they are near expiry).
"""

from __future__ import annotations

from typing import Any

import pytest

from table_sync.aws import sts
from table_sync.errors import DecryptError
from table_sync.handler import lambda_handler
from table_sync_dev.local.seed import EmbeddedAws, encrypt_value
from table_sync_dev.local.server import MotoServer, free_port
from table_sync_dev.local.verify import differences, read_table
from tests.conftest import load_event
from tests.integration.conftest import set_source_attribute, source_item
from tests.integration.fault_proxy import FaultProxy

PATHS = ("botocore", "lean")
BROKEN = ("customer#00003", "customer#00006", "customer#00009", "customer#00012")


def _break(views: dict[str, EmbeddedAws]) -> None:
    """The same four bad ciphertexts in every view's source table."""
    first = next(iter(views.values()))
    kms = first.account_a().client("kms")
    other_key = kms.create_key()["KeyMetadata"]["Arn"]
    wrong_key = encrypt_value(kms, other_key, "card", "4111111111111111")
    wrong_context = {
        "B": kms.encrypt(
            KeyId=first.key_arn, Plaintext=b"123-45-6789", EncryptionContext={"table": "other"}
        )["CiphertextBlob"]
    }
    blob = source_item(first, "customer#00003")["ssn"]["B"]
    tampered = {"B": blob[:-1] + bytes([blob[-1] ^ 1])}
    for view in views.values():
        set_source_attribute(view, "customer#00003", "ssn", tampered)
        set_source_attribute(view, "customer#00006", "card", wrong_key)
        set_source_attribute(view, "customer#00009", "ssn", wrong_context)
        set_source_attribute(view, "customer#00012", "card", {"S": "%%% not base64 %%%"})


def _use(view: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    for name, value in view.lambda_env(**settings).items():
        monkeypatch.setenv(name, value)


def _quarantined(view: EmbeddedAws) -> set[tuple[str, str, str]]:
    records = read_table(view.account_b().client("dynamodb"), view.quarantine_table, key="item")
    return {(k, r["attribute"]["S"], r["error"]["S"]) for k, r in records.items()}


@pytest.mark.items(30)
def test_both_paths_make_the_same_copy_quarantine_and_error_kinds(
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    no_retry_delay: None,
) -> None:
    views = {path: aws.isolated(f"{aws.name}-{path}") for path in PATHS}
    _break(views)
    # Renew the assumed role's credentials on every read of them (a refresh mid-run, often).
    monkeypatch.setattr(sts, "refresh_windows", lambda duration: (2 * duration, 2 * duration))
    results: dict[str, dict[str, Any]] = {}
    for path, view in views.items():
        _use(view, monkeypatch, KMS_CLIENT=path, DECRYPT_CONCURRENCY="8")  # before enforcement
        with (
            FaultProxy(
                moto_server.endpoint,
                every=4,
                targets=frozenset({"TrentService.Decrypt"}),
                keep_host=True,
                max_in_a_row=3,  # 8 threads in step could see one Decrypt refused every time
            ) as proxy,
            moto_server.iam_enforced(),
        ):
            monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
            summary = lambda_handler(load_event("scheduled-event.json"), lambda_context)
        results[path] = {
            "summary": summary,
            "copy": read_table(view.account_b().client("dynamodb"), view.destination_table),
            "quarantine": _quarantined(view),
            "throttled": proxy.injected["TrentService.Decrypt"],
            "decrypt_keys": len(proxy.access_keys["TrentService.Decrypt"]),
        }

    botocore, lean = results["botocore"], results["lean"]
    expected = {k: v for k, v in aws.expected.items() if k not in BROKEN}
    for path, result in results.items():
        # What each run saw, to read when an assertion fails (counters only: no values).
        seen = {k: result[k] for k in ("throttled", "decrypt_keys", "quarantine")} | {
            k: result["summary"][k]
            for k in ("items_written", "kms_requests", "kms_throttles", "assume_role_calls")
        }
        assert differences(expected, result["copy"]) == [], path
        assert result["summary"]["items_written"] == 26, (path, seen)
        assert result["throttled"] >= 5, (path, seen)  # throttled Decrypts retried, none lost
        assert result["decrypt_keys"] > 1, (path, seen)  # signed with renewed credentials
        assert result["summary"]["assume_role_calls"] > 1, (path, seen)
    assert lean["copy"] == botocore["copy"]
    assert lean["quarantine"] == botocore["quarantine"]
    errors = {error for _, _, error in lean["quarantine"]}
    assert errors >= {"InvalidCiphertextException", "InvalidBase64"}
    for name in ("items_quarantined", "kms_requests", "attributes_decrypted", "kms_cache_hits"):
        assert lean["summary"][name] == botocore["summary"][name], (
            name,
            lean["summary"],
            botocore["summary"],
        )


def _failure(
    view: EmbeddedAws,
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    lambda_context: Any,
    **endpoints: str,
) -> str:
    _use(view, monkeypatch, KMS_CLIENT=path, DECRYPT_CONCURRENCY="1", KMS_MAX_ATTEMPTS="2")
    for name, url in endpoints.items():
        monkeypatch.setenv(name, url)
    with pytest.raises(DecryptError) as failed:
        lambda_handler(load_event("scheduled-event.json"), lambda_context)
    assert read_table(view.account_b().client("dynamodb"), view.destination_table) == {}
    return str(failed.value)


@pytest.mark.items(3)
@pytest.mark.parametrize(
    "error", ["ThrottlingException", "DisabledException", "KMSInvalidStateException"]
)
def test_both_paths_fail_a_run_with_the_same_error(
    aws: EmbeddedAws,
    moto_server: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
    no_retry_delay: None,
    error: str,
) -> None:
    """Throttling that outlasts KMS_MAX_ATTEMPTS, and a key KMS cannot use (faults moto does
    not produce, so the proxy answers every Decrypt with them). Both paths send the same number
    of attempts: KMS_MAX_ATTEMPTS (2) per throttled Decrypt, one per Decrypt KMS refuses."""
    messages = {}
    attempts = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-{path}")
        with FaultProxy(
            moto_server.endpoint,
            every=1,
            targets=frozenset({"TrentService.Decrypt"}),
            errors={"TrentService.Decrypt": error},
        ) as proxy:
            messages[path] = _failure(
                view, monkeypatch, path, lambda_context, AWS_ENDPOINT_URL=proxy.endpoint
            )
        attempts[path] = (proxy.seen["TrentService.Decrypt"], proxy.injected.total())
    assert error in messages["lean"]
    assert messages["lean"] == messages["botocore"]
    assert attempts["lean"] == attempts["botocore"]
    if error == "ThrottlingException":
        assert attempts["lean"][0] % 2 == 0, attempts


@pytest.mark.items(3)
def test_both_paths_fail_the_same_way_when_kms_cannot_be_reached(
    aws: EmbeddedAws, monkeypatch: pytest.MonkeyPatch, lambda_context: Any, no_retry_delay: None
) -> None:
    messages = {}
    for path in PATHS:
        view = aws.isolated(f"{aws.name}-{path}")
        # KMS alone is sent to a port nothing listens on (AWS_ENDPOINT_URL_KMS, as botocore
        # resolves it for both paths).
        unreachable = f"http://127.0.0.1:{free_port()}"
        messages[path] = _failure(
            view, monkeypatch, path, lambda_context, AWS_ENDPOINT_URL_KMS=unreachable
        )
    assert "EndpointConnectionError" in messages["lean"]
    assert messages["lean"] == messages["botocore"]

from __future__ import annotations

import pytest

from table_sync.aws.sts import refresh_windows, session_name
from table_sync.items import describe_key, from_json_item, item_size, to_json_item
from table_sync.sinks.dynamodb import backoff_delay


def test_dynamodb_json_round_trip_keeps_binary_and_nesting() -> None:
    item = {
        "pk": {"S": "a"},
        "blob": {"B": b"\x00\xff"},
        "blobs": {"BS": [b"\x01", b"\x02"]},
        "m": {"M": {"inner": {"B": b"\x10"}, "l": {"L": [{"B": b"\x20"}, {"N": "1"}]}}},
        "flag": {"BOOL": True},
        "nothing": {"NULL": True},
    }
    as_json = to_json_item(item)
    assert as_json["blob"] == {"B": "AP8="}
    assert as_json["m"]["M"]["l"]["L"][0] == {"B": "IA=="}
    assert from_json_item(as_json) == item


def test_describe_key_names_partition_and_sort_key() -> None:
    item = {"pk": {"S": "user#1"}, "sk": {"N": "3"}, "secret": {"S": "never shown"}}
    assert describe_key(item, ("pk", "sk")) == '{pk=S:"user#1", sk=N:"3"}'
    assert describe_key({"pk": {"B": b"\x01"}}, ("pk",)) == '{pk=B:"AQ=="}'
    assert describe_key({}, ("pk",)) == "{pk=<missing>}"


@pytest.mark.parametrize(
    ("duration", "windows"), [(900, (300, 150)), (1800, (600, 300)), (3600, (900, 600))]
)
def test_refresh_windows_fit_inside_the_session(duration: int, windows: tuple[int, int]) -> None:
    assert refresh_windows(duration) == windows
    advisory, mandatory = windows
    assert mandatory < advisory < duration


def test_session_name_is_valid_for_sts() -> None:
    assert session_name("table-sync", "1234-abcd") == "table-sync@1234-abcd"
    assert session_name("alice@host.example") == "alice@host.example"
    assert session_name("bad name/with:chars") == "bad-name-with-chars"
    assert len(session_name("f" * 50, "r" * 50)) == 64
    assert session_name("") == "table-sync"


def test_backoff_is_exponential_capped_and_jittered() -> None:
    delays = [backoff_delay(n, 0.05, 1.0, lambda: 1.0) for n in range(1, 9)]
    assert delays == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]
    assert backoff_delay(3, 0.05, 1.0, lambda: 0.5) == 0.1


def test_item_size_follows_dynamodbs_rules() -> None:
    """Names and values by their UTF-8 length, binary by its length, and the documented
    overheads for lists and maps (3 bytes, plus 1 per element)."""
    assert item_size({"pk": {"S": "abc"}}) == 5
    assert item_size({"é": {"S": "é"}, "b": {"B": b"\x00\x01"}}) == 2 + 2 + 1 + 2
    assert item_size({"l": {"L": [{"S": "ab"}, {"BOOL": True}]}}) == 1 + 3 + (1 + 2) + (1 + 1)
    assert item_size({"m": {"M": {"k": {"NULL": True}}}}) == 1 + 3 + 1 + 1 + 1
    assert item_size({"n": {"N": "12345"}}) <= 1 + 6  # at most the digits plus one


def test_an_unreachable_endpoint_names_where_and_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from botocore.exceptions import EndpointConnectionError

    from table_sync.aws.errors import unreachable_hint

    refused = EndpointConnectionError(endpoint_url="https://kms.eu-west-1.amazonaws.com")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    assert unreachable_hint(refused) == (
        " (nothing answers at https://kms.eu-west-1.amazonaws.com: check AWS_REGION and the "
        "network path to AWS)"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert "AWS_ENDPOINT_URL names it" in unreachable_hint(refused)
    assert unreachable_hint(ValueError("not a connection error")) == ""

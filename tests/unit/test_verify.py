"""The demo's and tests' own check must be able to fail, and must not print values."""

from __future__ import annotations

from table_sync.compare import compare_digests
from table_sync_dev.local.demo import leaked
from table_sync_dev.local.verify import differences


def test_differences_names_keys_and_attributes_never_values() -> None:
    expected = {
        "a": {"pk": {"S": "a"}, "ssn": {"S": "123-45-6789"}, "tags": {"SS": ["x", "y"]}},
        "b": {"pk": {"S": "b"}},
    }
    actual = {
        "a": {"pk": {"S": "a"}, "ssn": {"S": "000-00-0000"}, "tags": {"SS": ["y", "x"]}},
        "c": {"pk": {"S": "c"}},
    }
    problems = differences(expected, actual)
    assert problems == ["missing b", "unexpected c", "a: attribute 'ssn' differs"]
    assert not any("123-45-6789" in p or "000-00-0000" in p for p in problems)


def test_leak_check_finds_a_plaintext_in_log_text() -> None:
    assert leaked(["hunter2", "s3cret"], '{"message":"x","value":"hunter2"}') == 1
    assert leaked(["hunter2"], '{"message":"page copied"}') == 0


def test_a_key_the_copy_holds_twice_is_a_difference() -> None:
    """An export with a stale duplicate line for one key: before, the later line hid the
    earlier and the copy could 'match'."""
    source = [('[["pk","S","a"]]', '{pk=S:"a"}', "d1"), ('[["pk","S","b"]]', '{pk=S:"b"}', "d2")]
    copy = [*source, ('[["pk","S","a"]]', '{pk=S:"a"}', "d1")]
    comparison = compare_digests(source, copy)
    assert comparison.duplicated == ['{pk=S:"a"}']
    assert not comparison.matches
    assert compare_digests(source, source).matches

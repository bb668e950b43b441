"""The sessions every client is made from (aws/clients.py): their service models are parsed
once per process, and found where boto3's own session would look for them."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from table_sync.aws.clients import new_session


def test_the_models_are_searched_for_where_boto3_searches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """AWS_DATA_PATH (botocore's ``data_path``: models of one's own, searched first) is
    honoured as boto3's own session honours it, and making sessions does not lengthen the
    search. Before, the shared loader ignored AWS_DATA_PATH, and every session appended boto3's
    data directory to it again (a warm Lambda's loader searched one more path per invocation)."""
    for data_path in (None, f"{tmp_path / 'a'}:{tmp_path / 'b'}"):
        if data_path is None:
            monkeypatch.delenv("AWS_DATA_PATH", raising=False)
        else:
            monkeypatch.setenv("AWS_DATA_PATH", data_path)
        new_session()
        ours = new_session()._session.get_component("data_loader")  # type: ignore[attr-defined]
        theirs = boto3.Session()._session.get_component("data_loader")  # type: ignore[attr-defined]
        assert ours.search_paths == theirs.search_paths, data_path


def test_sessions_share_one_parse_of_the_models() -> None:
    first, second = new_session(), new_session()
    loader = first._session.get_component("data_loader")  # type: ignore[attr-defined]
    assert second._session.get_component("data_loader") is loader  # type: ignore[attr-defined]

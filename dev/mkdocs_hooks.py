"""MkDocs hook: the configuration page's reference table is generated at build time from the
settings model, template.yaml and the CLI (table_sync_dev.reference), so it cannot drift."""

from __future__ import annotations

from typing import Any

from table_sync_dev.reference import MARKER, settings_reference


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if MARKER in markdown:
        return markdown.replace(MARKER, settings_reference())
    return markdown

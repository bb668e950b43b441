"""KMS_ENCRYPTION_CONTEXT: a fixed encryption context, with values taken from the item itself.

``{"purpose": "profile", "customer": "${pk}"}`` sends ``purpose=profile`` with every Decrypt and
``customer=<the item's pk>``, as a writer that bound each ciphertext to its item would have done.
A value that is exactly ``${name}`` is replaced by the item's attribute ``name`` (S and N as
written, B as base64); ``$${`` stands for a literal ``${``.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping

from table_sync.formats.base import AttributeDecryptFailed
from table_sync.items import Item

_PLACEHOLDER = re.compile(r"^\$\{(?P<name>[^{}]+)\}$")


class ContextTemplate:
    def __init__(self, template: Mapping[str, str]) -> None:
        self._fixed: dict[str, str] = {}
        self._from_item: dict[str, str] = {}
        for key, value in template.items():
            match = _PLACEHOLDER.match(value)
            if match:
                self._from_item[key] = match["name"]
            else:
                self._fixed[key] = value.replace("$${", "${")

    @property
    def empty(self) -> bool:
        return not self._fixed and not self._from_item

    @property
    def item_attributes(self) -> tuple[str, ...]:
        return tuple(self._from_item.values())

    def render(self, item: Item, attribute: str) -> Mapping[str, str]:
        if not self._from_item:
            return self._fixed  # the same for every item (read-only to callers)
        context = dict(self._fixed)
        for key, name in self._from_item.items():
            value = item.get(name)
            if not value or not ({"S", "N", "B"} & value.keys()):
                raise AttributeDecryptFailed(
                    attribute,
                    "MissingContextAttribute",
                    f"KMS_ENCRYPTION_CONTEXT takes {key!r} from attribute {name!r}, which the "
                    "item lacks or holds as another type",
                )
            ((kind, raw),) = value.items()
            context[key] = base64.b64encode(raw).decode() if kind == "B" else str(raw)
        return context

"""TRANSFORMs the tests load by name, as a deployed function loads a user's (a module on the
path, ``module:function``). Written against the documented interface only."""

from __future__ import annotations

from table_sync.items import Item
from table_sync.transforms import mask

TRANSFORM_VERSION = "1"


def mask_and_filter(item: Item) -> Item | None:
    """Leaves out the items with fewer than 100 visits; masks ``card`` to its last 4."""
    if int(item["visits"]["N"]) < 100:
        return None
    return mask(item, "card", keep=4)


def raises_on_gold(item: Item) -> Item:
    """Fails the items tagged gold, with a message that quotes a decrypted value."""
    if "gold" in item["tags"]["SS"]:
        raise ValueError(f"no gold for {item['ssn']['S']}")
    return item


def renames_the_key(item: Item) -> Item:
    item["pk"] = {"S": "copy-of-" + item["pk"]["S"]}
    return item

"""TRANSFORMs the tests load by name, as a deployed function loads a user's (a module on the
path, ``module:function``), beside the documentation's own example (docs/examples/
my_transforms.py). Written against the documented interface only."""

from __future__ import annotations

from table_sync.items import Item

TRANSFORM_VERSION = "1"


def raises_on_gold(item: Item) -> Item:
    """Fails the items tagged gold, with a message that quotes a decrypted value."""
    if "gold" in item["tags"]["SS"]:
        raise ValueError(f"no gold for {item['ssn']['S']}")
    return item


def renames_the_key(item: Item) -> Item:
    item["pk"] = {"S": "copy-of-" + item["pk"]["S"]}
    return item

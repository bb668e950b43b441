"""A TRANSFORM: copy only the accounts AccountB serves, with their card numbers masked.

For the function: put it in ``src/`` beside ``table_sync/`` before ``sam build``, and deploy
with ``Transform=my_transforms:shape``. From a shell: ``PYTHONPATH=docs/examples table-sync run
--transform my_transforms:shape``.
"""

from __future__ import annotations

from table_sync.items import Item
from table_sync.transforms import mask

# Change it whenever shape() changes: the next run copies every item again.
TRANSFORM_VERSION = "1"


def shape(item: Item) -> Item | None:
    """The item to write, in DynamoDB's typed form, or None to leave it out of the copy."""
    if int(item["visits"]["N"]) < 100:  # not AccountB's customers: not copied (or removed)
        return None
    return mask(item, "card", keep=4)  # {"S": "************1111"}

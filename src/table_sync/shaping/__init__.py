"""What the copy holds of each decrypted item, in this order:

1. TRANSFORM, the user's function (it may leave the item out of the copy);
2. MASK_ATTRIBUTES and HASH_ATTRIBUTES, the built-in transforms;
3. the selection: COPY_ATTRIBUTES (the key attributes always kept) or DROP_ATTRIBUTES;
4. REENCRYPT_ATTRIBUTES, sealed under AccountB's key (reencrypt.py).

The first three make the copy's plaintext (:meth:`Shaper.prepare`, which ``verify`` applies to
the source); the last protects it (:meth:`Shaper.seal`, undone by :meth:`Shaper.unseal`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from table_sync.errors import ConfigurationError
from table_sync.items import Item, describe_key
from table_sync.observability import CallCounter
from table_sync.transforms import KeyedHash, ShapeFailed, Transform, load_transform, mask

if TYPE_CHECKING:  # the Encryption SDK is imported only by a run that re-encrypts (180 ms)
    from table_sync.shaping.reencrypt import AttributeSealer

# The attribute a failure of TRANSFORM is recorded under (it is about the whole item).
TRANSFORM_ATTRIBUTE = "(TRANSFORM)"


class KeyChanged(ConfigurationError):
    """TRANSFORM returned an item whose key differs from the source item's: a bug in the
    transform, which would write the copy under another key; the run stops."""


@dataclass
class Shaper:
    key_attributes: tuple[str, ...] = ()
    transform: Transform | None = None
    transform_name: str = ""
    transform_version: str = ""
    masks: dict[str, int] = field(default_factory=dict)
    hashes: tuple[str, ...] = ()
    keyed_hash: KeyedHash | None = None
    copy_attributes: tuple[str, ...] = ()
    drop_attributes: tuple[str, ...] = ()
    sealer: AttributeSealer | None = None
    # AccountB's KMS requests (the keyed hash's key, the sealer's data keys).
    counter: CallCounter = field(default_factory=CallCounter)

    def _check_keys(self) -> None:
        if dropped := sorted(set(self.drop_attributes) & set(self.key_attributes)):
            raise ConfigurationError(
                [f"DROP_ATTRIBUTES: {', '.join(dropped)} is a key attribute of the copy"]
            )
        if self.copy_attributes and not self.key_attributes:
            raise ConfigurationError(
                [
                    "SOURCE_KEY_ATTRIBUTES: required with COPY_ATTRIBUTES when the destination "
                    "does not tell the key (the key attributes are always copied)"
                ]
            )
        if self.sealer is not None and self.sealer.bind_item and not self.key_attributes:
            raise ConfigurationError(
                [
                    "SOURCE_KEY_ATTRIBUTES: required with REENCRYPT_CONTEXT=item and a "
                    "destination that does not know the key (the context names the item's key)"
                ]
            )

    def bind_keys(self, key_attributes: tuple[str, ...]) -> None:
        """The copy's key attributes, once the destination is prepared: kept by the selection,
        checked after TRANSFORM, bound by REENCRYPT_CONTEXT=item."""
        self.key_attributes = key_attributes
        if self.sealer is not None:
            self.sealer.key_attributes = key_attributes
        self._check_keys()

    @property
    def active(self) -> bool:
        steps = (
            self.transform,
            self.masks,
            self.hashes,
            self.copy_attributes,
            self.drop_attributes,
        )
        return self.sealer is not None or any(steps)

    def shape(self, item: Item) -> Item | None:
        """The item to write (None: leave it out of the copy). Raises ShapeFailed (the item
        is quarantined) or KeyChanged (the run stops)."""
        prepared = self.prepare(item)
        if prepared is None or self.sealer is None:
            return prepared
        return self.sealer.seal(prepared)

    def prepare(self, item: Item) -> Item | None:
        """The copy's plaintext: transform, masks, hashes and selection applied."""
        if self.transform is not None:
            shaped = self._transformed(item)
            if shaped is None:
                return None
            item = shaped
        for attribute, keep in self.masks.items():
            item = mask(item, attribute, keep=keep)
        if self.keyed_hash is not None:
            for attribute in self.hashes:
                item = self.keyed_hash.apply(item, attribute)
        return self._selected(item)

    def unseal(self, item: Item) -> Item:
        return self.sealer.unseal(item) if self.sealer is not None else item

    def _transformed(self, item: Item) -> Item | None:
        assert self.transform is not None
        # Copies of the key's values: a transform may change the item's dicts in place.
        key = {name: dict(item[name]) if name in item else None for name in self.key_attributes}
        try:
            shaped = self.transform(item)
        except Exception as exc:  # the user's code: its message could quote a value
            raise ShapeFailed(
                TRANSFORM_ATTRIBUTE, type(exc).__name__, f"TRANSFORM {self.transform_name} raised"
            ) from None
        if shaped is None:
            return None
        if not isinstance(shaped, dict):
            raise ShapeFailed(
                TRANSFORM_ATTRIBUTE,
                "InvalidItem",
                f"TRANSFORM {self.transform_name} returned a {type(shaped).__name__}, not an item",
            )
        if any(shaped.get(name) != value for name, value in key.items()):
            raise KeyChanged(
                [
                    f"TRANSFORM: {self.transform_name} changed or removed the key of item "
                    f"{describe_key(key, self.key_attributes)}; a transform must keep the key "
                    "attributes as they are"
                ]
            )
        return shaped

    def _selected(self, item: Item) -> Item:
        if self.copy_attributes:
            wanted = set(self.copy_attributes) | set(self.key_attributes)
            return {name: value for name, value in item.items() if name in wanted}
        for name in self.drop_attributes:
            item.pop(name, None)
        return item


def load_user_transform(spec: str | None) -> tuple[Transform | None, str]:
    """TRANSFORM's function and version (``None, ""`` when unset); a ConfigurationError
    naming TRANSFORM when it cannot be loaded."""
    if not spec:
        return None, ""
    try:
        return load_transform(spec)
    except ValueError as exc:
        raise ConfigurationError([f"TRANSFORM: {exc}"]) from None

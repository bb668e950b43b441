"""Decode a page: every item decrypted (each in full before the page is written, so no
half-decrypted item reaches the destination), then sorted into copies and quarantine records.
An item whose failure is not its own fails the run.

With the lean KMS client the page's Decrypts are sent first, ``DECRYPT_CONCURRENCY`` in flight
from this one thread (``KmsDecrypter.prefetched``), and the items are then decoded one after
another with every plaintext at hand. With ``KMS_CLIENT=botocore`` the items are decoded
``DECRYPT_CONCURRENCY`` at a time on the decrypt threads, each sending its own Decrypts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from table_sync.aws.kms import ACCESS_DENIED, KmsDecrypter
from table_sync.errors import DecryptError
from table_sync.formats import AttributeDecryptFailed, DecodedItem, ItemDecoder
from table_sync.formats.base import ITEM_FAILURES, Wanted
from table_sync.items import Item, describe_key, key_of
from table_sync.quarantine import QuarantineRecord, now
from table_sync.shaping import Shaper
from table_sync.transforms import ShapeFailed


class ItemNamer:
    """Names items in errors by their key: SOURCE_KEY_ATTRIBUTES, else the destination table's
    key, else the attributes of the scan's LastEvaluatedKey, else by position."""

    def __init__(self, key_attributes: tuple[str, ...]) -> None:
        self.key_attributes = key_attributes

    def learn(self, last_evaluated_key: Item | None) -> None:
        if not self.key_attributes and last_evaluated_key:
            self.key_attributes = tuple(sorted(last_evaluated_key))

    def name(self, item: Item, page: int, index: int) -> str:
        if self.key_attributes:
            return describe_key(item, self.key_attributes)
        return f"#{index + 1} of page {page} (set SOURCE_KEY_ATTRIBUTES to name it by key)"

    def key(self, item: Item) -> Item | None:
        return key_of(item, self.key_attributes) if self.key_attributes else None


@dataclass
class DecodedPage:
    """A page sorted: what to write, and what to quarantine instead."""

    copies: list[Item] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)  # one per copy
    records: list[QuarantineRecord] = field(default_factory=list)
    items_decrypted: int = 0
    attributes_decrypted: int = 0
    # Items TRANSFORM left out of the copy, and the keys of those the destination may hold a
    # copy of, to remove it.
    items_filtered: int = 0
    removals: list[Item] = field(default_factory=list)


def _decode(decoder: ItemDecoder, item: Item) -> DecodedItem | AttributeDecryptFailed:
    try:
        return decoder.decode(item)
    except AttributeDecryptFailed as failure:
        return failure


def decode_items(
    pool: ThreadPoolExecutor, decoder: ItemDecoder, items: list[Item], concurrency: int
) -> list[DecodedItem | AttributeDecryptFailed]:
    """Every item of a page decoded, in order, ``concurrency`` at a time. Items go to the pool
    in runs of several (``concurrency`` x 8 runs a page), not one by one: handing an item to a
    thread costs more CPU than decoding it when its ciphertexts are in the cache, and runs this
    short still keep every thread busy until the page's last few items."""
    size = max(1, -(-len(items) // (concurrency * 8)))
    runs = [items[start : start + size] for start in range(0, len(items), size)]
    results: list[DecodedItem | AttributeDecryptFailed] = []
    for decoded in pool.map(lambda run: [_decode(decoder, item) for item in run], runs):
        results.extend(decoded)
    return results


@dataclass
class PageDecoder:
    """Decodes pages for one segment step and sorts what fails into quarantine records."""

    decoder: ItemDecoder
    kms: KmsDecrypter
    namer: ItemNamer
    pool: ThreadPoolExecutor
    concurrency: int
    run_id: str
    segment: int
    source_table: str
    # Without a quarantine (ON_DECRYPT_ERROR=fail) every failure fails the run.
    quarantining: bool
    # Names the destination keeps for its own bookkeeping (a dynamodb:// copy's digest), in
    # order: a source item that holds one cannot be copied faithfully there, and is quarantined.
    reserved: tuple[str, ...] = ()
    shaper: Shaper = field(default_factory=Shaper)

    def decode(
        self,
        items: list[Item],
        digests: list[bytes],
        page: int,
        copied: list[bool] | None = None,
    ) -> DecodedPage:
        """Decode ``items`` (each with its digest, which its copy keeps, and whether the
        destination may hold a copy of it: ``copied``, default yes) and shape them."""
        decoded = DecodedPage()
        refused = [self._reserved_name(item) for item in items]
        todo = [item for item, failure in zip(items, refused, strict=True) if failure is None]
        if self.kms.multiplexes:
            wanted = [self.decoder.ciphertexts(item) for item in todo]
            with self.kms.prefetched(wanted, self.concurrency):
                done = iter([_decode(self.decoder, item) for item in todo])
        else:
            done = iter(decode_items(self.pool, self.decoder, todo, self.concurrency))
        results = [failure or next(done) for failure in refused]
        for index, (item, outcome) in enumerate(zip(items, results, strict=True)):
            result: Item | AttributeDecryptFailed | None
            if isinstance(outcome, DecodedItem):
                decoded.attributes_decrypted += outcome.attributes_decrypted
                decoded.items_decrypted += 1 if outcome.attributes_decrypted else 0
                result = self._shaped(outcome.item)
            else:
                result = outcome
            if isinstance(result, AttributeDecryptFailed):
                decoded.records.append(self._quarantine(item, result, page, index))
            elif result is None:  # left out by TRANSFORM
                decoded.items_filtered += 1
                if copied is None or copied[index]:
                    decoded.removals.append(key_of(item, self.shaper.key_attributes))
            else:
                decoded.copies.append(result)
                decoded.digests.append(digests[index])
        return decoded

    def _shaped(self, item: Item) -> Item | AttributeDecryptFailed | None:
        if not self.shaper.active:
            return item
        try:
            return self.shaper.shape(item)
        except ShapeFailed as failure:
            return failure

    def _reserved_name(self, item: Item) -> AttributeDecryptFailed | None:
        """A failure naming the first of ``reserved`` the source item holds, if it holds one:
        its copy would carry table-sync's value under that name instead of the item's."""
        name = next((name for name in self.reserved if name in item), None)
        if name is None:  # the common case: no set made, nothing sorted, per item
            return None
        return AttributeDecryptFailed(
            name,
            "ReservedAttributeName",
            "a name a dynamodb:// copy keeps for table-sync's own bookkeeping: rename the "
            "attribute in the source, or copy to s3://, which carries it as it is",
        )

    def key_candidates(self, items: list[Item], limit: int = 3) -> list[Wanted]:
        """The first Decrypt of each of the first ``limit`` items that have one: what the run
        proves its key with (KmsDecrypter.prove) when it decrypts nothing else."""
        found = []
        for item in items:
            wanted = self.decoder.ciphertexts(item)
            if wanted:
                found.append(wanted[0])
                if len(found) == limit:
                    break
        return found

    def _quarantine(
        self, item: Item, failure: AttributeDecryptFailed, page: int, index: int
    ) -> QuarantineRecord:
        error = DecryptError(
            item=self.namer.name(item, page, index),
            attribute=failure.attribute,
            kind=failure.kind,
            detail=failure.detail,
            action="copy" if isinstance(failure, ShapeFailed) else "decrypt",
        )
        if not self.quarantining or not self._item_specific(failure):
            raise error from failure
        return QuarantineRecord(
            run_id=self.run_id,
            source_table=self.source_table,
            item=error.item,
            key=self.namer.key(item),
            attribute=error.attribute,
            error=error.kind,
            detail=failure.detail,
            segment=self.segment,
            page=page,
            quarantined_at=now(),
        )

    def _item_specific(self, failure: AttributeDecryptFailed) -> bool:
        """Whether a failure belongs to the item. AccessDenied does only when this key has
        decrypted something else in this run; otherwise the role or key policy is wrong for
        every item."""
        if isinstance(failure, ShapeFailed):  # the item's own values made it fail
            return True
        if failure.kind in ACCESS_DENIED:
            return self.kms.successes > 0
        return failure.kind in ITEM_FAILURES

"""pipeline/heap.py: what a segment's start-up made is frozen for its page loop only, so a warm
invocation's leftovers are still collected."""

from __future__ import annotations

import gc
import weakref

import pytest

from table_sync.pipeline.heap import start_up_frozen


def test_what_exists_on_entry_is_frozen_until_the_block_ends() -> None:
    assert gc.get_freeze_count() == 0
    with start_up_frozen():
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_failing_block_unfreezes_too() -> None:
    with pytest.raises(RuntimeError), start_up_frozen():
        raise RuntimeError("a segment failed")
    assert gc.get_freeze_count() == 0


def test_garbage_from_before_the_block_is_collected_once_it_ends() -> None:
    """What is frozen is not collected, garbage or not: hence the unfreeze at the end, or each
    warm invocation's leftovers would stay for the life of the process."""

    class Cycle:
        other: Cycle

    first, second = Cycle(), Cycle()
    first.other, second.other = second, first
    left_over = weakref.ref(first)
    del first, second  # garbage now, but only a collection frees a cycle
    with start_up_frozen():
        gc.collect()
        assert left_over() is not None
    gc.collect()
    assert left_over() is None

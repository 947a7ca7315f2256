"""What a serving process (borgerdialog run, demo) sets for itself once it has started."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from bot.app import YOUNG_COLLECTION_THRESHOLD, prepare_collector_for_serving


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_what_was_built_at_start_is_left_out_of_cycle_collections(
    collector_restored: None,
) -> None:
    built_at_start = [{"catalog": n} for n in range(1_000)]
    assert gc.get_freeze_count() == 0
    prepare_collector_for_serving()
    # Frozen objects are in no generation: a full collection no longer walks through them.
    assert gc.get_freeze_count() >= len(built_at_start)
    assert all(o is not built_at_start for o in gc.get_objects(generation=2))
    # Updates' objects, which mostly die young, are collected less often than every 700.
    assert gc.get_threshold()[0] == YOUNG_COLLECTION_THRESHOLD


def test_a_cycle_made_while_serving_is_still_collected(collector_restored: None) -> None:
    prepare_collector_for_serving()
    collected: list[str] = []

    class Node:
        def __init__(self) -> None:
            self.other: Node | None = None

        def __del__(self) -> None:
            collected.append("node")

    first, second = Node(), Node()
    first.other, second.other = second, first
    del first, second
    gc.collect()
    assert collected == ["node", "node"]

"""The process-wide caches (core/search/caches.py): a lock per key, so one method's first model load
never stalls another's, one load per key however many ask, and the model cache's least-recently-used
eviction (LOOKALIKE_MODEL_CACHE)."""

from __future__ import annotations

import dataclasses
import threading

import pytest

from core.methods import get_spec, registry
from core.search import caches
from core.search.space import open_space
from core.settings import SettingError

STARTED = threading.Event()  # the gated load has begun
RELEASE = threading.Event()  # the gated load may finish
LOADS: list[str] = []


def gated_colour(spec, catalog):
    """A real colour-histogram extractor whose load waits for RELEASE: a slow model load, made to
    last exactly as long as the test needs."""
    from core.methods.colour import ColourHistogram

    LOADS.append(spec.name)
    STARTED.set()
    assert RELEASE.wait(60), "the test never released the load"
    return ColourHistogram(spec, catalog)


@pytest.fixture
def methods(monkeypatch):
    """Registers `gated` (loads through gated_colour) and `plain_a`..`plain_c` (colour histograms
    under other names), for this test only."""
    STARTED.clear()
    RELEASE.clear()
    LOADS.clear()
    colour = get_spec("color_hist")
    monkeypatch.setitem(
        registry._REGISTRY, "gated", dataclasses.replace(colour, name="gated", factory="test_caches:gated_colour")
    )
    for name in ("plain_a", "plain_b", "plain_c"):
        monkeypatch.setitem(registry._REGISTRY, name, dataclasses.replace(colour, name=name))
    yield
    RELEASE.set()


def in_thread(work) -> tuple[threading.Thread, list]:
    """`work()` started in a thread; the list gets its result."""
    got: list = []
    thread = threading.Thread(target=lambda: got.append(work()), daemon=True)
    thread.start()
    return thread, got


def test_a_first_model_load_never_waits_for_another_methods_load(catalog, methods):
    slow, slow_got = in_thread(lambda: open_space(catalog, "gated").extractor())
    assert STARTED.wait(30)
    other, other_got = in_thread(lambda: open_space(catalog, "plain_a").extractor())
    other.join(timeout=20)  # a colour extractor loads in milliseconds
    finished_first = not other.is_alive() and slow.is_alive()
    RELEASE.set()
    slow.join(timeout=30)
    other.join(timeout=30)
    assert finished_first, "plain_a's first load waited for gated's"
    assert other_got and slow_got and slow_got[0] is not other_got[0]


def test_one_method_asked_for_at_once_is_loaded_once(catalog, methods):
    first, first_got = in_thread(lambda: open_space(catalog, "gated").extractor())
    assert STARTED.wait(30)
    second, second_got = in_thread(lambda: open_space(catalog, "gated").extractor())
    RELEASE.set()
    first.join(timeout=30)
    second.join(timeout=30)
    assert LOADS == ["gated"]
    assert first_got[0] is second_got[0]


def test_the_model_cache_keeps_the_most_recently_used(catalog, methods, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODEL_CACHE", "2")
    caches.clear(caches.EXTRACTORS)
    a, b = (open_space(catalog, name).extractor() for name in ("plain_a", "plain_b"))
    assert open_space(catalog, "plain_a").extractor() is a  # a hit: plain_a is now the most recent
    open_space(catalog, "plain_c").extractor()  # one more than two: the least recently used (plain_b) goes
    assert [key[1] for key in caches.EXTRACTORS] == ["plain_a", "plain_c"]
    assert open_space(catalog, "plain_a").extractor() is a
    assert open_space(catalog, "plain_b").extractor() is not b  # loaded again


def test_a_model_cache_setting_that_cannot_be_used_names_the_variable(catalog, methods, monkeypatch):
    monkeypatch.setenv("LOOKALIKE_MODEL_CACHE", "none")
    with pytest.raises(SettingError, match="LOOKALIKE_MODEL_CACHE must be a whole number"):
        open_space(catalog, "plain_a").extractor()


def test_the_gone_items_are_read_again_only_once_one_has_gone_or_come_back(catalog):
    """Every search leaves the gone items out: a process reads their ids once per change of the catalog's
    gone counter, and a change made by another process counts at once."""
    from core.catalog.db import open_catalog
    from core.search.space import gone_items

    with catalog.conn:
        catalog.conn.executemany("INSERT INTO items (id, source) VALUES (?, 'csv')", [("a",), ("b",)])
    other = open_catalog(catalog.path)  # another process's connection: the feed's sync
    first = gone_items(catalog)
    assert first == frozenset() and gone_items(catalog) is first  # not read again
    with other.conn:
        other.conn.execute("UPDATE items SET gone_at = datetime('now') WHERE id = 'b'")
    gone = gone_items(catalog)
    assert gone == {"b"} and gone_items(catalog) is gone
    with other.conn:
        other.conn.execute("UPDATE items SET title = 'renamed' WHERE id = 'b'")  # nothing gone or back
    assert gone_items(catalog) is gone
    caches.clear()  # every cache, this one too (a catalog file replaced by hand)
    again = gone_items(catalog)
    assert again == gone and again is not gone
    with other.conn:
        other.conn.execute("UPDATE items SET gone_at = NULL WHERE id = 'b'")
    assert gone_items(catalog) == frozenset()

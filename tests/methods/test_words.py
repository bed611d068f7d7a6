"""`words`: TF-IDF of the catalog's titles, fitted once per catalog, searched like any text method."""

from __future__ import annotations

import numpy as np

from core.catalog.vectors import load_matrix
from core.engines.embed import embed_catalog
from core.methods import create_extractor, get_spec
from core.methods.words import fit_path
from core.search.queries import search
from core.search.space import open_space


def test_words_fit_once_on_the_catalog_and_find_same_titled_items(demo_catalog):
    report = embed_catalog(demo_catalog, "words", progress=False)
    saved = fit_path(demo_catalog)
    assert saved.exists() and report.embedded == 300 and report.version.startswith("1-")
    assert get_spec("words").resolved(demo_catalog).version == report.version  # the fit's digest
    ids, matrix = load_matrix(demo_catalog, "words")
    assert len(ids) == 300 and np.allclose(np.linalg.norm(matrix, axis=1), 1, atol=1e-4)

    before = saved.read_bytes()
    embed_catalog(demo_catalog, "words", progress=False)  # kept: not fitted again, nothing re-embedded
    assert saved.read_bytes() == before

    hits = search(open_space(demo_catalog, "words"), text="black watch", k=10).results
    titles = [h.title.lower() for h in hits]
    assert sum("watch" in t for t in titles) >= 8 and "black" in titles[0]

    item = demo_catalog.execute("SELECT id FROM items WHERE title LIKE '%Navy Blue Flip Flops'").fetchone()[0]
    same = search(open_space(demo_catalog, "words"), item_id=item, k=5).results
    assert all(h.title.endswith("Flip Flops") for h in same[:3])  # its own word pair, whatever the colour


def test_words_vectors_do_not_depend_on_the_batch(demo_catalog):
    embed_catalog(demo_catalog, "words", progress=False)
    extractor = create_extractor("words", demo_catalog)
    texts = ["Navy Blue Shirt", "Black Leather Watch", "zzz unknown words"]
    together = extractor.embed_texts(texts)
    alone = np.vstack([extractor.embed_texts([t]) for t in texts])
    assert np.allclose(together, alone, atol=1e-6)
    assert not together[2].any()  # no known word: a zero vector, never NaN


def test_a_space_that_fits_words_serves_the_fits_version(demo_catalog):
    """Embed + index with a space opened before the first fit: the space takes the fit's version, so its
    index and searches are of that version with no stale note; deleting the fit (to fit anew) then
    fits again rather than serving the model kept in the process."""
    from core.engines.prepare import prepare_method

    space = open_space(demo_catalog, "words")
    assert space.version == "1"  # nothing fitted yet
    report = prepare_method(space)
    assert report.embedded == 300 and space.version == report.version != "1"
    assert space.searched_version() == report.version and space.stale_note() is None
    assert space.loaded_index(rebuild=False).info.items == 300
    assert search(space, text="black watch", k=3).notes == []
    fit_path(demo_catalog).unlink()
    again = open_space(demo_catalog, "words")
    assert again.version == "1" and again.extractor().spec.version == report.version  # fitted again, same texts
    assert fit_path(demo_catalog).exists() and again.version == report.version

"""Near-duplicate finder on the real demo catalog: re-listed photos, many copies, both search paths, CLI."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest
from PIL import Image

from core.catalog.vectors import get_vector, store
from core.cli import main
from core.search import backends
from core.search.near_duplicates import NEIGHBOURS, find_duplicates
from core.search.queries import photo_vector
from core.search.space import open_space

METHOD = "efficientnet_lite0"


def relist(db, item_id: str, copy_id: str, vector, brand: str | None = None) -> None:
    """Another listing of an item (as a second merchant would list it), with its own vector."""
    with db.conn:
        db.conn.execute(
            "INSERT INTO items (id, source, title, brand) SELECT ?, 'merchant2', title, ? FROM items WHERE id = ?",
            (copy_id, brand, item_id),
        )
    store(db, METHOD, "1", [(copy_id, vector, copy_id)])


def demo_item(db, offset: int) -> tuple[str, str]:
    return db.execute(
        "SELECT i.item_id, i.path FROM images i JOIN embeddings e ON e.item_id = i.item_id "
        "AND e.method = ? ORDER BY i.item_id LIMIT 1 OFFSET ?",
        (METHOD, offset),
    ).fetchone()


def test_a_relisted_photo_is_found(embedded_demo):
    baseline = {(p.a, p.b) for p in find_duplicates(open_space(embedded_demo, METHOD), 0.95, progress=False)}
    item, path = demo_item(embedded_demo, 42)
    buffer = io.BytesIO()  # the merchant's copy: smaller, re-encoded
    Image.open(path).convert("RGB").resize((180, 240)).save(buffer, "JPEG", quality=80)
    relist(embedded_demo, item, "copy-1", photo_vector(open_space(embedded_demo, METHOD), buffer.getvalue()))
    pairs = find_duplicates(open_space(embedded_demo, METHOD), 0.95, progress=False)
    new = [p for p in pairs if (p.a, p.b) not in baseline]
    assert [(p.a, p.b) for p in new] == [tuple(sorted((item, "copy-1")))]
    assert 0.95 <= new[0].similarity <= 1 and new[0].a_title == new[0].b_title
    similarities = [p.similarity for p in pairs]
    assert similarities == sorted(similarities, reverse=True)


def test_a_product_listed_many_times_yields_every_pair(embedded_demo, monkeypatch):
    item, _ = demo_item(embedded_demo, 7)
    vector = get_vector(embedded_demo, METHOD, item)
    copies = NEIGHBOURS + 5  # more copies than one look at the neighbours holds
    for n in range(copies):
        relist(embedded_demo, item, f"copy-{n:02d}", vector, brand="Acme" if n % 2 else "Zed")
    group = {item} | {f"copy-{n:02d}" for n in range(copies)}
    for limit in (20_000, 0):  # exact blocks, then the Annoy index
        monkeypatch.setattr(backends, "EXACT_LIMIT", limit)
        pairs = [
            p for p in find_duplicates(open_space(embedded_demo, METHOD), 0.999, progress=False) if {p.a, p.b} <= group
        ]
        assert len(pairs) == len(group) * (len(group) - 1) // 2
        assert all(p.similarity == pytest.approx(1.0, abs=1e-5) for p in pairs)
        same = [p for p in pairs if p.same_brand]
        assert same and all(p.a.startswith("copy") and p.b.startswith("copy") for p in same)


def test_threshold_is_checked(embedded_demo):
    for bad in (0, 1.5, -0.2):
        with pytest.raises(ValueError, match="between 0 and 1"):
            find_duplicates(open_space(embedded_demo, METHOD), bad, progress=False)
    with pytest.raises(ValueError, match="python -m core embed --method dino"):
        find_duplicates(open_space(embedded_demo, "dino"), 0.9, progress=False)


def test_cli_duplicates_json(embedded_demo, tmp_path):
    item, _ = demo_item(embedded_demo, 3)
    relist(embedded_demo, item, "copy-cli", get_vector(embedded_demo, METHOD, item))
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(
            ["duplicates", "--db", str(tmp_path / "demo.db"), "--method", METHOD, "--threshold", "0.999", "--json"]
        )
    pairs = json.loads(out.getvalue())
    assert code == 0 and {"a", "b", "similarity", "a_title", "b_title", "same_brand"} <= set(pairs[0])
    assert tuple(sorted((item, "copy-cli"))) in {(p["a"], p["b"]) for p in pairs}

"""The app's shared parts (streamlit_app/ui.py): photos shown only through the catalog's check."""

from __future__ import annotations

from pathlib import Path

from core.catalog.importers import import_csv

from helpers import DEMO, ROOT, small_styles

PHOTO = (DEMO / "images" / "10129.jpg").read_bytes()


def test_the_app_shows_only_photos_the_catalog_records(catalog, tmp_path, monkeypatch):
    import ui

    monkeypatch.setenv("LOOKALIKE_DB", str(catalog.path))
    csv_path, folder = small_styles(tmp_path)
    import_csv(catalog, csv_path, folder, progress=False)
    recorded = catalog.execute("SELECT path FROM images WHERE status = 'ok' ORDER BY path").fetchone()[0]
    outside = tmp_path / "elsewhere.jpg"  # a real photo, outside the imported folder
    outside.write_bytes(PHOTO)
    unrecorded = folder / "not-imported.jpg"  # inside the folder, but never imported
    unrecorded.write_bytes(PHOTO)
    for path in ("/etc/passwd", str(outside), str(unrecorded), f"{folder}/../{folder.name}/{Path(recorded).name}"):
        assert ui.thumb(path) is None, path
    assert Path(ui.thumb(recorded)).is_file()
    assert len(list(catalog.thumbnails_dir.rglob("*.jpg"))) == 1  # nothing else was read and kept


def test_pages_show_images_only_through_the_catalog_check():
    """st.image only in ui.photo (catalog photos), for an upload (Search, Label) once load_upload has checked it,
    and the docs' label curve on the Precision page;
    no page reads query parameters."""
    app = ROOT / "streamlit_app"
    sources = {path.relative_to(app).as_posix(): path.read_text(encoding="utf-8") for path in app.rglob("*.py")}
    shows = {name: source.count(".image(") for name, source in sources.items() if ".image(" in source}
    assert shows == {"ui.py": 1, "views/search.py": 1, "views/label.py": 1, "views/precision.py": 1}
    # the Precision page's one image is the project's own label curve, a fixed file under docs/
    assert "st.image(str(CURVE))" in sources["views/precision.py"]
    assert 'CURVE = Path(__file__).resolve().parents[2] / "docs" / "label_curve.png"' in sources["views/precision.py"]
    assert "where.image(image" in sources["ui.py"].split("def photo(")[1].split("def ")[0]
    assert "load_upload(" in sources["ui.py"].split("def upload_photo(")[1].split("def ")[0]
    for name in ("views/search.py", "views/label.py"):  # an upload is shown only after that check
        view = sources[name]
        assert view.index("ui.uploaded_photo(") < view.index(".image(shown")
    assert not any("query_params" in source for source in sources.values())

"""`--download` against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import csv
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.catalog import download
from core.catalog.importers import import_farfetch

from helpers import DEMO, FIXTURES

PHOTO = sorted((DEMO / "images").iterdir())[0].read_bytes()


class Handler(BaseHTTPRequestHandler):
    hits: dict[str, int] = {}

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        Handler.hits[self.path] = Handler.hits.get(self.path, 0) + 1
        name = self.path.rsplit("/", 1)[-1]
        if "flaky" in name and Handler.hits[self.path] == 1:
            return self._send(503, b"busy", "text/plain")
        if "html" in name:
            return self._send(200, b"<html>login</html>", "text/html")
        if "huge" in name:
            return self._send(200, b"\xff" * 4096, "image/jpeg")
        if "gone" in name:
            return self._send(404, b"nope", "text/plain")
        return self._send(200, PHOTO, "image/jpeg")

    def _send(self, code: int, body: bytes, kind: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Handler.hits = {}
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_checks_status_type_and_size(server, tmp_path):
    http = download.session()
    local = {"allow_private_hosts": True}  # the test server is on 127.0.0.1
    dest = tmp_path / "ok.jpg"
    assert download.fetch(f"{server}/img/ok_1.jpg", dest, http, **local).read_bytes() == PHOTO
    assert download.fetch(f"{server}/img/flaky_1.jpg", tmp_path / "f.jpg", http, **local).exists()
    assert Handler.hits["/img/flaky_1.jpg"] == 2  # retried after the 503
    with pytest.raises(download.DownloadError, match="not an image"):
        download.fetch(f"{server}/img/html_1.jpg", tmp_path / "h.jpg", http, **local)
    with pytest.raises(download.DownloadError, match="HTTP 404"):
        download.fetch(f"{server}/img/gone_1.jpg", tmp_path / "g.jpg", http, **local)
    with pytest.raises(download.DownloadError, match="too large"):
        download.fetch(f"{server}/img/huge_1.jpg", tmp_path / "u.jpg", http, max_bytes=1000, **local)
    with pytest.raises(download.DownloadError, match="cannot fetch"):
        download.fetch("http://127.0.0.1:9/closed.jpg", tmp_path / "c.jpg", download.session(retries=0), **local)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.jpg", "ok.jpg"]  # no partial files


def test_import_farfetch_with_download_fetches_missing_photos(server, catalog, tmp_path):
    with open(FIXTURES / "farfetch_40.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))[:4]
    rows[1]["images.model"] = rows[1]["images.model"].replace("_300.jpg", "_gone.jpg")
    rows[2]["images.cutOut"] = rows[2]["images.cutOut"].replace("_300.jpg", "_html.jpg")
    for row in rows:  # point the real URLs at the local server
        for column in ("images.cutOut", "images.model"):
            row[column] = f"{server}/{'/'.join(row[column].split('/')[3:])}"
    csv_path = tmp_path / "listings.csv"
    with open(csv_path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    folder = tmp_path / "photos"
    report = import_farfetch(catalog, csv_path, folder, download=True, progress=False, allow_private_hosts=True)
    assert report.items == 4
    assert report.images_ok == 6 and report.images_bad == 2
    assert sum("HTTP 404" in p.reason for p in report.problems) == 1
    assert sum("not an image" in p.reason for p in report.problems) == 1
    again = import_farfetch(catalog, csv_path, folder, download=True, progress=False, allow_private_hosts=True)
    assert again.images_ok == 6  # nothing fetched twice
    assert sum(Handler.hits.values()) == 6 + 2 * 2  # the two failures are retried on the rerun

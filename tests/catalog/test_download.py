"""`--download` against a local HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import csv
import ipaddress
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.catalog import download
from core.catalog.importers import import_farfetch
from core.curation.export import export_similar
from core.engines.embed import embed_catalog
from core.search.space import open_space

from helpers import DEMO, FIXTURES, read_rows

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


class CountingServer(BaseHTTPRequestHandler):
    """Photos, slow photos, a redirect; counts requests and how many run at once."""

    hits: dict[str, int] = {}
    busy = 0
    most_busy = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.counted_out = False
        with CountingServer.lock:
            CountingServer.hits[self.path] = CountingServer.hits.get(self.path, 0) + 1
            CountingServer.busy += 1
            CountingServer.most_busy = max(CountingServer.most_busy, CountingServer.busy)
        try:
            self._answer()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up: stop
        finally:
            self._done()

    def _done(self) -> None:
        """This request no longer counts as busy (once only; called before its body is sent)."""
        if not self.counted_out:
            self.counted_out = True
            with CountingServer.lock:
                CountingServer.busy -= 1

    def _answer(self) -> None:
        if self.path.startswith("/redirect"):
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_address[1]}/img/ok.jpg")
            self.send_header("Content-Length", "0")
            return self.end_headers()
        if "gone" in self.path:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            return self.end_headers()
        self.send_response(200)
        self.send_header("Content-Type", "image/jpeg")
        self.send_header("Content-Length", str(len(PHOTO)))
        self.end_headers()
        if "trickle" in self.path:  # one byte every 0.2 s, 40 bytes at most
            for n in range(40):
                self.wfile.write(PHOTO[n : n + 1])
                self.wfile.flush()
                time.sleep(0.2)
            return
        if "slow" in self.path:
            time.sleep(0.3)
        self._done()  # before the body: once the client has it, it may start its next photo at once
        self.wfile.write(PHOTO)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counting_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CountingServer)
    httpd.daemon_threads = True
    CountingServer.hits, CountingServer.busy, CountingServer.most_busy = {}, 0, 0
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_trickling_server_meets_the_deadline(counting_server, tmp_path):
    started = time.monotonic()
    with pytest.raises(download.DownloadError, match="not finished within 1 s"):
        download.fetch(
            f"{counting_server}/img/trickle.jpg",
            tmp_path / "t.jpg",
            download.session(retries=0),
            deadline_s=1,
            allow_private_hosts=True,
        )
    assert time.monotonic() - started < 5
    assert not (tmp_path / "t.jpg").exists()


def farfetch_csv(tmp_path: Path, urls: list[tuple[str, str]]) -> Path:
    rows = read_rows(FIXTURES / "farfetch_40.csv", "utf-8")[: len(urls)]
    for row, (cutout, model) in zip(rows, urls):
        row["images.cutOut"], row["images.model"] = cutout, model
    path = tmp_path / "listings.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_photos_download_several_at_once(counting_server, tmp_path):
    path = farfetch_csv(
        tmp_path, [(f"{counting_server}/slow/{n}a.jpg", f"{counting_server}/slow/{n}b.jpg") for n in range(4)]
    )
    report = download.download_listing_images(path, tmp_path / "photos", progress=False, allow_private_hosts=True)
    assert report.images_ok == 8 and report.problems == []
    assert 1 < CountingServer.most_busy <= download.WORKERS


def test_credentials_never_shown_stored_or_exported(counting_server, tmp_path, catalog):
    secret = counting_server.replace("http://", "http://shop:s3cret@")
    path = farfetch_csv(
        tmp_path, [(f"{secret}/img/1.jpg", f"{secret}/img/gone.jpg"), (f"{secret}/img/2.jpg", f"{secret}/img/3.jpg")]
    )
    report = import_farfetch(
        catalog, path, tmp_path / "photos", download=True, progress=False, allow_private_hosts=True
    )
    assert report.images_ok == 3 and report.images_bad == 1
    assert "HTTP 404" in str(report.problems) and "s3cret" not in str(report.as_dict())
    stored = catalog.execute("SELECT group_concat(url) FROM images").fetchone()[0] + "".join(
        r[0] for r in catalog.execute("SELECT attributes FROM items")
    )
    assert "s3cret" not in stored and f"{counting_server}/img/1.jpg" in stored
    embed_catalog(catalog, "color_hist", progress=False)
    out = tmp_path / "similar.csv"
    export_similar(open_space(catalog, "color_hist"), 1, out, progress=False)
    assert "s3cret" not in out.read_text(encoding="utf-8-sig") and "/img/1.jpg" in out.read_text(encoding="utf-8-sig")


def test_private_hosts_are_refused_unless_allowed(counting_server, tmp_path, monkeypatch):
    http = download.session(retries=0)
    with pytest.raises(download.DownloadError, match="--allow-private-hosts"):
        download.fetch(f"{counting_server}/img/ok.jpg", tmp_path / "a.jpg", http)
    assert CountingServer.hits == {}  # refused before connecting
    # Treat 127.0.0.1 as a public address so that only the redirect's target, localhost, is private.
    real = download._addresses
    monkeypatch.setattr(
        download,
        "_addresses",
        lambda host, port: [ipaddress.ip_address("93.184.216.34")] if host == "127.0.0.1" else real(host, port),
    )
    with pytest.raises(download.DownloadError, match="localhost is a private"):
        download.fetch(f"{counting_server}/redirect", tmp_path / "b.jpg", http)
    assert CountingServer.hits == {"/redirect": 1}
    monkeypatch.undo()
    assert download.fetch(f"{counting_server}/redirect", tmp_path / "c.jpg", http, allow_private_hosts=True).exists()

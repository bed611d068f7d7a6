"""The JSON API (`python -m core serve`): every status code with FastAPI's TestClient on the embedded
demo catalog, results equal to `search`, keys, uploads, a catalog changed while serving, a real server."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from core.api.app import create_app
from core.catalog.images import MAX_UPLOAD_BYTES
from core.catalog.vectors import load_matrix, promote, store
from core.curation.labels import Query, add_label
from core.methods.registry import method_states
from core.search import backends
from core.search.queries import search
from core.search.space import open_space

from helpers import ROOT, run_cli

METHOD = "efficientnet_lite0"
KEY = "k3y-for-tests"
HEAD = b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'  # a multipart body's start


def first_items(db, n: int, method: str = METHOD) -> list[str]:
    return [
        r[0]
        for r in db.execute("SELECT item_id FROM embeddings WHERE method = ? ORDER BY item_id LIMIT ?", (method, n))
    ]


def photo_of(db, item_id: str) -> bytes:
    path = db.execute("SELECT path FROM images WHERE item_id = ? AND status = 'ok'", (item_id,)).fetchone()[0]
    return open(path, "rb").read()


@pytest.fixture
def client(embedded_demo):
    with TestClient(create_app(embedded_demo.path, keys=())) as c:
        yield c


def error_of(reply, status: int) -> str:
    """The reply's one-line JSON error, after checking its status."""
    assert reply.status_code == status, reply.text
    message = reply.json()["error"]
    assert message and "\n" not in message
    return message


def test_similar_items_raw_are_search_by_item_with_labels(embedded_demo, client):
    query, *_ = first_items(embedded_demo, 1)
    expected = search(open_space(embedded_demo, METHOD), item_id=query, k=7).results
    add_label(embedded_demo, Query.item(query), expected[0].item_id, METHOD, 1, True, "ana")
    add_label(embedded_demo, Query.item(query), expected[1].item_id, METHOD, 2, False, "ana")
    reply = client.get(f"/items/{query}/similar", params={"k": 7, "raw": "true"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["method"] == METHOD
    assert (
        body["version"]
        == embedded_demo.execute("SELECT DISTINCT version FROM embeddings WHERE method = ?", (METHOD,)).fetchone()[0]
    )
    assert [(r["item_id"], r["score"], r["title"]) for r in body["results"]] == [
        (h.item_id, h.score, h.title) for h in expected
    ]
    assert query not in {r["item_id"] for r in body["results"]}
    assert [r["relevant"] for r in body["results"][:3]] == [True, False, None]
    assert {r["reason"] for r in body["results"]} == {"model"}
    only = client.get(f"/items/{query}/similar", params={"k": 7, "only_relevant": "true"}).json()["results"]
    assert [r["item_id"] for r in only] == [expected[0].item_id]


def test_similar_items_are_the_curated_list_with_reasons_and_steers(embedded_demo, client):
    from core.curation import decisions
    from core.curation.curated import curated_search

    query, *_ = first_items(embedded_demo, 1)
    model = [h.item_id for h in search(open_space(embedded_demo, METHOD), item_id=query, k=40).results]
    add_label(embedded_demo, Query.item(query), model[0], METHOD, 1, False, "ana")
    add_label(embedded_demo, Query.item(query), model[4], METHOD, 5, True, "ana")
    decisions.pin(embedded_demo, query, model[30], 2, "ana")
    decisions.hide(embedded_demo, model[1], "ana")
    body = client.get(f"/items/{query}/similar", params={"k": 7}).json()["results"]
    expected = curated_search(open_space(embedded_demo, METHOD), item_id=query, k=7).results
    assert [(r["item_id"], r["reason"]) for r in body] == [(h.item_id, h.reason) for h in expected]
    assert [(r["item_id"], r["reason"], r["relevant"]) for r in body[:2]] == [
        (model[4], "accepted", True),
        (model[30], "pinned", None),
    ]
    assert {r["reason"] for r in body[2:]} == {"steered"} and not {model[0], model[1]} & {r["item_id"] for r in body}
    steered = client.get(
        f"/items/{query}/similar", params={"k": 7, "like": [model[20]], "unlike": [model[2], model[3]]}
    ).json()["results"]
    assert model[20] in {r["item_id"] for r in steered} and not {model[2], model[3]} & {r["item_id"] for r in steered}
    assert "not a catalog item" in error_of(client.get(f"/items/{query}/similar", params={"like": "nope"}), 422)
    assert "leave out raw" in error_of(
        client.get(f"/items/{query}/similar", params={"like": model[5], "raw": "true"}), 422
    )
    raw = client.get(f"/items/{query}/similar", params={"k": 7, "raw": "true"}).json()["results"]
    assert [r["item_id"] for r in raw] == model[:7]


def test_filters_select_results_and_bad_ones_are_422(embedded_demo, client):
    query = first_items(embedded_demo, 1)[0]
    category = embedded_demo.execute("SELECT category FROM items WHERE id = ?", (query,)).fetchone()[0]
    reply = client.get(
        f"/items/{query}/similar", params={"filter": [f"category={category}"], "k": 5, "method": "color_hist"}
    )
    assert reply.status_code == 200, reply.text
    ids = [r["item_id"] for r in reply.json()["results"]]
    assert ids and all(
        embedded_demo.execute("SELECT category FROM items WHERE id = ?", (i,)).fetchone()[0] == category for i in ids
    )
    assert "unknown filter 'shoe'" in error_of(client.get(f"/items/{query}/similar?filter=shoe=1"), 422)
    assert "needs a number" in error_of(client.get(f"/items/{query}/similar?filter=price_max=cheap"), 422)
    assert "not key=value" in error_of(client.get(f"/items/{query}/similar?filter=gender"), 422)


@pytest.mark.parametrize("k", ["0", "-3", "1001", "ten", "2.5"])
def test_a_bad_k_is_422(embedded_demo, client, k):
    query = first_items(embedded_demo, 1)[0]
    assert error_of(client.get(f"/items/{query}/similar?k={k}"), 422).startswith("k: ")


def test_unknown_item_is_404_and_unknown_or_unembedded_method_says_what_to_do(embedded_demo, client):
    query = first_items(embedded_demo, 1)[0]
    assert "no catalog item 'nope'" in error_of(client.get("/items/nope/similar"), 404)
    assert client.get(f"/items/%E2%80%8B{query}%20/similar").status_code == 200  # spelt as the catalog stores ids
    assert "GET /methods" in error_of(client.get(f"/items/{query}/similar?method=typo"), 404)
    assert "python -m core embed --method autoencoder" in error_of(
        client.get(f"/items/{query}/similar?method=autoencoder"), 422
    )
    embedded_demo.execute("DELETE FROM embeddings WHERE method = ? AND item_id = ?", (METHOD, query))
    embedded_demo.conn.commit()
    assert f"item {query} has no {METHOD} vector" in error_of(client.get(f"/items/{query}/similar"), 422)
    assert error_of(client.get("/no/such/path"), 404)


def test_keys_guard_everything_but_healthz(embedded_demo, tmp_path, monkeypatch):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# the shop\nother-key\n\n", encoding="utf-8")
    monkeypatch.setenv("LOOKALIKE_API_KEY", KEY)
    monkeypatch.setenv("LOOKALIKE_API_KEYS_FILE", str(keys_file))
    query = first_items(embedded_demo, 1)[0]
    with TestClient(create_app(embedded_demo.path)) as client:
        assert client.get("/healthz").status_code == 200
        for path in (f"/items/{query}/similar", "/methods", "/search/text?q=bag"):
            missing = client.get(path)
            assert "API key" in error_of(missing, 401) and missing.headers["www-authenticate"] == "Bearer"
            assert error_of(client.get(path, headers={"Authorization": "Bearer wrong"}), 401)
            assert error_of(client.get(path, headers={"Authorization": f"Basic {KEY}"}), 401)
        assert error_of(client.post("/search/image", files={"file": b"x"}), 401)
        for key in (KEY, "other-key"):
            assert client.get(f"/items/{query}/similar", headers={"Authorization": f"Bearer {key}"}).status_code == 200


def test_healthz_is_503_when_the_catalog_does_not_open(tmp_path):
    with TestClient(create_app(tmp_path / "none.db", keys=())) as client:
        assert "no catalog at" in error_of(client.get("/healthz"), 503)
        assert error_of(client.get("/methods"), 503)


def test_photo_search_finds_the_item_and_refuses_what_is_not_a_supported_photo(embedded_demo, client):
    item = first_items(embedded_demo, 1)[0]
    reply = client.post("/search/image", params={"k": 3}, files={"file": ("x.jpg", photo_of(embedded_demo, item))})
    assert reply.status_code == 200, reply.text
    assert reply.json()["results"][0]["item_id"] == item
    gif = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(gif, "GIF")
    assert "JPEG, PNG, WebP or AVIF" in error_of(client.post("/search/image", files={"file": gif.getvalue()}), 415)
    assert error_of(client.post("/search/image", files={"file": b"just text"}), 415)
    whole = photo_of(embedded_demo, item)
    truncated = whole[: len(whole) // 2]
    assert "truncated" in error_of(client.post("/search/image", files={"file": truncated}), 415)
    assert "field named 'file'" in error_of(client.post("/search/image", files={"photo": b"x"}), 422)
    assert error_of(client.post("/search/image", content=b"x", headers={"content-type": "image/jpeg"}), 422)
    assert "searches text" in error_of(
        client.post("/search/image?method=minilm", files={"file": photo_of(embedded_demo, item)}), 422
    )


def test_a_photo_over_the_cap_is_413_declared_or_streamed(client):
    big = b"\xff\xd8" + b"\0" * MAX_UPLOAD_BYTES
    assert "over 20 MB" in error_of(client.post("/search/image", files={"file": big}), 413)
    chunked = client.post(
        "/search/image",
        content=iter([HEAD, big, b"\r\n--b--\r\n"]),
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert "over 20 MB" in error_of(chunked, 413)


def test_an_upload_is_refused_as_soon_as_it_passes_the_cap():
    """Without a Content-Length the server stops reading just past the cap, not at the end of the body."""
    import anyio
    from starlette.requests import Request

    from core.api.uploads import UploadTooLarge, read_photo

    pulled = []

    async def receive():
        pulled.append(1)
        return {"type": "http.request", "body": HEAD if len(pulled) == 1 else b"\0" * (1 << 20), "more_body": True}

    scope = {"type": "http", "method": "POST", "headers": [(b"content-type", b"multipart/form-data; boundary=b")]}
    with pytest.raises(UploadTooLarge):
        anyio.run(read_photo, Request(scope, receive))
    assert len(pulled) <= MAX_UPLOAD_BYTES // (1 << 20) + 2


def test_text_search_and_methods(embedded_demo, client):
    reply = client.get("/search/text", params={"q": "black leather handbag", "k": 4})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["method"] == "minilm" and len(body["results"]) == 4
    expected = search(open_space(embedded_demo, "minilm"), text="black leather handbag", k=4).results
    assert [r["item_id"] for r in body["results"]] == [h.item_id for h in expected]
    assert "cannot read text" in error_of(client.get("/search/text?q=bag&method=color_hist"), 422)
    assert error_of(client.get("/search/text?q="), 422)
    assert error_of(client.get("/search/text"), 422)
    assert {r["name"]: r["state"] for r in client.get("/methods").json()} == {
        r.name: r.state for r in method_states(embedded_demo)
    }


def test_a_filter_that_leaves_too_few_says_which_in_a_note_as_the_cli_does(embedded_demo, client):
    query = first_items(embedded_demo, 1)[0]
    emptied = client.get(f"/items/{query}/similar", params={"filter": "price_max=500", "k": 5})
    assert emptied.status_code == 200, emptied.text
    cli = search(open_space(embedded_demo, METHOD), item_id=query, k=5, filters={"price_max": 500.0})
    assert emptied.json()["results"] == [] and cli.results == []
    assert emptied.json()["note"] == "; ".join(cli.notes)
    assert "price_max=500 leaves 0 (no item has a price)" in emptied.json()["note"]
    assert client.get(f"/items/{query}/similar", params={"k": 5}).json()["note"] is None


def test_fused_methods_answer_as_the_cli_fuses_them(embedded_demo, client, capsys):
    from core.cli import main

    query = first_items(embedded_demo, 1)[0]
    fused = "efficientnet_lite0=0.7,color_hist=0.3"
    reply = client.get(f"/items/{query}/similar", params={"k": 6, "method": fused})
    assert reply.status_code == 200, reply.text
    assert (
        main(["search", "--item", query, "--method", fused, "-k", "6", "--json", "--db", str(embedded_demo.path)]) == 0
    )
    cli = json.loads(capsys.readouterr().out)["results"]
    assert [(r["item_id"], r["score"]) for r in reply.json()["results"]] == [(h["item_id"], h["score"]) for h in cli]
    assert reply.json()["method"] == fused and reply.json()["version"].startswith("efficientnet_lite0=")
    photo = client.post(
        "/search/image", params={"k": 3, "method": fused}, files={"file": photo_of(embedded_demo, query)}
    )
    assert photo.status_code == 200 and photo.json()["results"][0]["item_id"] == query
    for bad in ("efficientnet_lite0=x", "efficientnet_lite0=0,color_hist=0"):
        assert main(["search", "--item", query, "--method", bad, "--db", str(embedded_demo.path)]) == 2
        said = error_of(client.get(f"/items/{query}/similar", params={"method": bad}), 422)
        assert said.removeprefix("method: ") in capsys.readouterr().err
    assert "GET /methods" in error_of(
        client.get(f"/items/{query}/similar", params={"method": "typo=1,color_hist=1"}), 404
    )


def test_no_answer_names_a_server_folder(embedded_demo, tmp_path, monkeypatch):
    """Every route, answering or refusing, and /methods with its missing methods' remedies: neither the
    catalog's folder nor the models folder appears; a missing method's reason is not repeated as todo."""
    folders = [str(embedded_demo.data_dir), str(embedded_demo.models_dir)]
    query = first_items(embedded_demo, 1)[0]
    with TestClient(create_app(embedded_demo.path, keys=())) as client:
        rows = client.get("/methods").json()
        missing = [r for r in rows if r["state"] == "missing"]
        assert missing and all(r["reason"] and r["todo"] is None for r in missing)
        assert any(f"{embedded_demo.models_dir.name}/vgg16" in r["reason"] for r in missing)
        assert all(r["todo"] is None or r["todo"] != r["reason"] for r in rows)
        replies = [
            client.get("/methods"),
            client.get("/healthz"),
            client.get(f"/items/{query}/similar?k=3"),
            client.get(f"/items/{query}/similar?method=vgg16"),
            client.get(f"/items/{query}/similar?method=autoencoder"),
            client.get("/search/text?q=bag"),
            client.post("/search/image?method=vgg16", files={"file": photo_of(embedded_demo, query)}),
            client.get("/openapi.json"),
        ]
    called = {"/items/{item_id}/similar", "/search/text", "/search/image", "/methods", "/healthz"}
    assert set(client.app.openapi()["paths"]) == called  # a new route joins this test
    with TestClient(create_app(tmp_path / "none.db", keys=())) as broken:
        replies += [broken.get("/healthz"), broken.get("/methods")]
    for reply in replies:
        assert not [f for f in folders if f in reply.text], (reply.request.url, reply.text[:300])


def test_docs_load_offline_from_the_package(client):
    """/docs and /redoc name only this server's own files, and each of them loads."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page)
        assert html.status_code == 200 and "http://" not in html.text and "https://" not in html.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert len(assets) >= 2 and all(a.startswith("/") and not a.startswith("//") for a in assets), assets
        for asset in assets:
            loaded = client.get(asset)
            assert loaded.status_code == 200 and len(loaded.content) > 1000, asset
            if asset.endswith(".css"):
                assert not re.search(r"url\(['\"]?(https?:)?//|@import", loaded.text)


def test_a_half_done_re_embed_serves_the_complete_old_version_not_503(embedded_demo, client):
    query = first_items(embedded_demo, 1)[0]
    before = client.get(f"/items/{query}/similar").json()
    ids, matrix = load_matrix(embedded_demo, METHOD)
    store(embedded_demo, METHOD, "next", [(i, -v, "x") for i, v in zip(ids[:50], matrix[:50])])  # 50 of 300
    during = client.get(f"/items/{query}/similar")
    assert during.status_code == 200 and before["note"] is None
    answer = during.json()  # the old version, whole, and a note that says a new one is on its way
    assert {**answer, "note": None} == before and "new version being embedded: 50/300" in answer["note"]
    state = next(m for m in client.get("/methods").json() if m["name"] == METHOD)
    assert "new version being embedded: 50/300" in (state["todo"] or state["reason"] or "")
    promote(embedded_demo, METHOD, "next")
    assert client.get(f"/items/{query}/similar").json()["version"] == "next"


def test_an_unexpected_failure_is_a_json_500(embedded_demo, monkeypatch):
    monkeypatch.setattr("core.api.app.curated_search", lambda *a, **k: 1 / 0)
    query = first_items(embedded_demo, 1)[0]
    with TestClient(create_app(embedded_demo.path, keys=()), raise_server_exceptions=False) as client:
        assert "server log" in error_of(client.get(f"/items/{query}/similar"), 500)


@pytest.mark.parametrize("path", ["exact", "annoy"])
def test_index_rebuilds_and_re_embeds_while_serving_never_fail_or_mix(embedded_demo, monkeypatch, path):
    """Requests run while another thread rebuilds the index and rewrites vectors (same version):
    every answer is 200 or a 503 with a reason, and equals a search of one committed state."""
    if path == "annoy":
        monkeypatch.setattr(backends, "EXACT_LIMIT", 0)
        open_space(embedded_demo, METHOD).build_index(trees=10, progress=False)
    ids, matrix = load_matrix(embedded_demo, METHOD)
    states = {0: matrix, 1: matrix[::-1].copy()}  # two vector sets: the same vectors, assigned in reverse
    query = ids[5]
    writer_path, stop, errors = embedded_demo.path, threading.Event(), []

    def curate():
        from core.catalog.db import open_catalog

        db = open_catalog(writer_path)
        try:
            for n in range(6):
                store(db, METHOD, "v", ((i, v, "x") for i, v in zip(ids, states[(n + 1) % 2])))
                open_space(db, METHOD).build_index(trees=10, progress=False)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            stop.set()
            db.conn.close()

    with TestClient(create_app(embedded_demo.path, keys=())) as client:
        worker = threading.Thread(target=curate)
        worker.start()
        replies = []
        while not stop.is_set() or len(replies) < 20:
            replies.append(client.get(f"/items/{query}/similar", params={"k": 5}))
        worker.join()
    assert not errors
    statuses = {r.status_code for r in replies}
    assert statuses <= {200, 503}, statuses
    assert all("index" in r.json()["error"] for r in replies if r.status_code == 503)
    answers = {tuple(x["item_id"] for x in r.json()["results"]) for r in replies if r.status_code == 200}
    truths = set()
    for vectors in states.values():
        sims = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ (vectors[5] / np.linalg.norm(vectors[5]))
        sims[5] = -np.inf
        truths.add(tuple(ids[j] for j in np.argsort(-sims)[:5]))
    assert answers and answers <= truths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_answers_on_loopback_and_refuses_to_open_without_a_key(embedded_demo):
    import httpx2 as httpx

    refused = run_cli("serve", "--db", str(embedded_demo.path), "--host", "0.0.0.0", env={"LOOKALIKE_API_KEY": ""})
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "without an API key" in refused.stderr
    port = free_port()
    env = {**os.environ, "LOOKALIKE_API_KEY": KEY}
    server = subprocess.Popen(
        [sys.executable, "-m", "core", "serve", "--db", str(embedded_demo.path), "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        query = first_items(embedded_demo, 1)[0]
        reply = httpx.get(f"{base}/items/{query}/similar?k=3", headers={"Authorization": f"Bearer {KEY}"})
        assert reply.status_code == 200 and len(reply.json()["results"]) == 3
        assert httpx.get(f"{base}/items/{query}/similar").status_code == 401
        assert httpx.get(f"{base}/docs").status_code == 200
        said = [server.stdout.readline().decode() for _ in range(4)]
        assert said[0].startswith(f"Lookalike API listening on {base}") and "Ctrl+C" in said[0]
        assert said[1] == f"catalog: {embedded_demo.path}, 300 items\n"
        assert said[2].startswith("API keys: required (1 key")
        assert said[3] == f"docs: {base}/docs\n"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_the_command_line_imports_no_web_library_unless_serving(embedded_demo_path):
    probe = "import sys; from core.cli import main; main(sys.argv[1:]); print(sorted({'fastapi', 'uvicorn', 'starlette'} & set(sys.modules)))"
    import sqlite3

    with sqlite3.connect(embedded_demo_path) as conn:
        item = conn.execute("SELECT min(item_id) FROM embeddings").fetchone()[0]
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "search",
            "--item",
            item,
            "--method",
            "color_hist",
            "--db",
            str(embedded_demo_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and done.stdout.strip().endswith("[]"), done.stdout + done.stderr


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("shop.example", False),
    ],
)
def test_only_loopback_serves_without_a_key(host, loopback):
    from core.api.serve import ServeError, check_bind

    check_bind(host, ("a-key",))
    if loopback:
        check_bind(host, ())
    else:
        with pytest.raises(ServeError, match="without an API key"):
            check_bind(host, ())


def test_a_keys_file_that_is_missing_or_empty_stops_the_server(tmp_path, monkeypatch):
    from core.api.keys import KeysError, load_keys

    monkeypatch.setenv("LOOKALIKE_API_KEYS_FILE", str(tmp_path / "absent.txt"))
    with pytest.raises(KeysError, match="cannot read the API keys file"):
        load_keys()
    (tmp_path / "empty.txt").write_text("# no key yet\n\n", encoding="utf-8")
    monkeypatch.setenv("LOOKALIKE_API_KEYS_FILE", str(tmp_path / "empty.txt"))
    with pytest.raises(KeysError, match="holds no key"):
        load_keys()


def test_keys_are_compared_as_utf_8_and_a_keys_file_is_read_as_text(embedded_demo, tmp_path, monkeypatch):
    """A non-ASCII key sent as UTF-8 opens the API (as Latin-1 bytes it does not); a keys file saved with a
    byte-order mark gives its first key without it."""
    import anyio

    from core.api.keys import load_keys

    app = create_app(embedded_demo.path, keys=("clé-secrète",))

    async def status_of(header: bytes) -> int:  # the raw bytes on the wire (TestClient would re-encode them)
        scope = {"type": "http", "method": "GET", "path": "/methods", "raw_path": b"/methods", "query_string": b""}
        scope |= {"headers": [(b"authorization", header)], "http_version": "1.1", "scheme": "http", "root_path": ""}
        started = []

        async def receive():
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message):
            if message["type"] == "http.response.start":
                started.append(message["status"])

        await app(scope | {"server": ("test", 80), "client": ("test", 1)}, receive, send)
        return started[0]

    for encoding, status in (("utf-8", 200), ("latin-1", 401)):
        assert anyio.run(status_of, b"Bearer " + "clé-secrète".encode(encoding)) == status, encoding
    keys = tmp_path / "keys.txt"
    keys.write_bytes("\ufeffclé-une\r\n# comment\r\nkey-two\r\n".encode())
    monkeypatch.setenv("LOOKALIKE_API_KEYS_FILE", str(keys))
    assert load_keys() == ("clé-une", "key-two")


def test_a_keys_file_that_is_a_fifo_or_device_is_refused_at_once(tmp_path, monkeypatch):
    from core.api.keys import KeysError, load_keys

    fifo = tmp_path / "keys.fifo"
    os.mkfifo(fifo)
    for path in (fifo, "/dev/zero", tmp_path):
        monkeypatch.setenv("LOOKALIKE_API_KEYS_FILE", str(path))
        outcome = []
        reader = threading.Thread(
            target=lambda got=outcome: got.append(pytest.raises(KeysError, load_keys)), daemon=True
        )
        reader.start()
        reader.join(10)
        if reader.is_alive():  # it hangs on the FIFO: let it go, then fail
            with open(fifo, "w"):
                pass
        assert not reader.is_alive() and "not a regular file" in str(outcome[0].value), path


def test_photos_are_decoded_once_off_the_event_loop_a_few_at_a_time(embedded_demo, monkeypatch):
    """Three slow uploads at once: an item query still answers at once, each photo is decoded once,
    and no more than LOOKALIKE_API_PHOTOS (here 1) are decoded together."""
    import json
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    import uvicorn

    from core.catalog import images

    real, lock, state = images.decode, threading.Lock(), {"calls": 0, "now": 0, "most": 0}

    def slow_decode(data, draft=None):
        with lock:
            state["calls"] += 1
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(1.0)
        try:
            return real(data, draft)
        finally:
            with lock:
                state["now"] -= 1

    monkeypatch.setattr(images, "decode", slow_decode)
    monkeypatch.setenv("LOOKALIKE_API_PHOTOS", "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(embedded_demo.path, keys=()), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    item = first_items(embedded_demo, 1)[0]
    photo = photo_of(embedded_demo, item)

    def upload() -> int:
        body = HEAD + photo + b"\r\n--b--\r\n"
        request = urllib.request.Request(
            f"{base}/search/image?k=3", body, {"content-type": "multipart/form-data; boundary=b"}
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.load(reply)["results"][0]["item_id"]

    def similar() -> float:
        started = time.perf_counter()
        with urllib.request.urlopen(f"{base}/items/{item}/similar?k=3", timeout=60) as reply:
            assert reply.status == 200
        return time.perf_counter() - started

    try:
        similar()  # warm
        with ThreadPoolExecutor(4) as pool:
            found = [pool.submit(upload) for _ in range(3)]
            time.sleep(0.3)
            waited = similar()
            assert [f.result() for f in found] == [item] * 3
    finally:
        server.should_exit = True
    assert waited < 0.8, f"an item query waited {waited:.2f} s behind photo decodes"
    assert state["calls"] == 3 and state["most"] == 1, state

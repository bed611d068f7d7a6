"""The deployment files in deploy/ (docs/deploy.md), tried on loopback as written: nginx and Caddy in front
with TLS and oauth2-proxy's sign-in check, the app and the API behind them, the systemd units.

oauth2-proxy itself is not packaged where these tests run (docs/deploy.md says so); its side of the
contract nginx and Caddy rely on (`/oauth2/auth` answers 202 with X-Auth-Request-Email for a signed-in
browser, 401 otherwise) is played by a small server here, and the app and API by servers that echo what
reached them, then by the real `lookalike app` and `lookalike serve`. Each test skips when the program it
tries (nginx, caddy, openssl, systemd-analyze) is not installed: CI installs none of them.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import http.client
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from helpers import CHROMEDRIVER, CHROMIUM, ROOT, chromium, settle, wait_for

DEPLOY = ROOT / "deploy"
LOOKALIKE = "/opt/lookalike/.venv/bin/lookalike"  # where the units run the installed command
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
SIGNED_IN = "ana@shop.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def units() -> list[Path]:
    return sorted((DEPLOY / "systemd").glob("*.service")) + sorted((DEPLOY / "systemd").glob("*.timer"))


def commands(unit: Path) -> list[list[str]]:
    """The command lines a unit runs (ExecStartPre, ExecStart)."""
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # systemd's keys are case-sensitive
    parser.read(unit)
    return [shlex.split(parser["Service"][key]) for key in ("ExecStartPre", "ExecStart") if key in parser["Service"]]


def test_the_units_run_commands_the_cli_accepts():
    from core.cli import build_parser

    ours = [c for u in units() if u.suffix == ".service" for c in commands(u) if c[0] == LOOKALIKE]
    assert sorted(c[1] for c in ours) == ["app", "backup", "migrate", "migrate", "serve", "sync"]
    for command in ours:
        args = build_parser("lookalike").parse_args(command[1:])  # a wrong option exits here
        assert args.func is not None
        if command[1] in ("app", "serve"):
            assert args.host == "127.0.0.1"  # only the proxy in front reaches them
    env = (DEPLOY / "lookalike.env").read_text(encoding="utf-8")
    settings_table = (ROOT / "core" / "settings.py").read_text(encoding="utf-8")
    names = [line.lstrip("# ").split("=")[0] for line in env.splitlines() if "LOOKALIKE_" in line.split("=")[0]]
    assert names and all(f"`{name}`" in settings_table for name in names), names  # each one a real setting


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_reads_the_units(tmp_path):
    for unit in units():  # the programs as installed on a server; here any executable stands in
        text = (
            unit.read_text(encoding="utf-8")
            .replace(LOOKALIKE, "/bin/true")
            .replace("/usr/local/bin/oauth2-proxy", "/bin/true")
        )
        (tmp_path / unit.name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", *map(str, sorted(tmp_path.iterdir()))], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


class Echo(BaseHTTPRequestHandler):
    """Stands in for the app or the API: answers with the path and the headers that reached it, and
    accepts a WebSocket handshake (101) as Streamlit's /_stcore/stream does."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.headers.get("Upgrade", "").lower() == "websocket":
            key = self.headers["Sec-WebSocket-Key"] + WEBSOCKET_GUID
            self.send_response(101)
            self.send_header("Upgrade", "websocket")
            self.send_header("Connection", "Upgrade")
            self.send_header("Sec-WebSocket-Accept", base64.b64encode(hashlib.sha1(key.encode()).digest()).decode())
            self.end_headers()
            self.close_connection = True
            return
        seen = {name.lower(): self.headers.get_all(name) for name in self.headers}
        answer(self, 200, json.dumps({"path": self.path, "headers": seen}).encode())

    def log_message(self, *args) -> None:
        pass


class SignIn(BaseHTTPRequestHandler):
    """oauth2-proxy's side of auth_request / forward_auth: /oauth2/auth is 202 with the person's email for
    a browser holding its session cookie (here: the email itself), 401 otherwise; /oauth2/sign_in a page."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        cookies = dict(part.strip().split("=", 1) for part in self.headers.get("Cookie", "").split(";") if "=" in part)
        email = cookies.get("_oauth2_proxy")
        if self.path.startswith("/oauth2/auth"):
            extra = {"X-Auth-Request-Email": email, "X-Auth-Request-User": email.split("@")[0]} if email else {}
            answer(self, 202 if email else 401, b"", extra)
        elif self.path.startswith("/oauth2/sign_in"):
            answer(self, 200, b"oauth2-proxy sign-in page")
        else:
            answer(self, 404, b"")

    def log_message(self, *args) -> None:
        pass


def answer(handler: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None) -> None:
    handler.send_response(status)
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def stand_ins() -> Iterator[dict[str, int]]:
    """The ports of the stand-in oauth2-proxy, app and API, each serving in a thread."""
    servers = {"oauth2": ThreadingHTTPServer(("127.0.0.1", 0), SignIn)}
    servers |= {name: ThreadingHTTPServer(("127.0.0.1", 0), Echo) for name in ("app", "api")}
    for server in servers.values():
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield {name: server.server_address[1] for name, server in servers.items()}
    for server in servers.values():
        server.shutdown()
        server.server_close()


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (what Let's Encrypt gives a real name)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def swapped(text: str, swaps: dict[str, str]) -> str:
    for old, new in swaps.items():
        assert old in text, f"{old!r} is no longer in the shipped config: update this test with it"
        text = text.replace(old, new)
    return text


def started(
    command: list[str], folder: Path, port: int, env: dict | None = None, cwd: Path | None = None
) -> subprocess.Popen:
    """`command` started (in `cwd`, else `folder`) with its output in `folder`/<name>.log, once `port`
    accepts connections."""
    log = open(folder / f"{Path(command[0]).name}-{port}.log", "w")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd or folder)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{command[0]} stopped: " + Path(log.name).read_text()[-2000:])
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{command[0]} did not listen on {port}: " + Path(log.name).read_text()[-2000:])


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def nginx(folder: Path, upstreams: dict[str, int], cert: tuple[Path, Path]) -> Iterator[tuple[int, int]]:
    """deploy/nginx/lookalike.conf as shipped, on loopback ports with `cert`, in front of `upstreams`:
    yields (https port, http port)."""
    https, plain = free_port(), free_port()
    site = swapped(
        (DEPLOY / "nginx" / "lookalike.conf").read_text(encoding="utf-8"),
        {
            "server 127.0.0.1:8501;": f"server 127.0.0.1:{upstreams['app']};",
            "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstreams['api']};",
            "server 127.0.0.1:4180;": f"server 127.0.0.1:{upstreams['oauth2']};",
            "listen 80;": f"listen 127.0.0.1:{plain};",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{https} ssl http2;",
            "/etc/letsencrypt/live/lookalike.example.com/fullchain.pem": str(cert[0]),
            "/etc/letsencrypt/live/lookalike.example.com/privkey.pem": str(cert[1]),
        },
    )
    site = "\n".join(line for line in site.splitlines() if "listen [::]" not in line)  # no IPv6 needed here
    (folder / "lookalike.conf").write_text(site, encoding="utf-8")
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (folder / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")  # the test's files are the test user's alone
        + f"worker_processes 1;\npid {folder / 'nginx.pid'};\nerror_log {folder / 'error.log'} warn;\n"
        + "events { worker_connections 256; }\n"
        + f"http {{\n    access_log off;\n{temp}\n    include {folder / 'lookalike.conf'};\n}}\n",
        encoding="utf-8",
    )
    command = ["nginx", "-p", str(folder), "-c", str(folder / "nginx.conf")]
    checked = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr  # nginx -t: the shipped config as nginx reads it
    proc = started([*command, "-g", "daemon off;"], folder, https)
    try:
        yield https, plain
    finally:
        stop(proc)


def request(port: int, path: str, cafile: Path, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One HTTPS GET checked against `cafile`: status, headers (lower-case names), body."""
    context = ssl.create_default_context(cafile=str(cafile))
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=30)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def websocket_handshake(port: int, path: str, cafile: Path, cookie: str) -> str:
    """The status line answering a WebSocket upgrade of `path` over TLS."""
    context = ssl.create_default_context(cafile=str(cafile))
    key = base64.b64encode(os.urandom(16)).decode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(
                (
                    f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: https://127.0.0.1:{port}\r\n"
                    f"Cookie: {cookie}\r\n\r\n"
                ).encode()
            )
            return tls.recv(4096).decode("latin-1").split("\r\n", 1)[0]


def check_front(port: int, cafile: Path) -> None:
    """What a front (nginx or Caddy) must do for the app and the API, seen through the echoing stand-ins."""
    cookie = {"Cookie": f"_oauth2_proxy={SIGNED_IN}"}
    status, headers, _ = request(port, "/Label?x=1", cafile)
    to = urlsplit(headers["location"])
    assert status == 302 and to.path == "/oauth2/sign_in"  # signed out: to the sign-in, and back afterwards
    assert parse_qs(to.query) == {"rd": [f"https://127.0.0.1:{port}/Label?x=1"]}
    assert request(port, "/oauth2/sign_in", cafile)[2] == b"oauth2-proxy sign-in page"
    forged = {**cookie, "X-Forwarded-Email": "boss@shop.com", "X-Forwarded-User": "boss"}
    status, _, body = request(port, "/Label", cafile, forged)
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/Label"
    assert seen["headers"]["x-forwarded-email"] == [SIGNED_IN]  # the signed-in person, never the forged one
    assert seen["headers"]["x-forwarded-user"] == ["ana"]
    assert seen["headers"]["x-forwarded-proto"] == ["https"]
    status, _, body = request(port, "/api/items/15970/similar?k=3", cafile, {"X-Forwarded-Email": "boss@shop.com"})
    seen = json.loads(body)
    assert status == 200 and seen["path"] == "/items/15970/similar?k=3"  # the API with its own keys
    assert not any(seen["headers"].get(h, [""])[0] for h in ("x-forwarded-email", "x-forwarded-user"))
    assert websocket_handshake(port, "/_stcore/stream", cafile, cookie["Cookie"]).startswith("HTTP/1.1 101")
    assert websocket_handshake(port, "/_stcore/stream", cafile, "none=1").split()[1] == "302"  # signed out


needs_nginx = pytest.mark.skipif(not shutil.which("nginx"), reason="nginx not installed (apt-get install nginx-light)")


@needs_nginx
def test_nginx_signs_people_in_names_them_to_the_app_and_passes_the_api_and_websockets(
    stand_ins, certificate, tmp_path
):
    cert, _ = certificate
    with nginx(tmp_path, stand_ins, certificate) as (https, plain):
        check_front(https, cert)
        conn = http.client.HTTPConnection("127.0.0.1", plain, timeout=30)
        conn.request("GET", "/Search")
        response = conn.getresponse()
        assert response.status == 301 and response.getheader("Location") == "https://127.0.0.1/Search"  # HTTPS only


@pytest.mark.skipif(not shutil.which("caddy"), reason="caddy not installed (apt-get install caddy)")
def test_caddy_signs_people_in_names_them_to_the_app_and_passes_the_api_and_websockets(stand_ins, tmp_path):
    https, plain = free_port(), free_port()
    site = swapped(
        (DEPLOY / "caddy" / "Caddyfile").read_text(encoding="utf-8"),
        {
            "lookalike.example.com {": (
                f"{{\n\tadmin off\n\tskip_install_trust\n\tlocal_certs\n\thttp_port {plain}\n\thttps_port {https}\n}}\n"
                f"https://127.0.0.1:{https} {{"
            ),
            "127.0.0.1:8501": f"127.0.0.1:{stand_ins['app']}",
            "127.0.0.1:8000": f"127.0.0.1:{stand_ins['api']}",
            "127.0.0.1:4180": f"127.0.0.1:{stand_ins['oauth2']}",
        },
    )
    (tmp_path / "Caddyfile").write_text(site, encoding="utf-8")
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    proc = started(
        ["caddy", "run", "--config", str(tmp_path / "Caddyfile"), "--adapter", "caddyfile"], tmp_path, https, env
    )
    try:
        root = tmp_path / "data" / "caddy" / "pki" / "authorities" / "local" / "root.crt"  # its own CA (tls internal)
        deadline = time.time() + 30
        while not root.exists() and time.time() < deadline:
            time.sleep(0.2)
        check_front(https, root)
    finally:
        stop(proc)


@needs_nginx
def test_the_real_app_and_api_answer_through_nginx(imported_demo_path, certificate, tmp_path):
    """`lookalike app` in proxy mode and `lookalike serve` with a key, as the units start them, behind the
    shipped nginx config; in Chromium (when installed) the app names the signed-in person, not the one a
    forged header names."""
    from core.catalog.db import open_catalog
    from core.engines.embed import embed_catalog

    catalog = tmp_path / "shop.db"
    shutil.copy(imported_demo_path, catalog)
    db = open_catalog(catalog)
    embed_catalog(db, "color_hist", progress=False)
    item = db.execute("SELECT id FROM items ORDER BY id LIMIT 1").fetchone()[0]
    db.conn.close()
    ports = {"app": free_port(), "api": free_port()}
    signin = ThreadingHTTPServer(("127.0.0.1", 0), SignIn)
    threading.Thread(target=signin.serve_forever, daemon=True).start()
    (tmp_path / "roles.csv").write_text("*@shop.com,labeller\nboss@shop.com,admin\n", encoding="utf-8")
    env = {
        **os.environ,
        "LOOKALIKE_DB": str(catalog),
        "LOOKALIKE_API_KEY": "k3y-for-the-shop",
        "LOOKALIKE_AUTH": "proxy",
        "LOOKALIKE_ROLES_FILE": str(tmp_path / "roles.csv"),
    }
    cli = [sys.executable, "-m", "core", "--db", str(catalog)]
    app = started([*cli, "app", "--host", "127.0.0.1", "--port", str(ports["app"])], tmp_path, ports["app"], env, ROOT)
    api = started(
        [*cli, "serve", "--host", "127.0.0.1", "--port", str(ports["api"])], tmp_path, ports["api"], env, ROOT
    )
    cert, _ = certificate
    try:
        with nginx(tmp_path, {**ports, "oauth2": signin.server_address[1]}, certificate) as (https, _):
            cookie = {"Cookie": f"_oauth2_proxy={SIGNED_IN}"}
            assert request(https, "/_stcore/health", cert, cookie)[:3:2] == (200, b"ok")  # Streamlit, signed in
            assert request(https, "/_stcore/health", cert)[0] == 302
            assert websocket_handshake(https, "/_stcore/stream", cert, cookie["Cookie"]).startswith("HTTP/1.1 101")
            assert json.loads(request(https, "/api/healthz", cert)[2])["status"] == "ok"
            assert request(https, f"/api/items/{item}/similar?method=color_hist&k=3", cert)[0] == 401  # a key needed
            status, _, body = request(
                https,
                f"/api/items/{item}/similar?method=color_hist&k=3",
                cert,
                {"Authorization": "Bearer k3y-for-the-shop"},
            )
            assert status == 200 and len(json.loads(body)["results"]) == 3
            if CHROMIUM and CHROMEDRIVER:
                signed_in_in_chromium(https, tmp_path)
    finally:
        stop(app)
        stop(api)
        signin.shutdown()
        signin.server_close()


def signed_in_in_chromium(port: int, folder: Path) -> None:
    """A browser through nginx: signed out it lands on the sign-in page; signed in as ana it is ana on
    every page, though it sends boss's email itself."""
    driver = chromium(folder / "chrome", headers={"X-Forwarded-Email": "boss@shop.com"})
    try:
        driver.execute_cdp_cmd("Security.setIgnoreCertificateErrors", {"ignore": True})  # the test's own certificate
        driver.get(f"https://127.0.0.1:{port}/Label")
        wait_for(driver, "//*[contains(., 'oauth2-proxy sign-in page')]")
        assert driver.current_url == f"https://127.0.0.1:{port}/oauth2/sign_in?rd=https://127.0.0.1:{port}/Label"
        driver.add_cookie({"name": "_oauth2_proxy", "value": SIGNED_IN, "path": "/", "secure": True})  # signed in
        driver.get(f"https://127.0.0.1:{port}/Label")
        wait_for(driver, f"//*[contains(., 'Judging as')][contains(., '{SIGNED_IN}')]")
        settle(driver)
        assert "boss@shop.com" not in driver.find_element("tag name", "body").text
    finally:
        driver.quit()

"""Sign-in in the app (streamlit_app/signin.py, Home.py): proxy mode driven in real Chromium, people side by
side, each with the header a signing-in proxy would add; the command that refuses to listen beyond this
computer without sign-in."""

from __future__ import annotations

import os
import shutil
import socket
import time

import pytest

from helpers import chromium, needs_chromium, one_line, run_cli, send_headers, settle, streamlit_app, wait_for

ROLES = """# the shop's team
*@shop.com,labeller
vera@shop.com,viewer
cy@shop.com,curator
boss@shop.com,admin
"""


def outward_address() -> str | None:
    """This machine's address on its network (not loopback), or None without one: a UDP socket's
    source address toward a documentation address (nothing is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.fixture(scope="module")
def proxied_app(imported_demo_path, tmp_path_factory):
    """The app in proxy mode on every address, believing the header from 127.0.0.1 only, on a copy of
    the demo catalog embedded with color_hist; yields (its loopback URL, its port, the catalog, the roles file)."""
    from core.catalog.db import open_catalog
    from core.engines.embed import embed_catalog

    folder = tmp_path_factory.mktemp("signin")
    shutil.copy(imported_demo_path, folder / "demo.db")
    db = open_catalog(folder / "demo.db")
    embed_catalog(db, "color_hist", progress=False)
    (folder / "roles.csv").write_text(ROLES)
    env = {
        "LOOKALIKE_AUTH": "proxy",
        "LOOKALIKE_ROLES_FILE": str(folder / "roles.csv"),
        "LOOKALIKE_TRUSTED_PROXIES": "127.0.0.1",
        "LOOKALIKE_MODELS": str(folder / "models"),
    }
    with streamlit_app(db.path, folder, host="0.0.0.0", env=env) as url:
        yield url, int(url.rsplit(":", 1)[1]), db, folder / "roles.csv"
    db.conn.close()


def pages(driver) -> list[str]:
    """The page links the sidebar shows."""
    return [a.text for a in driver.find_elements("xpath", "//*[@data-testid='stSidebarNav']//a") if a.text]


def shown_text(driver) -> str:
    """The words the page shows (an email shows as a link: split in the page's source)."""
    return driver.find_element("tag name", "body").text


@needs_chromium
@pytest.mark.timeout(600)
def test_proxy_viewer_and_labeller_side_by_side_and_a_forged_header_ignored(proxied_app, tmp_path):
    url, port, db, roles = proxied_app
    viewer = chromium(tmp_path / "viewer", headers={"X-Forwarded-Email": "vera@shop.com"})
    labeller = chromium(tmp_path / "labeller", headers={"X-Forwarded-Email": "Nina@Shop.com"})
    try:
        viewer.get(url)
        wait_for(viewer, "//*[contains(., 'Signed in as vera@shop.com (viewer)')]")
        settle(viewer)
        shown = pages(viewer)
        assert {"Home", "Search", "Precision"} <= set(shown) and not {"Label", "Methods", "Export"} & set(shown)
        viewer.get(f"{url}/Label")  # no such page for a viewer, whatever the URL says
        settle(viewer)
        assert "Label matches" not in viewer.page_source and not viewer.find_elements("xpath", "//button[.='✓']")

        labeller.get(f"{url}/Label")
        wait_for(labeller, "//h1[contains(., 'Label matches')]")
        wait_for(labeller, "//*[contains(., 'Judging as')][contains(., 'nina@shop.com')]")
        assert not labeller.find_elements("xpath", "//input[@aria-label='Your name']")  # no typed name
        assert {"Label"} <= set(pages(labeller)) and "Methods" not in pages(labeller)
        wait_for(labeller, "(//button[normalize-space(.)='✓'])[1][not(@disabled)]").click()
        settle(labeller)
        deadline = time.time() + 30
        while not db.execute("SELECT count(*) FROM labels").fetchone()[0] and time.time() < deadline:
            time.sleep(0.5)
        assert db.execute("SELECT labeler, grade FROM labels").fetchall() == [("nina@shop.com", "good")]
        wait_for(labeller, "//*[@data-testid='stCaptionContainer'][contains(., 'good · nina@shop.com')]")  # who judged
        assert db.execute("SELECT person FROM activity WHERE action = 'label'").fetchall() == [("nina@shop.com",)]

        roles.write_text(ROLES + "nina@shop.com,viewer\n")  # her role taken away while her Label page is open
        try:
            wait_for(labeller, "//button[contains(., 'Good to #')][not(@disabled)]").click()
            wait_for(labeller, "//*[contains(., 'Signed in as nina@shop.com (viewer)')]")
            settle(labeller)
            assert "Label" not in pages(labeller)
            assert db.execute("SELECT count(*) FROM labels").fetchone()[0] == 1  # the click counted for nothing
        finally:
            roles.write_text(ROLES)

        viewer.get(url)  # the viewer's next run sees the labeller's verdict in the catalog's count
        wait_for(viewer, "//*[contains(., 'Signed in as vera@shop.com')]")

        stranger = {"X-Forwarded-Email": "someone@elsewhere.com"}
        send_headers(viewer, stranger)
        viewer.get(url)
        wait_for(viewer, "//h1[contains(., 'No access')]")
        settle(viewer)
        assert "someone@elsewhere.com" in shown_text(viewer) and "ask boss@shop.com" in shown_text(viewer)
        assert not pages(viewer)

        address = outward_address()
        if address is None:
            pytest.skip("no network address besides loopback to send a forged header from")
        send_headers(viewer, {"X-Forwarded-Email": "boss@shop.com"})  # an admin's email, from an untrusted peer
        viewer.get(f"http://{address}:{port}/Methods")
        wait_for(viewer, "//h1[contains(., 'No access')]")
        settle(viewer)
        assert "Nobody is signed in" in shown_text(viewer) and not pages(viewer)
        assert db.execute("SELECT count(*) FROM activity WHERE person = 'boss@shop.com'").fetchone()[0] == 0
    finally:
        viewer.quit()
        labeller.quit()


def test_app_beyond_this_computer_needs_sign_in(tmp_path):
    db, home = str(tmp_path / "c.db"), {"HOME": str(tmp_path)}  # no ~/.streamlit/secrets.toml
    refused = run_cli("app", "--host", "0.0.0.0", "--db", db, env={"LOOKALIKE_AUTH": ""})
    assert "without sign-in" in one_line(refused)
    bad = run_cli("app", "--host", "0.0.0.0", "--db", db, env={"LOOKALIKE_AUTH": "ldap"})
    assert "LOOKALIKE_AUTH must be oidc or proxy" in one_line(bad)
    no_roles = run_cli(
        "app", "--host", "0.0.0.0", "--db", db, env={"LOOKALIKE_AUTH": "proxy", "LOOKALIKE_ROLES_FILE": ""}
    )
    assert "LOOKALIKE_ROLES_FILE names no roles file" in one_line(no_roles)
    (tmp_path / "roles.csv").write_text("ana@shop.com,admin\nbo@shop.com,boss\n")
    roles = {"LOOKALIKE_ROLES_FILE": str(tmp_path / "roles.csv")}
    wrong_role = run_cli("app", "--host", "0.0.0.0", "--db", db, env={"LOOKALIKE_AUTH": "proxy", **roles})
    assert "roles.csv line 2: unknown role 'boss'" in one_line(wrong_role)
    (tmp_path / "roles.csv").write_text("ana@shop.com,admin\n")
    no_secrets = run_cli("app", "--host", "0.0.0.0", "--db", db, env={"LOOKALIKE_AUTH": "oidc", **roles, **home})
    assert "needs an [auth] section" in one_line(no_secrets)


def test_app_with_sign_in_listens_beyond_this_computer(demo_catalog, tmp_path):
    import subprocess
    import sys
    import urllib.request

    from helpers import ROOT, free_port

    (tmp_path / "roles.csv").write_text("ana@shop.com,admin\n")
    port = free_port()
    env = {**os.environ, "LOOKALIKE_AUTH": "proxy", "LOOKALIKE_ROLES_FILE": str(tmp_path / "roles.csv")}
    command = [sys.executable, "-m", "core", "--db", str(demo_catalog.path), "app", "--host", "0.0.0.0"]
    app = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as answer:
                    assert answer.status == 200
                    break
            except OSError:
                assert app.poll() is None, "the app stopped"
                time.sleep(0.5)
        else:
            pytest.fail("the app did not answer")
    finally:
        app.terminate()
        app.wait(30)


@needs_chromium
@pytest.mark.timeout(300)
def test_oidc_sign_in_through_a_real_provider_in_chromium(imported_demo_path, tmp_path):
    """Streamlit's st.login against oidc-provider-mock (a real OpenID Connect provider on loopback):
    Chromium signs in on the provider's own form and comes back as that email, with its role."""
    from oidc_provider_mock import run_server_in_thread

    from helpers import free_port

    shutil.copy(imported_demo_path, tmp_path / "demo.db")
    (tmp_path / "roles.csv").write_text(ROLES)
    port = free_port()
    with run_server_in_thread(port=0) as provider:
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://localhost:{port}/oauth2callback"\n'
            'cookie_secret = "a long random string only this app knows"\n'
            'client_id = "lookalike"\n'
            'client_secret = "lookalike-secret"\n'
            f'server_metadata_url = "http://localhost:{provider.server_port}/.well-known/openid-configuration"\n'
        )
        env = {"LOOKALIKE_AUTH": "oidc", "LOOKALIKE_ROLES_FILE": str(tmp_path / "roles.csv")}
        with streamlit_app(tmp_path / "demo.db", tmp_path, env=env, port=port, secrets=secrets) as url:
            driver = chromium(tmp_path / "chrome")
            try:
                app = url.replace("127.0.0.1", "localhost")  # the host the provider sends the browser back to
                driver.get(app)
                wait_for(driver, "//button[normalize-space(.)='Sign in']").click()
                wait_for(driver, "//input[@name='sub']").send_keys("cy@shop.com")  # the provider's form
                driver.find_element("xpath", "//button[normalize-space(.)='Authorize']").click()
                wait_for(driver, "//*[contains(., 'Signed in as cy@shop.com (curator)')]")
                settle(driver)
                assert {"Export", "Search"} <= set(pages(driver)) and "Methods" not in pages(driver)
                wait_for(driver, "//button[normalize-space(.)='Sign out']").click()
                wait_for(driver, "//button[normalize-space(.)='End session']").click()  # the provider's side
                driver.get(app)
                wait_for(driver, "//button[normalize-space(.)='Sign in']")  # signed out of the app too
                assert "Signed in as" not in shown_text(driver)
            finally:
                driver.quit()

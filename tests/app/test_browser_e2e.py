"""End to end in a real browser: `streamlit run` on 127.0.0.1 driven by headless Debian Chromium.

search -> label -> precision -> export -> methods, then tuning and labelling an uploaded photo, in a
window of 1440 x 900 px (a laptop screen), with a screenshot of every page in test-artifacts/ (the
docs/screenshots/ are copies of these: `cp test-artifacts/*.png docs/screenshots/` after a run). A
search's first results show on the first screen; the Methods feedback and the Precision and Methods
tables lie inside the window: nothing cut off on the right, nothing scrolling inside a table.
Skips when chromium or chromedriver is absent (`.ci/run` installs them).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from helpers import ROOT, SHARED, chromium, needs_chromium, settle, streamlit_app, wait_for

pytestmark = [
    needs_chromium,
    pytest.mark.timeout(600),  # a real browser and server on a shared machine; about 2 minutes when quiet
]
ARTIFACTS = ROOT / "test-artifacts"
WIDTH, HEIGHT = 1440, 900


@pytest.fixture(scope="module")
def server(embedded_demo_path, models_cache, tmp_path_factory):
    """One Streamlit server for this file's tests, on a copy of the embedded demo catalog (indexed)."""
    from core.catalog.db import open_catalog
    from core.search.space import open_space

    from helpers import link_tree

    folder = tmp_path_factory.mktemp("e2e")
    shutil.copy(embedded_demo_path, folder / "demo.db")
    link_tree(models_cache, folder / "models")  # the default, converted once per session
    db = open_catalog(folder / "demo.db")
    open_space(db, "efficientnet_lite0").build_index(progress=False)
    with streamlit_app(db.path, folder, env={"LOOKALIKE_MODELS": str(folder / "models")}) as url:
        yield url, db
    db.conn.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One Chromium for this file's tests (each test opens its pages anew: a new Streamlit session)."""
    driver = chromium(tmp_path_factory.mktemp("chrome"), WIDTH, HEIGHT)
    yield driver
    driver.quit()


def shot(driver, name: str, top: str | None = None) -> None:
    """A screenshot of the window (1440 px wide), scrolled so that the element at xpath `top` is at
    its top when given. (Resizing the window to show more makes Streamlit lay the page out again.)"""
    ARTIFACTS.mkdir(exist_ok=True)
    if top:
        driver.execute_script("arguments[0].scrollIntoView({block: 'start'})", wait_for(driver, top))
        time.sleep(0.2)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def in_view(driver, element) -> dict:
    """Where `element` lies in the window, and whether it scrolls inside itself (or a grid's canvas does)."""
    return driver.execute_script(
        """const e = arguments[0], r = e.getBoundingClientRect();
        const inner = e.querySelector('.dvn-scroller') || e;
        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom,
                width: window.innerWidth, height: window.innerHeight,
                scrolls_x: inner.scrollWidth > inner.clientWidth + 1,
                scrolls_y: inner.scrollHeight > inner.clientHeight + 1};""",
        element,
    )


def assert_fits(driver, element, whole_height: bool = True) -> None:
    """`element` is inside the window's width (and height), and shows all it holds without scrolling."""
    box = in_view(driver, element)
    assert 0 <= box["left"] and box["right"] <= box["width"], box
    assert not box["scrolls_x"] and not box["scrolls_y"], box
    if whole_height:
        assert 0 <= box["top"] and box["bottom"] <= box["height"], box


def query_photo(tmp_path: Path) -> Path:
    """A shopper photo to upload: the shared AVIF one when present, else a demo photo as WebP."""
    avif = SHARED / "query-photos" / "photo-18.avif"
    if avif.is_file():
        return avif
    from PIL import Image

    out = tmp_path / "query.webp"
    Image.open(next((ROOT / "demo" / "images").glob("*.jpg"))).save(out, "WEBP")
    return out


def test_search_label_precision_export_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains

    url, db = server
    browser.get(f"{url}/Search")
    wait_for(browser, "//h3[contains(., 'efficientnet_lite0')]")
    wait_for(browser, "(//*[contains(text(), 'score ')])[10]")  # all ten results, each with its score
    settle(browser)
    first = wait_for(browser, "(//*[contains(text(), 'score ')])[1]")
    box = in_view(browser, first)
    assert (box["width"], box["height"]) == (WIDTH, HEIGHT) and box["bottom"] <= HEIGHT  # on the first screen
    assert "Efficientnet_lite0" not in browser.page_source  # method names as they are spelt
    shot(browser, "2_search")

    wait_for(browser, "//label[contains(., 'Photo')]").click()  # upload through the browser
    wait_for(browser, "//input[@type='file']").send_keys(str(query_photo(tmp_path)))
    wait_for(browser, "(//*[contains(text(), 'score ')])[10]", timeout=180)  # once the photo is in
    settle(browser)
    shot(browser, "2_search_photo")

    browser.get(f"{url}/Catalog")
    wait_for(browser, "//*[contains(., '300 items')]")
    settle(browser)
    shot(browser, "1_catalog")
    wait_for(browser, "//div[@data-testid='stSelectbox'][.//label[contains(., 'Open an item')]]//input").send_keys(
        "10129\n"
    )
    details = wait_for(browser, "//*[@data-testid='stTable']")
    settle(browser)
    assert "Brand" not in details.text and "Formal Shoes" in details.text and "NULL" not in browser.page_source
    shot(browser, "1_catalog_item", top="//div[@data-testid='stSelectbox'][.//label[contains(., 'Open an item')]]")

    browser.get(f"{url}/Label")
    type_name(browser, "e2e tester")
    wait_for(browser, "(//button[normalize-space(.)='✓'])[1][not(@disabled)]").click()  # result 1: a click
    settle(browser)
    wait_for(browser, "//button[contains(., 'Wrong to #2')][not(@disabled)]")
    ActionChains(browser).send_keys("n").perform()  # result 2: key N
    settle(browser)
    deadline = time.time() + 30
    while (
        db.execute("SELECT count(*) FROM labels WHERE query_kind = 'item'").fetchone()[0] < 2 and time.time() < deadline
    ):
        time.sleep(0.5)
    assert db.execute("SELECT labeler, relevant FROM labels WHERE query_kind = 'item' ORDER BY id").fetchall() == [
        ("e2e tester", 1),
        ("e2e tester", 0),
    ]
    shot(browser, "3_label")
    wait_for(browser, "//*[contains(., '2 of 10 judged')]")

    browser.get(f"{url}/Precision")
    table = wait_for(browser, "//*[@data-testid='stDataFrame']")
    settle(browser)
    assert_fits(browser, table)  # every column on screen, none behind a scroll bar
    shot(browser, "4_precision")

    browser.get(f"{url}/Export")
    wait_for(browser, "//button[contains(., 'Export CSV')]").click()
    wait_for(browser, "//button[contains(., 'Download similar-items CSV')]")
    settle(browser)
    shot(browser, "5_export")
    exports = list((db.exports_dir).glob("*.csv"))
    assert len(exports) == 1 and exports[0].read_text(encoding="utf-8-sig").count("\n") == 1 + 300 * 10

    browser.get(f"{url}/Methods")
    wait_for(browser, "//*[@data-testid='stExpander']//summary[contains(., 'For your administrator')]")
    settle(browser)
    shot(browser, "6_methods")  # what a merchandiser does first; the administrator's part folded
    assert not browser.find_element("xpath", "//*[@data-testid='stTable']").is_displayed()
    wait_for(browser, "//*[@data-testid='stExpander']//summary[contains(., 'For your administrator')]").click()
    table = wait_for(browser, "//*[@data-testid='stTable']")
    settle(browser)
    assert_fits(browser, table, whole_height=False)  # all rows and columns on the page, none scrolled away
    assert all(name in table.text for name in ("efficientnet_lite0", "hybrid", "minilm", "blip2", "autoencoder"))
    choose_one(browser, "Method", "hybrid")
    wait_for(browser, "//button[normalize-space(.)='Embed + index']").click()
    done = wait_for(browser, "//*[@data-testid='stAlert'][contains(., 'embed hybrid: done')]", timeout=120)
    settle(browser)
    assert_fits(browser, done)  # the feedback shows where the button was clicked
    shot(browser, "6_methods_embedded")

    browser.get(url)
    wait_for(browser, "//h1[contains(., 'Lookalike')]")
    settle(browser)
    shot(browser, "1_home")


def type_name(driver, name: str) -> None:
    """Type `name` as the labeller's (replacing a remembered one: the server is shared) and press Enter."""
    from selenium.webdriver.common.keys import Keys

    box = wait_for(driver, "//input[@aria-label='Your name']")
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(name + "\n")
    settle(driver)


def choose_one(driver, label: str, option: str) -> None:
    """Pick `option` in the selectbox labelled `label` by typing it."""
    box = wait_for(driver, f"//div[@data-testid='stSelectbox'][.//label[normalize-space(.)='{label}']]//input")
    box.send_keys(option + "\n")
    settle(driver)


def chips(driver, label: str) -> list[str]:
    """The options chosen in the multiselect labelled `label`."""
    widget = f"//div[@data-testid='stMultiSelect'][.//label[contains(., '{label}')]]"
    return [c.get_attribute("aria-label") for c in driver.find_elements("xpath", f"{widget}//span[@data-tag]")]


def choose(driver, label: str, options: list[str], before: tuple[str, ...] = ()) -> None:
    """Pick options of the multiselect labelled `label` (holding `before`): type each, click it in the
    list, close the list."""
    from selenium.webdriver.common.keys import Keys

    widget = f"//div[@data-testid='stMultiSelect'][.//label[contains(., '{label}')]]"
    for option in options:
        box = wait_for(driver, f"{widget}//input")
        box.click()
        box.send_keys(option)
        wait_for(driver, f"//*[@role='option'][normalize-space(.)='{option}']").click()
        box.send_keys(Keys.ESCAPE)
        settle(driver)
    assert chips(driver, label) == [*before, *options]


def test_tune_on_methods_page_and_label_an_uploaded_photo_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.keys import Keys

    url, db = server
    browser.get(f"{url}/Methods")
    wait_for(browser, "//h3[contains(., 'Tune a method')]")
    settle(browser)
    choose(browser, "Bases", ["efficientnet_lite0", "color_hist"])
    targets = wait_for(browser, "//div[@data-testid='stMultiSelect'][.//label[contains(., 'Targets')]]//input")
    targets.click()
    targets.send_keys("category\n")  # typed and Enter: just category, not subCategory or masterCategory
    settle(browser)
    assert chips(browser, "Targets") == ["category"]
    targets.send_keys(Keys.ESCAPE)
    choose(browser, "Targets", ["colour"], before=("category",))
    wait_for(browser, "//input[@aria-label='Name of the tuned method']").send_keys("e2e_tuned\n")
    settle(browser)
    wait_for(browser, "//button[normalize-space(.)='Tune'][not(@disabled)]").click()
    wait_for(browser, "//*[contains(., 'Saved e2e_tuned version 1')]", timeout=360)  # 60 epochs on a busy CPU
    settle(browser)
    assert db.execute("SELECT name, version, bases, targets FROM tuned_methods").fetchall() == [
        ("e2e_tuned", 1, '["efficientnet_lite0", "color_hist"]', '["category", "colour"]')
    ]
    browser.execute_script("arguments[0].scrollIntoView()", wait_for(browser, "//h3[contains(., 'Tune a method')]"))
    shot(browser, "7_tune")

    photo = query_photo(tmp_path)
    browser.get(f"{url}/Label")
    wait_for(browser, "//label[contains(., 'Uploaded photo')]").click()
    type_name(browser, "e2e tester")
    wait_for(browser, "//input[@type='file']").send_keys(str(photo))
    wait_for(browser, "(//button[normalize-space(.)='✓'])[10][not(@disabled)]")
    settle(browser)
    wait_for(browser, "(//button[normalize-space(.)='✓'])[1][not(@disabled)]").click()
    wait_for(browser, "//*[contains(., '1 of 10 judged')]")
    from core.catalog.images import sha256_bytes

    uploads = "SELECT query_kind, query_key, rank, relevant, labeler FROM labels WHERE query_kind = 'upload'"
    assert db.execute(uploads).fetchall() == [("upload", sha256_bytes(photo.read_bytes()), 1, 1, "e2e tester")]
    shot(browser, "3_label_upload")

    browser.get(f"{url}/Label")  # a new page load: the name is remembered
    name = wait_for(browser, "//input[@aria-label='Your name']")
    settle(browser)
    assert name.get_attribute("value") == "e2e tester"


TEAM = 5  # people labelling at once, each in a browser of their own, signed in by the proxy's header


def good_buttons(driver) -> list:
    """The Label page's ✓ (good) button of each result shown, in rank order."""
    return [b for b in driver.find_elements("xpath", "//button[normalize-space(.)='✓']") if b.is_displayed()]


def test_five_signed_in_people_label_side_by_side_and_each_sees_the_others_verdicts(imported_demo_path, tmp_path):
    """Five labellers on one app (proxy mode: each browser carries its X-Forwarded-Email), all on the same
    query, judging at the same moment, one of them with a double click: every verdict is stored once
    under its person, and each session's next run shows everyone's."""
    from selenium.webdriver.common.action_chains import ActionChains

    from core.catalog.db import open_catalog
    from core.engines.embed import embed_catalog

    shutil.copy(imported_demo_path, tmp_path / "demo.db")
    db = open_catalog(tmp_path / "demo.db")
    embed_catalog(db, "color_hist", progress=False)
    (tmp_path / "roles.csv").write_text("*@shop.com,labeller\n", encoding="utf-8")
    env = {"LOOKALIKE_AUTH": "proxy", "LOOKALIKE_ROLES_FILE": str(tmp_path / "roles.csv")}
    people = [f"labeller{n}@shop.com" for n in range(TEAM)]
    browsers = []
    try:
        with streamlit_app(db.path, tmp_path, env=env) as url:
            for person in people:
                browsers.append(chromium(tmp_path / person, 1280, 800, headers={"X-Forwarded-Email": person}))
                browsers[-1].get(f"{url}/Label")
            queries = []
            for driver, person in zip(browsers, people):
                wait_for(driver, f"//*[contains(., 'Judging as')][contains(., '{person}')]")
                wait_for(driver, "(//button[normalize-space(.)='✓'])[10][not(@disabled)]")
                settle(driver)
                queries.append(driver.find_element("xpath", "//*[@data-testid='stImage']//img").get_attribute("src"))
            assert len(set(queries)) == 1, queries  # the same suggested query for everyone
            for n, driver in enumerate(browsers):  # everyone clicks at once: result n+1 for person n
                button = good_buttons(driver)[n]
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", button)
                if n == 0:
                    ActionChains(driver).double_click(button).perform()  # a double click
                else:
                    button.click()
            deadline = time.time() + 60
            while db.execute("SELECT count(DISTINCT labeler) FROM labels").fetchone()[0] < TEAM:
                assert time.time() < deadline, db.execute("SELECT labeler FROM labels").fetchall()
                time.sleep(0.5)
            for n, driver in enumerate(browsers):  # each one's next run (here: its next click) shows them all
                settle(driver)
                again = good_buttons(driver)[n]
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", again)
                again.click()  # the same verdict again: a rerun that changes nothing stored
                wait_for(driver, f"//*[contains(., '{TEAM} of 10 judged for this query')]")
                settle(driver)
                shown = driver.find_element("tag name", "body").text
                assert all(f"good · {person}" in shown for person in people), (people[n], shown)
    finally:
        for driver in browsers:
            driver.quit()
    rows = db.execute("SELECT labeler, rank, grade FROM labels ORDER BY rank").fetchall()
    assert rows == [(person, n + 1, "good") for n, person in enumerate(people)]  # once each, double click and all
    db.conn.close()

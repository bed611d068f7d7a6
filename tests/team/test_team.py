"""People and what they may do (core/team/): the roles file, whom a proxy's header names and when it is
believed, and the library refusing each role what it may not do, whatever face calls it; every change
attributed to the signed-in person and listed in the activity (core/catalog/activity.py)."""

from __future__ import annotations

import ipaddress
import re

import pytest

from core.catalog.activity import people, read_activity
from core.curation import decisions
from core.curation.labels import Query, add_label, export_labels, import_labels
from core.settings import SettingError
from core.team import proxy
from core.team.access import Action, NotAllowed, acting, acting_as, require
from core.team.roles import LOCAL, Person, Role, RolesError, admins, parse_roles, role_of

from helpers import run_here

ROLES = """# the shop's team
*@shop.com, labeller
Vera@shop.com, viewer   # read-only
cy@shop.com,curator
boss@shop.com,admin
"""
VIEWER, LABELLER = Person("vera@shop.com", Role.VIEWER), Person("nina@shop.com", Role.LABELLER)
CURATOR, ADMIN = Person("cy@shop.com", Role.CURATOR), Person("boss@shop.com", Role.ADMIN)


@pytest.fixture
def sign_in_on(monkeypatch):
    """Sign-in on (proxy mode) for this test's library calls (conftest reads the settings again)."""
    monkeypatch.setenv("LOOKALIKE_AUTH", "proxy")


def test_roles_file_gives_an_email_its_own_line_before_its_domain():
    rules = parse_roles(ROLES)
    assert role_of("nina@shop.com", rules) is Role.LABELLER  # the domain's
    assert role_of("VERA@Shop.com", rules) is Role.VIEWER  # her own line, whatever the order and case
    assert role_of("boss@shop.com", rules) is Role.ADMIN
    assert role_of("nina@evil-shop.com", rules) is None and role_of("nina@mail.shop.com", rules) is None
    assert role_of("@shop.com", rules) is None and role_of("", rules) is None
    assert admins(rules) == ["boss@shop.com"]
    assert Role.VIEWER < Role.LABELLER < Role.CURATOR < Role.ADMIN


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("ana@shop.com", "line 1: write `email,role`"),
        ("# team\nana@shop.com,owner", "line 2: unknown role 'owner'"),
        ("ana,admin", "line 1: 'ana' is neither an email nor *@domain"),
        ("*@*.com,viewer", "line 1: '*@*.com' is neither an email nor *@domain"),
        ("a*@shop.com,viewer", "line 1: 'a*@shop.com' is neither an email nor *@domain"),
        ("ana@shop.com,viewer\nANA@shop.com,admin", "line 2: ana@shop.com is given a role twice"),
    ],
)
def test_a_roles_file_line_that_cannot_be_used_is_named(text, says):
    with pytest.raises(RolesError, match=re.escape("roles file " + says)) as error:
        parse_roles(text)
    assert "\n" not in str(error.value)


def test_the_proxy_header_is_believed_only_from_loopback_or_a_trusted_proxy():
    proxies = proxy.trusted_proxies("10.0.0.5, 192.168.1.0/24 ::1")
    assert proxies[1] == ipaddress.ip_network("192.168.1.0/24")
    assert proxy.trusted("203.0.113.9", "127.0.0.1", [])  # the app listens on this computer only
    assert proxy.trusted("203.0.113.9", "localhost", [])
    assert proxy.trusted("10.0.0.5", "0.0.0.0", proxies)
    assert proxy.trusted("192.168.1.77", "0.0.0.0", proxies)
    assert proxy.trusted("::ffff:10.0.0.5", "::", proxies)  # an IPv4 peer on an IPv6 socket
    assert not proxy.trusted("10.0.0.6", "0.0.0.0", proxies)
    assert not proxy.trusted("203.0.113.9", "", proxies)  # Streamlit's default address: every one
    assert not proxy.trusted(None, "0.0.0.0", proxies) and not proxy.trusted("not an address", "0.0.0.0", proxies)
    with pytest.raises(SettingError, match="LOOKALIKE_TRUSTED_PROXIES: '10.0.0.300'"):
        proxy.trusted_proxies("10.0.0.5,10.0.0.300")


def test_the_person_is_the_forwarded_email_else_the_forwarded_user():
    assert proxy.named_person({"x-forwarded-email": " Nina@Shop.com ", "X-Forwarded-User": "nina"}) == "nina@shop.com"
    assert proxy.named_person({"X-Forwarded-User": "nina"}) == "nina"
    assert proxy.named_person({"X-Forwarded-Email": "", "Host": "shop"}) is None


def test_without_sign_in_the_local_user_does_everything_in_the_name_typed(demo_catalog):
    a, b = (i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2"))
    assert acting() is LOCAL and require(Action.TUNE) is LOCAL
    add_label(demo_catalog, Query.item(a), b, "color_hist", 1, True, "Newcomer Nina")
    assert demo_catalog.execute("SELECT labeler FROM labels").fetchall() == [("Newcomer Nina",)]
    assert [(r.person, r.action) for r in read_activity(demo_catalog)][:1] == [("Newcomer Nina", "label")]


def test_with_sign_in_nobody_and_a_viewer_are_refused_by_the_library(demo_catalog, sign_in_on, tmp_path):
    from core.catalog.importers import import_csv
    from core.curation.export import export_similar
    from core.curation.tuning import tune
    from core.engines.autoencoder_training import train
    from core.engines.embed import embed_catalog
    from core.methods import devices
    from core.search.space import open_space

    from helpers import small_styles

    a, b = (i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2"))
    with pytest.raises(NotAllowed, match="^sign in to label$"):  # nobody set: nobody
        add_label(demo_catalog, Query.item(a), b, "color_hist", 1, True, "anyone")
    with acting_as(VIEWER):
        with pytest.raises(NotAllowed, match="^vera@shop.com is a viewer: to label takes a labeller or above$"):
            add_label(demo_catalog, Query.item(a), b, "color_hist", 1, True, "vera")
        refused = {
            "pin": lambda: decisions.pin(demo_catalog, a, b, 1, "vera"),
            "hide": lambda: decisions.hide(demo_catalog, b, "vera"),
            "rule": lambda: decisions.set_rule(demo_catalog, "in_stock", "yes", "vera"),
            "export labels": lambda: export_labels(demo_catalog, tmp_path / "labels.csv"),
            "export similar": lambda: export_similar(open_space(demo_catalog, "color_hist"), 5, tmp_path / "s.csv"),
            "import": lambda: import_csv(demo_catalog, *small_styles(tmp_path, 2), progress=False),
            "import labels": lambda: import_labels(demo_catalog, tmp_path / "labels.csv"),
            "embed": lambda: embed_catalog(demo_catalog, "color_hist", progress=False),
            "index": lambda: open_space(demo_catalog, "color_hist").build_index(progress=False),
            "tune": lambda: tune(demo_catalog, "mine", ["color_hist"], ["category"], progress=False),
            "train": lambda: train(demo_catalog, epochs=1, progress=False),
            "activity": lambda: read_activity(demo_catalog),
            "people": lambda: people(demo_catalog),
            "choose the device": lambda: devices.select("cpu"),
            "place on a device": lambda: devices.placed("cpu").__enter__(),
        }
        for call in refused.values():
            with pytest.raises(NotAllowed, match="^vera@shop.com is a viewer: to "):
                call()
    assert demo_catalog.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert demo_catalog.execute("SELECT count(*) FROM curation").fetchone()[0] == 0
    assert not (tmp_path / "labels.csv").exists() and not (tmp_path / "s.csv").exists()
    assert demo_catalog.execute("SELECT count(*) FROM embeddings").fetchone()[0] == 0


def test_with_sign_in_every_change_is_the_signed_in_persons_never_a_typed_name(demo_catalog, sign_in_on, tmp_path):
    a, b, c = (i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 3"))
    with acting_as(LABELLER):
        add_label(demo_catalog, Query.item(a), b, "color_hist", 1, False, "Boss Himself", grade="close")
        with pytest.raises(NotAllowed, match="nina@shop.com is a labeller: to pin, hide or set rules takes a curator"):
            decisions.hide(demo_catalog, c, "nina")
    with acting_as(CURATOR):
        decisions.pin(demo_catalog, a, c, 1, "someone else")
        decisions.undo(demo_catalog, author="")  # no name typed: the signed-in one is enough
        assert export_labels(demo_catalog, tmp_path / "labels.csv") == 1
        with pytest.raises(NotAllowed, match="to import takes an admin"):
            import_labels(demo_catalog, tmp_path / "labels.csv")
    assert demo_catalog.execute("SELECT labeler, grade FROM labels").fetchall() == [("nina@shop.com", "close")]
    assert "nina@shop.com" in (tmp_path / "labels.csv").read_text(encoding="utf-8")  # `labels export` carries it
    assert [c.author for c in decisions.history(demo_catalog)] == ["cy@shop.com", "cy@shop.com"]
    with acting_as(ADMIN):
        everything = read_activity(demo_catalog)
        assert [(r.person, r.action) for r in everything][:4] == [  # newest first
            ("cy@shop.com", "export"),
            ("cy@shop.com", "curate"),
            ("cy@shop.com", "curate"),
            ("nina@shop.com", "label"),
        ]
        assert everything[1].detail.startswith("undo #")
        assert [r.action for r in read_activity(demo_catalog, "nina@shop.com")] == ["label"]
        assert {"cy@shop.com", "nina@shop.com"} <= set(people(demo_catalog))


def test_the_command_line_acts_as_the_local_admin_even_with_sign_in_on(demo_catalog, sign_in_on):
    a, b = (i for (i,) in demo_catalog.execute("SELECT id FROM items ORDER BY id LIMIT 2"))
    done = run_here("--db", str(demo_catalog.path), "curate", "pin", a, b, "--by", "ana")
    assert done.returncode == 0, done.stderr
    assert [c.author for c in decisions.history(demo_catalog)] == ["ana"]

"""Sign-in by a reverse proxy (oauth2-proxy, Authelia, Pomerium): the person its header names, believed
only from an address it may come from."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

from core.settings import SettingError

HEADERS = ("X-Forwarded-Email", "X-Forwarded-User")  # the first one given names the person
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies(text: str | None) -> list[Network]:
    """LOOKALIKE_TRUSTED_PROXIES: addresses or networks (CIDR), comma- or space-separated;
    SettingError naming the variable and the bad entry."""
    networks = []
    for entry in (text or "").replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise SettingError(
                f"LOOKALIKE_TRUSTED_PROXIES: {entry[:60]!r} is not an address or network (10.0.0.5, 10.0.0.0/24, ::1)"
            ) from None
    return networks


def is_loopback(host: str | None) -> bool:
    """Whether a listening address is this computer only (127.0.0.0/8, ::1, localhost); a host name
    other than localhost may resolve to an outside address: False. The app's and the API's test."""
    if host is None or not host.strip():
        return False  # Streamlit's default: every address
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False


def trusted(peer: str | None, listening_on: str | None, proxies: list[Network]) -> bool:
    """Whether a request from `peer` may name its person in a header: the app listens on this computer
    only (whatever reaches it is here), or the peer is one of the trusted proxies."""
    if is_loopback(listening_on):
        return True
    try:
        address = ipaddress.ip_address((peer or "").strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in proxies)


def named_person(headers: Mapping[str, str]) -> str | None:
    """The email (or user name) the proxy's header gives, lower case; None when there is none."""
    lowered = {key.lower(): value for key, value in headers.items()}
    for header in HEADERS:
        value = (lowered.get(header.lower()) or "").strip()
        if value:
            return value.lower()
    return None

"""Fetch listing photos over HTTP(S): deadlines, retries, a size cap, a content-type check,
several photos at once, and no fetching from private networks unless asked.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from core.files.atomic import atomic_path
from core.files.encoding import EncodingError, csv_field_limit, open_text
from core.files.report import ImportReport
from core.files.urls import strip_credentials, url_basename

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 15 * 1024 * 1024
TIMEOUT = (5, 20)  # connect, read seconds (each wait for the next bytes)
DEADLINE_S = 60.0  # one photo, start to finish
WORKERS = 4  # photos fetched at once
MAX_REDIRECTS = 5
IMAGE_COLUMNS = ("images.cutOut", "images.model")
CSV_FIELD_LIMIT = 10 * 1024 * 1024  # characters in one cell of a listings CSV


class DownloadError(Exception):
    """A photo that could not be fetched, with the reason in one line."""


def session(retries: int = 3) -> requests.Session:
    """A requests session that retries connection errors and 5xx/429 with back-off."""
    s = requests.Session()
    retry = Retry(
        total=retries, backoff_factor=0.3, status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",)
    )
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    s.headers["User-Agent"] = "Lookalike/1.0 (catalog curation)"
    return s


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address a host name resolves to (an IP literal is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        raise DownloadError(f"cannot resolve host {host}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def check_host(url: str, allow_private_hosts: bool = False) -> None:
    """Refuse a URL whose host is loopback, link-local, private or otherwise not public."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"not an http(s) URL: {strip_credentials(url)}")
    if allow_private_hosts:
        return
    for address in _addresses(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)):
        mapped = getattr(address, "ipv4_mapped", None) or address
        if not mapped.is_global or mapped.is_multicast:
            raise DownloadError(
                f"{parts.hostname} is a private, loopback or link-local address ({address}); "
                "use --allow-private-hosts to fetch from it"
            )


def fetch(
    url: str,
    dest: Path,
    http: requests.Session,
    max_bytes: int = MAX_IMAGE_BYTES,
    deadline_s: float = DEADLINE_S,
    allow_private_hosts: bool = False,
) -> Path:
    """Download one image to `dest` atomically within `deadline_s`; raise DownloadError.

    Redirects are followed by hand so that every hop's host is checked. Messages never show
    the credentials a URL may hold.
    """
    shown = strip_credentials(url)
    started = time.monotonic()
    try:
        for _ in range(MAX_REDIRECTS + 1):
            check_host(url, allow_private_hosts)
            response = http.get(url, timeout=TIMEOUT, stream=True, allow_redirects=False)
            if not response.is_redirect:
                break
            response.close()
            url = urljoin(url, response.headers["Location"])
        else:
            raise DownloadError(f"more than {MAX_REDIRECTS} redirects at {shown}")
        with response:
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code} for {shown}")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not kind.startswith("image/"):
                raise DownloadError(f"not an image (Content-Type {kind or 'missing'}) at {shown}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise DownloadError(f"too large ({declared:,} bytes > {max_bytes:,}) at {shown}")
            size = 0
            with atomic_path(dest) as tmp, open(tmp, "wb") as out:
                # read1 returns whatever has arrived, so a server trickling bytes meets the deadline
                while chunk := response.raw.read1(64 * 1024, decode_content=True):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"too large (over {max_bytes:,} bytes) at {shown}")
                    if time.monotonic() - started > deadline_s:
                        raise DownloadError(f"not finished within {deadline_s:g} s at {shown}")
                    out.write(chunk)
    except (requests.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise DownloadError(f"cannot fetch {shown} ({type(exc).__name__})") from None
    return dest


def download_listing_images(
    csv_path: str | Path,
    folder: str | Path,
    progress: bool = True,
    http: requests.Session | None = None,
    workers: int = WORKERS,
    allow_private_hosts: bool = False,
) -> ImportReport:
    """Fetch every listing photo of a Farfetch CSV that the folder lacks, named by URL basename.

    Up to `workers` photos are fetched at once, each within its own deadline.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with open_text(csv_path) as (handle, _), csv_field_limit(CSV_FIELD_LIMIT):
            urls = [
                row[c].strip() for row in csv.DictReader(handle) for c in IMAGE_COLUMNS if (row.get(c) or "").strip()
            ]
    except EncodingError:
        return ImportReport()  # the import that follows reports the file
    wanted = [u for u in dict.fromkeys(urls) if not (folder / url_basename(u)).exists()]
    report = ImportReport(rows=len(wanted))
    http = http or session()
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="download")
    try:
        futures = [
            pool.submit(fetch, url, folder / url_basename(url), http, allow_private_hosts=allow_private_hosts)
            for url in wanted
        ]
        for url, future in tqdm(
            zip(wanted, futures), total=len(wanted), desc="download photos", unit=" img", disable=not progress
        ):
            try:
                future.result()
                report.images_ok += 1
            except DownloadError as exc:
                report.images_bad += 1
                report.problem(url_basename(url) or strip_credentials(url), str(exc))
                log.warning("%s", exc)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C, photos not started are dropped
    return report

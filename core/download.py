"""Fetch listing photos over HTTP(S): timeouts, retries, a size cap and a content-type check."""
from __future__ import annotations

import csv
import logging
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from core.atomic import atomic_path
from core.importers import url_basename
from core.report import ImportReport

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 15 * 1024 * 1024
TIMEOUT = (5, 20)  # connect, read seconds
IMAGE_COLUMNS = ("images.cutOut", "images.model")


class DownloadError(Exception):
    """A photo that could not be fetched, with the reason in one line."""


def session(retries: int = 3) -> requests.Session:
    """A requests session that retries connection errors and 5xx/429 with back-off."""
    s = requests.Session()
    retry = Retry(total=retries, backoff_factor=0.3, status_forcelist=(429, 500, 502, 503, 504),
                  allowed_methods=("GET",))
    s.mount("http://", HTTPAdapter(max_retries=retry))
    s.mount("https://", HTTPAdapter(max_retries=retry))
    s.headers["User-Agent"] = "Lookalike/1.0 (catalog curation)"
    return s


def fetch(url: str, dest: Path, http: requests.Session, max_bytes: int = MAX_IMAGE_BYTES) -> Path:
    """Download one image to `dest` atomically; raise DownloadError with a one-line reason."""
    if not url.startswith(("http://", "https://")):
        raise DownloadError(f"not an http(s) URL: {url}")
    try:
        with http.get(url, timeout=TIMEOUT, stream=True) as response:
            if response.status_code != 200:
                raise DownloadError(f"HTTP {response.status_code} for {url}")
            kind = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if not kind.startswith("image/"):
                raise DownloadError(f"not an image (Content-Type {kind or 'missing'}) at {url}")
            declared = int(response.headers.get("Content-Length") or 0)
            if declared > max_bytes:
                raise DownloadError(f"too large ({declared:,} bytes > {max_bytes:,}) at {url}")
            size = 0
            with atomic_path(dest) as tmp, open(tmp, "wb") as out:
                for chunk in response.iter_content(64 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DownloadError(f"too large (over {max_bytes:,} bytes) at {url}")
                    out.write(chunk)
    except requests.RequestException as exc:
        raise DownloadError(f"cannot fetch {url} ({type(exc).__name__})") from None
    return dest


def download_listing_images(csv_path: str | Path, folder: str | Path, progress: bool = True,
                            http: requests.Session | None = None) -> ImportReport:
    """Fetch every listing photo of a Farfetch CSV that the folder lacks, named by URL basename."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with open(csv_path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        urls = [row[c].strip() for row in csv.DictReader(handle) for c in IMAGE_COLUMNS
                if (row.get(c) or "").strip()]
    wanted = [u for u in dict.fromkeys(urls) if not (folder / url_basename(u)).exists()]
    report = ImportReport(rows=len(wanted))
    http = http or session()
    for url in tqdm(wanted, desc="download photos", unit=" img", disable=not progress):
        try:
            fetch(url, folder / url_basename(url), http)
            report.images_ok += 1
        except DownloadError as exc:
            report.images_bad += 1
            report.problem(url_basename(url) or url, str(exc))
            log.warning("%s", exc)
    return report

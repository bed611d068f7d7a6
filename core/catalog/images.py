"""Read product photos safely: the four photo formats only, any mode, with size caps and clear reasons.

Every photo Lookalike opens (imports, embedding, thumbnails, `search --image`, uploads, autoencoder
training) is decoded by `decode` here, which lets Pillow try only JPEG, PNG, WebP and AVIF, judged
by the file's content whatever its name: an EPS, PDF or other file renamed `.jpg` is refused before
any other decoder (Ghostscript for EPS) sees it.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import EpsImagePlugin, Image, ImageOps, UnidentifiedImageError

# Pillow >= 11.3 reads AVIF itself; the plugin covers older builds when installed.
try:  # pragma: no cover - depends on the Pillow build
    import pillow_avif  # noqa: F401
except ImportError:  # pragma: no cover
    pass

MAX_PIXELS = 40_000_000  # decompression-bomb guard (about 6300 x 6300)
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_FILE_BYTES = 64 * 1024 * 1024  # a photo file on disk; checked before reading
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
FORMATS = ("JPEG", "PNG", "WEBP", "AVIF")  # Pillow's names; JPEG covers MPO (camera multi-picture JPEG)
FORMAT_NAMES = "JPEG, PNG, WebP or AVIF"
# Defence in depth: even a Pillow call outside this module never starts Ghostscript on a file.
EpsImagePlugin.gs_binary = False


class ImageError(ValueError):
    """An image that cannot be used, with the reason in one line."""


# How the reasons of a photo that may well be readable next time begin: a missing file (a node
# without the photo mount, a file not synced yet), an I/O error (a network file system's hiccup).
UNAVAILABLE = ("file not found:", "cannot read ")


def unavailable(reason: str) -> bool:
    """True for a reason that is about reaching the file, not about its contents (worth retrying)."""
    return reason.startswith(UNAVAILABLE)


@dataclass(frozen=True)
class ImageInfo:
    """What the importer records about one image file."""

    status: str  # ok / missing / unreadable
    reason: str | None = None
    width: int | None = None
    height: int | None = None
    sha256: str | None = None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, draft: int | None = None) -> Image.Image:
    """Decode photo bytes (JPEG, PNG, WebP or AVIF by content) to an RGB image; raise ImageError.

    draft: a JPEG may be decoded at 1/2, 1/4 or 1/8 scale (in the DCT, several times faster)
    as long as both sides stay at least `draft` pixels; other formats decode at full size.
    Any failure while decoding or normalising the photo (a decompression bomb, a truncated file,
    malformed EXIF that makes Pillow raise TypeError or struct.error) is this photo's ImageError.
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            warnings.simplefilter("ignore", UserWarning)  # Pillow's "Corrupt EXIF data" noise
            img = Image.open(io.BytesIO(data), formats=FORMATS)  # reads the header only
            if img.width * img.height > MAX_PIXELS:  # before a single pixel is decoded
                raise Image.DecompressionBombError(f"{img.width} x {img.height}")
            if draft and img.format == "JPEG":
                img.draft(None, (draft, draft))  # mode unchanged: to_rgb converts
            img.load()
            return to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"image too large (over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise ImageError(
            f"not a readable image (only {FORMAT_NAMES} photos are read; another format, or corrupt)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"corrupt or truncated image ({exc})") from None
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed metadata raises anything (TypeError, struct.error)
        raise ImageError(f"damaged photo data or metadata ({type(exc).__name__}: {exc})") from None


def to_rgb(img: Image.Image) -> Image.Image:
    """Normalise mode: palette, CMYK, 16-bit, greyscale and alpha all become 8-bit RGB."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v / 256).convert("L") if img.mode != "I" else img.convert("L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        img = img.convert("RGBA")
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


def read_file(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; raise ImageError otherwise.

    Devices (/dev/zero), FIFOs and sockets are refused before they are opened for reading,
    so a bad path can neither hang nor fill memory; the size is checked before the read.
    """
    path = Path(path)
    try:
        before = os.stat(path)
        if not stat.S_ISREG(before.st_mode):
            raise ImageError(f"{path.name} is not a regular file")
        # O_NONBLOCK: should the path become a FIFO after the check, opening it cannot hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise ImageError(f"file not found: {path.name}") from None
    except OSError as exc:
        raise ImageError(f"cannot read {path.name}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        opened = os.fstat(handle.fileno())
        if not stat.S_ISREG(opened.st_mode):
            raise ImageError(f"{path.name} is not a regular file")
        if opened.st_size > max_bytes:
            raise ImageError(f"{path.name} is too large ({opened.st_size:,} bytes > {max_bytes:,})")
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:  # EIO, ESTALE: a network file system's error while reading
            raise ImageError(f"cannot read {path.name}: {exc.strerror}") from None
    if len(data) > max_bytes:
        raise ImageError(f"{path.name} is too large (over {max_bytes:,} bytes)")
    return data


def load_rgb(source: str | Path | bytes, draft: int | None = None) -> Image.Image:
    """Open a path or bytes as an RGB image (a JPEG reduced to `draft`, see decode); raise ImageError."""
    if isinstance(source, (bytes, bytearray)):
        return decode(bytes(source), draft)
    return decode(read_file(source), draft)


def load_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Image.Image:
    """Check and decode an uploaded photo (its bytes: an upload is never a path); raise ImageError.

    Call it before anything shows or searches the upload: too large, not an image, truncated
    and decompression bombs all end here with a one-line reason.
    """
    if len(data) > max_bytes:
        raise ImageError(f"the photo is over {max_bytes // 2**20} MB")
    return decode(data)


@dataclass(frozen=True)
class Photo:
    """An uploaded photo, decoded once: its bytes (what labels and the query's hash name) and its pixels."""

    data: bytes
    image: Image.Image

    @property
    def sha256(self) -> str:
        return sha256_bytes(self.data)


def decode_upload(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES) -> Photo:
    """`load_upload`, kept with its bytes, so checking a photo and searching with it decode it once."""
    return Photo(data, load_upload(data, max_bytes))


def inspect(path: str | Path) -> ImageInfo:
    """Check one image file fully (decode it) and return its size and content hash."""
    path = Path(path)
    if not path.exists():
        return ImageInfo("missing", f"file not found: {path.name}")
    try:
        data = read_file(path)
    except ImageError as exc:
        return ImageInfo("unreadable", str(exc))
    try:
        img = decode(data)
    except ImageError as exc:  # no photo: nothing of it is recorded as if it were one (no hash)
        return ImageInfo("unreadable", str(exc))
    return ImageInfo("ok", None, img.width, img.height, sha256_bytes(data))

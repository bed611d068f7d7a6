"""A photo upload read within its size cap while it arrives, and checked like the app's uploads."""

from __future__ import annotations

from starlette.datastructures import UploadFile
from starlette.requests import Request

from core.catalog.images import MAX_UPLOAD_BYTES, ImageError, Photo, decode_upload

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and headers around the photo


class UploadTooLarge(ValueError):
    """More bytes than an upload may have."""


class NotAPhoto(ValueError):
    """An upload that is not a photo in a supported format, in one line."""


class NoPhoto(ValueError):
    """A request without the photo field."""


def _too_large(limit: int) -> UploadTooLarge:
    return UploadTooLarge(f"the photo is over {limit // 2**20} MB")


async def read_photo(request: Request, field: str = "file", limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """The bytes of the multipart field `field`; UploadTooLarge as soon as the request carries more
    than `limit` bytes of photo (by its Content-Length, else while counting what arrives)."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise NoPhoto(f"send the photo as multipart/form-data in a field named {field!r}")
    envelope = limit + FORM_OVERHEAD
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > envelope:
        raise _too_large(limit)
    received = 0

    async def receive():
        nonlocal received
        message = await request.receive()
        received += len(message.get("body", b""))
        if received > envelope:
            raise _too_large(limit)
        return message

    form = await Request(request.scope, receive).form(max_files=1, max_fields=8)
    try:
        upload = form.get(field)
        if not isinstance(upload, UploadFile):
            raise NoPhoto(f"send the photo in a multipart field named {field!r}")
        data = await upload.read(limit + 1)
    finally:
        await form.close()
    if len(data) > limit:
        raise _too_large(limit)
    return data


def check_photo(data: bytes) -> Photo:
    """The photo, decoded once (as the app checks uploads); NotAPhoto unless `data` is a whole JPEG, PNG,
    WebP or AVIF photo within the pixel cap (checked from its header, before decoding)."""
    try:
        return decode_upload(data)
    except ImageError as exc:
        raise NotAPhoto(f"the upload is not a usable photo: {exc}") from None

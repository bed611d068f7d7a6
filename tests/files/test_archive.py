"""A zip of photos uploaded with a CSV is unpacked flat, inside its folder, within its caps."""

from __future__ import annotations

import io
import stat
import zipfile

import pytest

from core.files.archive import ArchiveRefused, unpack_photos

from helpers import DEMO

SUFFIXES = {".jpg", ".png"}
PHOTO = (DEMO / "images" / "10129.jpg").read_bytes()


def zipped(*entries: tuple[str, bytes], link: str | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            archive.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_photos_land_flat_inside_the_folder_and_nothing_escapes(tmp_path):
    folder = tmp_path / "photos"
    data = zipped(
        ("shop/10129.jpg", PHOTO),
        ("../../escaped.jpg", PHOTO),
        ("C:\\Users\\ana\\win.jpg", PHOTO),
        ("/abs/root.png", PHOTO),
        ("notes.txt", b"hello"),
        ("__MACOSX/shop/._10129.jpg", b"junk"),
        ("other/10129.jpg", b"second"),
        link="shop/link.jpg",
    )
    report = unpack_photos(data, folder, SUFFIXES)
    assert sorted(p.name for p in folder.iterdir()) == ["10129.jpg", "escaped.jpg", "root.png", "win.jpg"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["photos"]  # nothing beside the folder
    assert (folder / "10129.jpg").read_bytes() == PHOTO and report.images_ok == 4
    reasons = {p.where: p.reason for p in report.problems}
    assert "not a plain file" in reasons["shop/link.jpg"] and not (folder / "link.jpg").exists()
    assert "not a photo" in reasons["notes.txt"]
    assert "the first one kept" in reasons["other/10129.jpg"]


def test_caps_refuse_the_whole_archive_before_writing(tmp_path):
    many = zipped(*[(f"{n}.jpg", PHOTO) for n in range(4)])
    with pytest.raises(ArchiveRefused, match="4 photos in the zip; at most 3"):
        unpack_photos(many, tmp_path / "a", SUFFIXES, max_files=3)
    with pytest.raises(ArchiveRefused, match="at most 0 MB"):
        unpack_photos(many, tmp_path / "b", SUFFIXES, max_bytes=len(PHOTO) * 3)
    bomb = zipped(("bomb.png", b"\0" * 5_000_000))  # compresses to a few KB
    report = unpack_photos(bomb, tmp_path / "c", SUFFIXES, max_file_bytes=1_000_000)
    assert report.images_ok == 0 and "larger than 0 MB" in report.problems[0].reason
    with pytest.raises(ArchiveRefused, match="not a zip"):
        unpack_photos(b"PK not really", tmp_path / "d", SUFFIXES)
    assert not any((tmp_path / name).exists() for name in "abd")


def test_an_entry_never_unpacks_to_more_than_its_header_says(tmp_path):
    data = bytearray(zipped(("a.jpg", PHOTO)))
    central = data.rindex(b"PK\x01\x02")  # the central directory's record of a.jpg: it claims 100 bytes
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    report = unpack_photos(bytes(data), tmp_path / "p", SUFFIXES)  # zipfile reads 100 bytes, then fails the CRC
    assert report.images_ok == 0 and "damaged in the zip" in report.problems[0].reason
    assert list((tmp_path / "p").iterdir()) == []

"""extract_archive: good archives extract; unsafe or damaged ones are refused before
anything is written, and a failure leaves the target (and its folder) as it was."""
from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from course_lib.data import DataError, extract_archive


# --- archive makers ------------------------------------------------------------------------

def make_zip(path: Path, members: dict[str, bytes], symlinks: dict[str, str] = {}) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in symlinks.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def make_tar(path: Path, members: dict[str, bytes], special: list[tarfile.TarInfo] = ()
             ) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in special:
            tf.addfile(info)
    return path


def tar_special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


GOOD = {"set/a.txt": b"alpha", "set/sub/b.txt": b"beta" * 100, "top.txt": b"top"}


def leftovers(folder: Path) -> list[str]:
    """Anything in ``folder`` besides the archives the test made."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("archive"))


# --- good archives ---------------------------------------------------------------------------

@pytest.mark.parametrize("maker,name", [(make_zip, "archive.zip"), (make_tar, "archive.tar.gz")])
def test_good_archive_extracts_every_member(tmp_path, maker, name):
    archive = maker(tmp_path / name, GOOD)
    out = extract_archive(archive, tmp_path / "out")
    assert out == tmp_path / "out"
    for member, data in GOOD.items():
        assert (out / member).read_bytes() == data
    assert leftovers(tmp_path) == ["out"]  # no temp folder left behind


def test_existing_target_is_replaced_only_on_success(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    extract_archive(make_zip(tmp_path / "archive.zip", GOOD), dest)
    assert not (dest / "old.txt").exists()
    assert (dest / "top.txt").read_bytes() == b"top"
    assert leftovers(tmp_path) == ["out"]


def test_format_is_judged_by_content_not_name(tmp_path):
    archive = make_tar(tmp_path / "archive.zip", GOOD)  # a tar.gz misnamed .zip
    assert (extract_archive(archive, tmp_path / "out") / "top.txt").exists()


# --- unsafe members: refused before writing anything -----------------------------------------

UNSAFE_ZIPS = {
    "dotdot": {"../evil.txt": b"x"},
    "nested dotdot": {"set/../../evil.txt": b"x"},
    "absolute": {"/tmp/evil-course-test.txt": b"x"},
    "windows dotdot": {"..\\evil.txt": b"x"},
    "windows drive": {"C:/evil.txt": b"x"},
}


@pytest.mark.parametrize("case", list(UNSAFE_ZIPS))
def test_zip_slip_is_refused_and_nothing_written(tmp_path, case):
    # A good member first: a naive extractor would write it before meeting the bad one.
    archive = make_zip(tmp_path / "archive.zip", {"good.txt": b"ok", **UNSAFE_ZIPS[case]})
    dest = tmp_path / "inner" / "out"
    dest.parent.mkdir()
    with pytest.raises(DataError, match="refusing to extract") as err:
        extract_archive(archive, dest)
    assert "outside the target" in str(err.value)
    assert list(dest.parent.iterdir()) == []  # no target, no temp folder
    assert leftovers(tmp_path) == ["inner"]   # nothing escaped one level up either
    assert not Path("/tmp/evil-course-test.txt").exists()


def test_zip_symlink_member_is_refused(tmp_path):
    archive = make_zip(tmp_path / "archive.zip", {"good.txt": b"ok"},
                       symlinks={"link": "/etc/passwd"})
    with pytest.raises(DataError, match="symbolic link"):
        extract_archive(archive, tmp_path / "out")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("info,what", [
    (tar_special("link", tarfile.SYMTYPE, "/etc/passwd"), "symbolic link"),
    (tar_special("set/up", tarfile.SYMTYPE, "../../.."), "symbolic link"),
    (tar_special("hard", tarfile.LNKTYPE, "/etc/passwd"), "hard link"),
    (tar_special("dev", tarfile.CHRTYPE), "special file"),
    (tar_special("blk", tarfile.BLKTYPE), "special file"),
    (tar_special("pipe", tarfile.FIFOTYPE), "special file"),
], ids=["symlink-abs", "symlink-up", "hardlink", "chardev", "blockdev", "fifo"])
def test_tar_links_and_devices_are_refused(tmp_path, info, what):
    archive = make_tar(tmp_path / "archive.tar.gz", {"good.txt": b"ok"}, special=[info])
    with pytest.raises(DataError, match=what):
        extract_archive(archive, tmp_path / "out")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-course-test.txt", "a/../../evil"])
def test_tar_slip_is_refused(tmp_path, name):
    archive = make_tar(tmp_path / "archive.tar.gz", {"good.txt": b"ok", name: b"x"})
    with pytest.raises(DataError, match="outside the target"):
        extract_archive(archive, tmp_path / "out")
    assert leftovers(tmp_path) == []
    assert not Path("/tmp/evil-course-test.txt").exists()


def test_refused_archive_leaves_existing_target_untouched(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    archive = make_zip(tmp_path / "archive.zip", {"x.txt": b"x", "../evil.txt": b"x"})
    with pytest.raises(DataError):
        extract_archive(archive, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert leftovers(tmp_path) == ["out"]


# --- damaged archives ---------------------------------------------------------------------

def test_random_bytes_are_not_an_archive(tmp_path):
    junk = tmp_path / "archive.zip"
    junk.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DataError, match="not a zip or tar archive"):
        extract_archive(junk, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_html_page_gets_a_hint(tmp_path):
    page = tmp_path / "archive.zip"
    page.write_text("<!DOCTYPE html><html><body>Sign in to Dropbox</body></html>")
    with pytest.raises(DataError, match="web page"):
        extract_archive(page, tmp_path / "out")


def test_truncated_tar_gz_is_refused_and_leaves_nothing(tmp_path):
    big = {f"set/f{i}.bin": bytes([i]) * 5000 for i in range(20)}
    full = make_tar(tmp_path / "archive-full.tar.gz", big).read_bytes()
    cut = tmp_path / "archive.tar.gz"
    cut.write_bytes(full[: len(full) // 2])
    with pytest.raises(DataError):
        extract_archive(cut, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_zip_with_damaged_data_fails_cleanly(tmp_path):
    archive = make_zip(tmp_path / "archive.zip", {"set/a.bin": bytes(range(256)) * 400,
                                                  "set/b.bin": b"b" * 1000})
    raw = bytearray(archive.read_bytes())
    mid = 30 + len("set/a.bin") + 200  # inside a.bin's compressed data
    raw[mid:mid + 50] = bytes(50)
    archive.write_bytes(bytes(raw))
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="corrupt"):
        extract_archive(archive, dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]
    assert leftovers(tmp_path) == ["out"]


def test_missing_archive(tmp_path):
    with pytest.raises(DataError, match="not found"):
        extract_archive(tmp_path / "nope.zip", tmp_path / "out")

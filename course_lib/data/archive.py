"""Extracting zip and tar archives without letting any member write outside the target.

Every member is checked *before* anything is written: an absolute path, a ``..``
component, a symbolic or hard link, or a device/FIFO member refuses the whole archive
("zip slip"). Extraction then goes into a hidden temporary folder beside the target,
which is renamed into place only when every member is out, so a corrupt archive leaves
nothing behind.
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from course_lib.data.errors import DataError

# Errors the archive modules raise for damaged files (zlib for bad deflate streams,
# EOFError for a gzip cut short).
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError,
            ValueError, KeyError)


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a zip or tar (.tar, .tar.gz, .tgz, .tar.bz2, .tar.xz) into folder ``dest``.

    ``dest`` receives the archive's members (an archive holding ``horse2zebra/trainA/..``
    gives ``dest/horse2zebra/trainA/..``). If ``dest`` exists it is replaced, only after
    the new contents are complete. Raises :class:`DataError` (with nothing written) for
    an unsafe member, an unknown format or a corrupt archive. Returns ``dest``.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(f"archive not found: {archive}")
    kind = archive_kind(archive)
    try:
        members = _safe_zip_members(archive) if kind == "zip" else _safe_tar_members(archive)
    except DataError:
        raise
    except _CORRUPT as exc:
        raise DataError(f"{archive} is corrupt or incomplete ({exc}). Delete it and "
                        f"download it again") from None
    _check_free_space(archive, dest, members)

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.",
                                suffix=".extracting"))
    try:
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp, members=[m for m, _ in members])
        else:
            _extract_tar(archive, tmp)
        replace_dir(tmp, dest)
    except _CORRUPT as exc:
        raise DataError(f"could not extract {archive}: {exc}. The archive is corrupt or "
                        f"incomplete: delete it and download it again") from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def archive_kind(path: Path) -> str:
    """'zip' or 'tar', judged by content (not the file name); :class:`DataError` if
    neither."""
    kind = sniff_archive(path)
    if kind is None:
        raise DataError(f"{path} is not a zip or tar archive{web_page_hint(path)}. It may be "
                        f"incomplete or the wrong file: delete it and download it again")
    return kind


def sniff_archive(path: Path) -> str | None:
    """'zip', 'tar', or None if the content is neither."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        pass
    return None


def web_page_hint(path: Path) -> str:
    """" (it looks like a web page: ...)" if the file is HTML, else "". A download link
    that needs a login or a '?dl=1' gives a web page instead of the file."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return ""
    if head.lstrip().lower().startswith((b"<!doctype", b"<html")):
        return " (it looks like a web page: the link may need '?dl=1' or a login)"
    return ""


def _check_name(name: str, archive: Path) -> None:
    """Refuse a member name that is absolute or climbs out with '..'."""
    posix = name.replace("\\", "/")  # zips made on Windows may use backslashes
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise DataError(f"refusing to extract {archive}: member {name!r} has an absolute "
                        f"path and would be written outside the target folder. The archive "
                        f"is malformed or malicious: do not use it")
    if ".." in PurePosixPath(posix).parts:
        raise DataError(f"refusing to extract {archive}: member {name!r} contains '..' and "
                        f"would be written outside the target folder. The archive is "
                        f"malformed or malicious: do not use it")


def _refuse_type(archive: Path, name: str, what: str) -> DataError:
    return DataError(f"refusing to extract {archive}: member {name!r} is a {what}, which "
                     f"could point outside the target folder or at a device. Datasets "
                     f"need only files and folders: do not use this archive")


def _safe_zip_members(archive: Path) -> list[tuple[zipfile.ZipInfo, int]]:
    """Every member of a zip as (info, uncompressed size), after checking all of them."""
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
    for info in infos:
        _check_name(info.filename, archive)
        mode = info.external_attr >> 16  # unix st_mode, when made on unix
        kind = stat.S_IFMT(mode)
        if kind == stat.S_IFLNK:
            raise _refuse_type(archive, info.filename, "symbolic link")
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _refuse_type(archive, info.filename, "special file (device, FIFO)")
    return [(info, info.file_size) for info in infos]


def _safe_tar_members(archive: Path) -> list[tuple[tarfile.TarInfo, int]]:
    """Every member of a tar as (info, size), after checking all of them."""
    with tarfile.open(archive, "r:*") as tf:
        infos = tf.getmembers()
    for info in infos:
        _check_name(info.name, archive)
        if info.issym():
            raise _refuse_type(archive, info.name, f"symbolic link (to {info.linkname!r})")
        if info.islnk():
            raise _refuse_type(archive, info.name, f"hard link (to {info.linkname!r})")
        if not (info.isreg() or info.isdir()):
            raise _refuse_type(archive, info.name, "special file (device, FIFO)")
    return [(info, info.size) for info in infos]


def _extract_tar(archive: Path, into: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        # The members were checked above; the "data" filter (Python >= 3.11.4) is a
        # second line of defence and also drops setuid bits and odd permissions.
        if hasattr(tarfile, "data_filter"):
            tf.extractall(into, filter="data")
        else:  # pragma: no cover - older Pythons
            tf.extractall(into)


def _check_free_space(archive: Path, dest: Path, members) -> None:
    """Refuse early when the unpacked size cannot fit (also stops zip bombs)."""
    needed = sum(size for _, size in members)
    probe = dest.parent
    while not probe.exists():
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if needed > free:
        raise DataError(f"not enough disk space to extract {archive}: it unpacks to "
                        f"{needed / 1e9:.2f} GB and {probe} has {free / 1e9:.2f} GB free. "
                        f"Free some space or set COURSE_DATA to a bigger disk")


def replace_dir(new: Path, dest: Path) -> None:
    """Move folder ``new`` to ``dest``, replacing what was there only at the last step."""
    if not dest.exists() and not dest.is_symlink():
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".old"))
    os.rmdir(old)  # we only wanted a free name
    os.replace(dest, old)
    try:
        os.replace(new, dest)
    except OSError:
        os.replace(old, dest)  # put the previous contents back
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()

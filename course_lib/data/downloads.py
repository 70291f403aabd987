"""Downloading a file so that only a complete, verified copy ever appears at its name.

The bytes go to a hidden temporary file beside the destination (same folder, so the final
``os.replace`` is an atomic rename on the same disk). The checksum is computed while
streaming; only when the length and the checksum are right is the file renamed into
place. A crash, a dropped connection or a wrong checksum therefore leaves the
destination exactly as it was (absent, or the previous good copy).
"""
from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from tqdm.auto import tqdm

from course_lib import __version__
from course_lib.data.errors import DataError

CHUNK_BYTES = 1 << 16
# Seconds before the first retry; doubled on every further retry (1, 2, 4, ...).
RETRY_BACKOFF_S = 1.0
# Some hosts refuse urllib's default agent string.
USER_AGENT = f"efficient-gans-workbook/{__version__} (+python urllib)"


# Schemes urllib can fetch from that make sense for a dataset link.
URL_SCHEMES = ("http", "https", "ftp", "file")


def url_problem(url: str) -> str | None:
    """None if ``url`` is a URL this module can download from, else a phrase saying what
    is wrong with it ("is a file path, not a URL", "is not a valid URL (...)")."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError as exc:  # e.g. "http://[::1": Invalid IPv6 URL
        return f"is not a valid URL ({exc})"
    if parts.scheme in URL_SCHEMES:
        if parts.scheme != "file" and not parts.hostname:
            return "is not a valid URL (no host name)"
        return None
    try:
        on_disk = Path(str(url)).expanduser().exists()
    except (OSError, ValueError):
        on_disk = False
    if on_disk:
        return "is a file path, not a URL"
    # A one-letter "scheme" is a Windows drive (C:\\...), not a protocol.
    if not parts.scheme or len(parts.scheme) == 1:
        return "is not a URL: it does not start with https:// (or http://, ftp://, file://)"
    return (f"is not a URL this tool can download from (scheme {parts.scheme!r}; use "
            f"{', '.join(s + '://' for s in URL_SCHEMES)})")


def local_path(url: str) -> Path | None:
    """The file a ``file://`` URL names, else None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "file":
        return None
    return Path(urllib.request.url2pathname(parts.path))


class _Retryable(Exception):
    """A failure that may go away if we try again: connection refused or dropped,
    a truncated body, a timeout, an HTTP 5xx."""


@dataclass(frozen=True)
class Downloaded:
    """What :func:`download_file` fetched: where it is now and its digests."""
    path: Path
    url: str
    size: int
    sha256: str
    md5: str


def download(url: str | Sequence[str], dest: str | os.PathLike, *, sha256: str | None = None,
             md5: str | None = None, retries: int = 3, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` and return ``dest``.

    url:      one URL or a list of mirrors, tried in order (``file://`` works too).
    sha256, md5: the expected hex digest; a mismatch raises :class:`DataError` naming the
              URL, the expected and the actual digest, and nothing is written.
    retries:  how many times to try a URL again after a connection error or a
              truncated transfer (waiting 1 s, 2 s, 4 s, ...) before the next mirror.
    progress: show a tqdm progress bar (a widget in Jupyter, text in a terminal).
    """
    return download_file(url, dest, sha256=sha256, md5=md5, retries=retries,
                         progress=progress).path


def download_file(url: str | Sequence[str], dest: str | os.PathLike, *,
                  sha256: str | None = None, md5: str | None = None,
                  sha256_prefix: str | None = None, retries: int = 3,
                  progress: bool = True, timeout: float = 60.0,
                  backoff: float | None = None,
                  check: Callable[[Path], str | None] | None = None) -> Downloaded:
    """:func:`download`, returning the digests too (the registry records them).

    sha256_prefix: the first hex digits of the sha256, for files that only publish
    that much (torch hub names weights ``<name>-<first 8 hex of sha256>.pth``).
    check:    called on the complete, checksum-verified temporary file before it is
              renamed into place; returns None if the content is right, else a phrase
              saying what it is instead (e.g. "is not a PyTorch weights file"), and
              then nothing is installed.
    """
    urls = [str(url)] if isinstance(url, (str, os.PathLike)) else [str(u) for u in url]
    if not urls:
        raise DataError(f"no URL to download {Path(dest).name} from")
    for u in urls:
        problem = url_problem(u)
        if problem:
            raise DataError(f"cannot download {u!r}: it {problem}")
    dest = Path(dest)
    expected = _Expected(sha256=sha256, md5=md5, sha256_prefix=sha256_prefix)
    failures: list[tuple[str, DataError]] = []
    for u in urls:
        try:
            return _download_with_retries(u, dest, expected, retries, progress, timeout,
                                          RETRY_BACKOFF_S if backoff is None else backoff,
                                          check)
        except DataError as exc:
            failures.append((u, exc))
    if len(failures) == 1:
        raise failures[0][1]
    lines = "\n".join(f"  - {exc}" for _, exc in failures)
    raise DataError(f"could not download {dest.name} from any of its {len(urls)} "
                    f"mirrors:\n{lines}")


@dataclass(frozen=True)
class _Expected:
    sha256: str | None = None
    md5: str | None = None
    sha256_prefix: str | None = None

    def mismatch(self, url: str, sha256: str, md5: str) -> str | None:
        """None if the digests are as expected, else a sentence saying what differs."""
        checks = [("sha256", self.sha256, sha256, sha256 == (self.sha256 or "").lower()),
                  ("md5", self.md5, md5, md5 == (self.md5 or "").lower()),
                  ("sha256 prefix", self.sha256_prefix, sha256,
                   sha256.startswith((self.sha256_prefix or "").lower()))]
        for kind, want, got, ok in checks:
            if want and not ok:
                local = local_path(url)
                if local is not None:  # a file on this computer: no server to blame
                    return (f"checksum mismatch for {local}: expected {kind} "
                            f"{want.lower()}, got {got}. It was not installed: the file is "
                            f"damaged, incomplete or a different one. Download it again")
                return (f"checksum mismatch for {url}: expected {kind} {want.lower()}, "
                        f"got {got}. The file was not kept. The server may be serving a "
                        f"different or damaged file: try again later or another mirror")
        return None


def _download_with_retries(url: str, dest: Path, expected: _Expected, retries: int,
                           progress: bool, timeout: float, backoff: float,
                           check: Callable[[Path], str | None] | None) -> Downloaded:
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return _download_once(url, dest, expected, progress, timeout, check)
        except _Retryable as exc:
            last = exc
            if attempt < retries:
                delay = backoff * 2 ** attempt
                print(f"download of {url} failed ({exc}); retrying in {delay:.1f} s "
                      f"({attempt + 1}/{retries})", file=sys.stderr)
                time.sleep(delay)
    raise DataError(f"could not download {url} after {retries + 1} attempts: {last}. "
                    f"Check the network connection, or download the file by hand and "
                    f"install it with --from PATH")


def _download_once(url: str, dest: Path, expected: _Expected, progress: bool,
                   timeout: float, check: Callable[[Path], str | None] | None) -> Downloaded:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            size, sha256, md5 = _stream(url, out, dest.name, progress, timeout)
        problem = expected.mismatch(url, sha256, md5)
        if problem:
            raise DataError(problem)
        wrong = check(Path(tmp)) if check else None
        if wrong:
            raise DataError(f"{local_path(url) or url} {wrong}. It was not installed: "
                            f"check that it is the right file for {dest.name}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; datasets may be shared
        os.replace(tmp, dest)
    finally:
        # Only a verified file was renamed; anything still at tmp is partial or wrong.
        if os.path.exists(tmp):
            os.unlink(tmp)
    return Downloaded(path=dest, url=url, size=size, sha256=sha256, md5=md5)


def _open(url: str, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise DataError(f"{url} answered HTTP {exc.code} {exc.reason}: the file is not "
                        f"there (moved or removed?)") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, FileNotFoundError):  # a file:// URL to a missing file
            raise DataError(f"{url}: no such file") from None
        raise _Retryable(f"cannot connect: {exc.reason}") from None
    except (ValueError, http.client.InvalidURL) as exc:  # e.g. a port that is not a number
        raise DataError(f"{url} is not a valid URL ({exc})") from None
    except (OSError, http.client.HTTPException) as exc:
        raise _Retryable(f"cannot connect: {exc}") from None


def _stream(url: str, out, label: str, progress: bool, timeout: float
            ) -> tuple[int, str, str]:
    """Copy the body of ``url`` into ``out``; return (bytes, sha256, md5)."""
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    received = 0
    with _open(url, timeout) as response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label,
                  disable=not progress, leave=False) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK_BYTES)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Retryable(f"connection lost after {received} bytes: "
                                     f"{exc!r}") from None
                if not chunk:
                    break
                out.write(chunk)
                sha256.update(chunk)
                md5.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    # http.client does not complain when the server closes early: compare ourselves.
    if total is not None and received != total:
        raise _Retryable(f"truncated: got {received} of {total} bytes")
    return received, sha256.hexdigest(), md5.hexdigest()


def file_digests(path: str | os.PathLike) -> tuple[str, str]:
    """(sha256, md5) of a file on disk, read in chunks."""
    sha256, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            sha256.update(chunk)
            md5.update(chunk)
    return sha256.hexdigest(), md5.hexdigest()

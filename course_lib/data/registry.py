"""The real datasets and weights the course can use, where they come from, and their state.

Each :class:`Entry` says where to download a file (with mirrors), how to check it, where
it goes, and its licence. :func:`fetch` downloads, verifies and installs an entry;
:func:`status` says whether it is present and verified, without downloading anything.

What "verified" means: the file's checksum matched a checksum *published by its source*
(the CIFAR-10 md5, the sha256 prefix in pytorch-fid's file name). Entries whose source
publishes no checksum are recorded as ``sha256=None`` and always show as "unverified";
their sha256 is still recorded at fetch time so an instructor can pin it.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from course_lib import zoo
from course_lib.data.archive import extract_archive, replace_dir, sniff_archive, web_page_hint
from course_lib.data.downloads import download_file, file_digests
from course_lib.data.errors import DataError
from course_lib.data.paths import DATA_ENV, data_root, torch_home
from course_lib.fileio import load_checkpoint, writable_folder_problem


@dataclass(frozen=True)
class Entry:
    """One downloadable dataset or weight file.

    dest:   where it ends up, relative to the data root (``base="data"``) or to
            ``$TORCH_HOME`` (``base="torch"``). For an archive, the folder holding the
            data; for a file, the file itself.
    member: for an archive, the folder inside it that becomes ``dest`` (found at any
            depth). Entries sharing a ``filename`` come from one archive, and fetching
            one installs all of them.
    marker: a file or folder that must be inside ``dest`` for it to count as present.
    url_env: an environment variable that may hold an extra URL, tried first (for hosts
            whose link we cannot pin, such as a Dropbox share).
    content: what a "file" entry must hold, checked before it is installed:
            "torch-weights" (a state dict ``torch.load(weights_only=True)`` can read), or
            None (no check beyond the checksum).
    spec:   for model weights, the architecture to rebuild them with, recorded in the
            model zoo when fetched (:func:`course_lib.zoo.register_fetched`):
            ``{"task", "models": {role: {"class", "kwargs"}}}``.
    """
    name: str
    urls: tuple[str, ...]
    filename: str
    kind: str                      # "archive" (extracted) or "file" (kept as is)
    dest: str
    size: int | None               # bytes, approximate; None if unknown
    licence: str
    sha256: str | None = None
    md5: str | None = None
    sha256_prefix: str | None = None
    base: str = "data"
    member: str | None = None
    marker: str | None = None
    url_env: str | None = None
    homepage: str = ""
    notes: str = ""
    content: str | None = None
    spec: dict | None = field(default=None, hash=False, compare=False)

    @property
    def checksum_kind(self) -> str | None:
        if self.sha256:
            return "sha256"
        if self.md5:
            return "md5"
        if self.sha256_prefix:
            return "sha256 prefix"
        return None


_DIFFAUG_HISTORY = (
    "Host history: first https://hanlab.mit.edu/projects/data-efficient-gans/datasets/"
    "<name>.zip, then https://data-efficient-gans.mit.edu/datasets/<name>.zip; both are "
    "dead (mit-han-lab/data-efficient-gans issue #106, Dec 2024). Since Sept 2024 the "
    "repository README links one Dropbox zip holding all the sets. That link is not "
    "pinned here and no checksum is published, so the sets show as 'unverified'. To "
    "fetch: set COURSE_DIFFAUGMENT_URL to the README's Dropbox link (ending in ?dl=1), or "
    "download the zip in a browser and run `python data_scripts/get_data.py "
    "100-shot-obama --from PATH/TO/zip`. An old per-set zip (e.g. 100-shot-obama.zip) "
    "works with --from too. 256x256 images; no test split: FID is computed against the "
    "training set."
)
_DIFFAUG_LICENCE = (
    "Collected by the DiffAugment authors (Zhao, Liu, Lin, Zhu, Han, NeurIPS 2020) for "
    "research; the AnimalFace sets come from Si & Zhu (2012). Images remain their "
    "owners': research and teaching use, cite the papers."
)


def _diffaugment_entry(name: str, count: int, what: str) -> Entry:
    return Entry(
        name=name, urls=(), filename="data-efficient-gans-datasets.zip", kind="archive",
        dest=name, member=name, size=None, licence=_DIFFAUG_LICENCE,
        url_env="COURSE_DIFFAUGMENT_URL",
        homepage="https://github.com/mit-han-lab/data-efficient-gans",
        notes=f"{count} {what}. " + _DIFFAUG_HISTORY)


_ENTRIES = [
    Entry(
        name="cifar10",
        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",),
        filename="cifar-10-python.tar.gz", kind="archive", dest="cifar-10-batches-py",
        member="cifar-10-batches-py", marker="data_batch_1",
        md5="c58f30108f718f92721af3b95e74349a", size=170_498_071,
        licence="Krizhevsky, 'Learning Multiple Layers of Features from Tiny Images' "
                "(2009). Free for research and teaching; cite the report.",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        notes="The file torchvision's CIFAR10(download=True) fetches, installed in the "
              "layout torchvision reads (data root/cifar-10-batches-py). 50,000 train / "
              "10,000 test images, 32x32, 10 classes. The md5 is the publisher's."),
    _diffaugment_entry("100-shot-obama", 100, "portraits of Barack Obama"),
    _diffaugment_entry("100-shot-grumpy_cat", 100, "photos of Grumpy Cat"),
    _diffaugment_entry("100-shot-panda", 100, "photos of pandas"),
    _diffaugment_entry("AnimalFace-cat", 160, "cat faces (AnimalFace)"),
    _diffaugment_entry("AnimalFace-dog", 389, "dog faces (AnimalFace)"),
    Entry(
        name="horse2zebra",
        urls=("http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip",),
        filename="horse2zebra.zip", kind="archive", dest="horse2zebra",
        member="horse2zebra", marker="trainA", size=116_000_000,
        licence="Images from ImageNet (wild horse and zebra synsets) collected by Zhu, "
                "Park, Isola, Efros for CycleGAN (ICCV 2017). Research use; ImageNet's "
                "terms apply.",
        homepage="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
        notes="trainA 1067 horses, trainB 1334 zebras, testA 120, testB 140, 256x256 "
              "(the CycleGAN docs quote 939/1177, an older version). The authors publish "
              "no checksum: unverified."),
    Entry(
        name="cyclegan-horse2zebra-pretrained",
        urls=("http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"
              "horse2zebra.pth",),
        filename="horse2zebra.pth", kind="file",
        dest="pretrained/cyclegan/horse2zebra.pth", size=45_500_000,
        content="torch-weights",
        spec={"task": "cyclegan", "direction": "A->B (horse to zebra)",
              "models": {"G_A": {"class": "ResnetGenerator",
                                 "kwargs": {"input_nc": 3, "output_nc": 3, "ngf": 64,
                                            "n_blocks": 9}}}},
        licence="Released by the CycleGAN authors with pytorch-CycleGAN-and-pix2pix "
                "(BSD licence).",
        homepage="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
        notes="The official horse->zebra ResnetGenerator (ngf 64, 9 blocks, 11.378M "
              "params, 56.8 GMACs at 256x256). It predates PyTorch 0.4 and carries "
              "running_mean/running_var/num_batches_tracked keys for its InstanceNorm "
              "layers: drop them before a strict load (their issues #262, #461); "
              "course_lib.models.load_cyclegan_generator does. No checksum published: "
              "unverified."),
    Entry(
        name="fid-inception",
        urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
              "pt_inception-2015-12-05-6726825d.pth",),
        filename="pt_inception-2015-12-05-6726825d.pth", kind="file", base="torch",
        dest="hub/checkpoints/pt_inception-2015-12-05-6726825d.pth",
        sha256_prefix="6726825d", size=95_600_000,
        licence="pytorch-fid (Apache-2.0); weights ported from TensorFlow's Inception "
                "graph of 2015-12-05 (Apache-2.0).",
        homepage="https://github.com/mseitzer/pytorch-fid",
        notes="Placed where pytorch-fid loads it through torch hub "
              "($TORCH_HOME/hub/checkpoints/, default ~/.cache/torch/hub/checkpoints/), "
              "so FID works offline afterwards. Verified by the sha256 prefix in its "
              "name (torch hub's convention); the full sha256 is not published by "
              "pytorch-fid."),
]

REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}


# --- looking things up -----------------------------------------------------------------

def get_entry(name: str) -> Entry:
    """The registry entry called ``name``; a :class:`DataError` listing names if none."""
    if name not in REGISTRY:
        close = [n for n in REGISTRY if n.lower() == str(name).lower()]
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}.{hint} Known names: "
                        f"{', '.join(REGISTRY)}")
    return REGISTRY[name]


def _base(entry: Entry, root: Path | None) -> Path:
    if entry.base == "torch":
        return torch_home()
    return Path(root) if root is not None else data_root()


def entry_path(entry: Entry | str, root: str | os.PathLike | None = None) -> Path:
    """Where ``entry`` is (or would be) installed."""
    entry = get_entry(entry) if isinstance(entry, str) else entry
    return _base(entry, None if root is None else Path(root)) / entry.dest


def _looks_complete(entry: Entry, path: Path) -> bool:
    if entry.kind == "file":
        return path.is_file() and path.stat().st_size > 0
    if not path.is_dir():
        return False
    if entry.marker:
        return (path / entry.marker).exists()
    return any(p.is_file() for p in path.rglob("*"))


def _manifest_path(name: str, root: Path | None) -> Path:
    return (Path(root) if root is not None else data_root()) / ".manifest" / f"{name}.json"


def _read_manifest(name: str, root: Path | None) -> dict | None:
    try:
        return json.loads(_manifest_path(name, root).read_text())
    except (OSError, ValueError):
        return None


def _write_manifest(name: str, root: Path | None, record: dict) -> None:
    path = _manifest_path(name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    with os.fdopen(fd, "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _disk_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def is_present(name: str, root: str | os.PathLike | None = None) -> bool:
    """True if ``name`` is installed (complete: installs are atomic renames)."""
    entry = get_entry(name)
    return _looks_complete(entry, entry_path(entry, root))


def status(name: str, root: str | os.PathLike | None = None) -> dict:
    """State of one entry, without downloading anything.

    Returns ``dict(name, present, path, size, verified, check)``: ``path`` where it is
    (or would be), ``size`` in bytes on disk (None if absent), ``verified`` True only if
    a published checksum matched when it was fetched (or by :func:`verify`) and its size
    is unchanged since, ``check`` a short human explanation.
    """
    entry = get_entry(name)
    root = None if root is None else Path(root)
    path = entry_path(entry, root)
    present = _looks_complete(entry, path)
    info = dict(name=name, path=path, present=present, size=None, verified=False,
                check="not fetched")
    if not present:
        return info
    info["size"] = _disk_size(path)
    record = _read_manifest(name, root)
    if record is None or record.get("path") != str(path):
        info["check"] = ("present, not fetched by this tool: run "
                         f"`python -m course_lib data verify {name}`")
    elif record.get("size") is not None and record["size"] != info["size"]:
        info["check"] = "changed since it was fetched: fetch again with --force"
    elif record.get("verified"):
        info["verified"] = True
        info["check"] = f"verified ({record.get('checksum')})"
    else:
        info["check"] = "unverified (no published checksum)"
    return info


# --- fetching ----------------------------------------------------------------------------

def candidate_urls(entry: Entry) -> list[str]:
    """The URLs to try, in order: the environment override first, then the mirrors."""
    urls = list(entry.urls)
    if entry.url_env and os.environ.get(entry.url_env):
        urls.insert(0, os.environ[entry.url_env])
    return urls


def fetch(name: str, root: str | os.PathLike | None = None, force: bool = False, *,
          source: str | os.PathLike | None = None, urls: list[str] | None = None,
          progress: bool = True, retries: int = 3) -> Path:
    """Download, verify and install ``name``; return where it is.

    Does nothing if it is already present (unless ``force``). ``source`` installs a file
    you downloaded yourself (a browser download, a USB stick) instead of downloading;
    ``urls`` replaces the registry's mirrors. A wrong checksum, a broken download, the
    wrong kind of file or an unsafe archive raises :class:`DataError` and leaves nothing
    half-installed. Model weights with a ``spec`` are recorded in the model zoo.
    """
    entry = get_entry(name)
    root = None if root is None else Path(root)
    path = entry_path(entry, root)
    if not force and _looks_complete(entry, path):
        _record_in_zoo(entry, path)
        return path
    if source is not None:
        source = Path(source).expanduser()
        problem = source_problem(source, entry)
        if problem:
            raise DataError(f"--from {source} {problem}")
        urls = [source.resolve().as_uri()]
        progress = False  # a local copy is quick
    elif urls is None:
        urls = candidate_urls(entry)
    if not urls:
        via_env = f"set {entry.url_env} to the link, or " if entry.url_env else ""
        raise DataError(f"no download link is pinned for {name}: its host moved (see "
                        f"`python data_scripts/get_data.py --info {name}`). Find the current "
                        f"link at {entry.homepage}, then {via_env}download the file in a "
                        f"browser and run `python data_scripts/get_data.py {name} --from "
                        f"FILE`")
    _check_base(entry, root)
    try:
        if entry.kind == "file":
            return _fetch_file(entry, root, urls, progress, retries)
        return _fetch_archive(entry, root, urls, progress, retries, force)
    except DataError as exc:
        if source is not None:  # say which flag the bad file came from
            raise DataError(f"--from: {exc}") from None
        raise


def source_problem(source: Path, entry: Entry) -> str | None:
    """None if ``source`` (the file given with --from) can be installed as ``entry``,
    else a phrase saying why not, to follow the path ("is a folder, not a file: ...")."""
    what = "the archive (.zip, .tar.gz) you downloaded" if entry.kind == "archive" else \
        f"the {entry.filename} you downloaded"
    problem = local_file_problem(source)
    if problem:
        return f"{problem}: give {what}"
    if entry.kind == "archive" and sniff_archive(source) is None:
        return (f"is not a zip or tar archive{web_page_hint(source)}: give {what} for "
                f"{entry.name} (see `python data_scripts/get_data.py --info {entry.name}`)")
    return None


def local_file_problem(path: Path) -> str | None:
    """None if ``path`` is an existing regular file, else "is a folder, not a file",
    "does not exist" or "is not a regular file"."""
    if path.is_dir():
        return "is a folder, not a file"
    if not path.exists():
        return "does not exist"
    if not path.is_file():
        return "is not a regular file (a device or pipe)"
    return None


def _check_base(entry: Entry, root: Path | None) -> None:
    """Before downloading: the folder it goes into must be a writable folder."""
    base = _base(entry, root)
    problem = writable_folder_problem(base)
    if problem:
        how = ("set TORCH_HOME to a writable folder" if entry.base == "torch" else
               f"give --root a writable folder, or set {DATA_ENV}")
        raise DataError(f"cannot install {entry.name} into {base}: {problem}. Nothing was "
                        f"downloaded: {how}")


def _record(entry: Entry, root: Path | None, path: Path, url: str, sha256: str,
            md5: str, size: int) -> None:
    checksum = entry.checksum_kind
    _write_manifest(entry.name, root, dict(
        name=entry.name, path=str(path), url=url, sha256=sha256, md5=md5, size=size,
        checksum=checksum, verified=checksum is not None,
        fetched=time.strftime("%Y-%m-%d %H:%M:%S")))


def _record_in_zoo(entry: Entry, path: Path, url: str | None = None,
                   sha256: str | None = None) -> None:
    """Weights with an architecture spec are recorded in the model zoo, so code that
    needs them finds them there (:func:`course_lib.zoo.fetched_path`). A zoo that cannot
    be written costs only the record, never the fetched file."""
    if entry.spec is None:
        return
    if url is None and zoo.fetched_path(entry.name) == path.resolve():
        return  # already recorded
    try:
        zoo.register_fetched(entry.name, path, spec=entry.spec, source=url or "(local copy)",
                             sha256=sha256)
    except (zoo.ZooError, OSError) as exc:
        print(f"note: {entry.name} is installed at {path}, but the model zoo could not "
              f"record it ({exc})", file=sys.stderr)


def _content_check(entry: Entry):
    """The check :func:`download_file` runs before installing a file entry, or None."""
    if entry.content == "torch-weights":
        return torch_weights_problem
    return None


def torch_weights_problem(path: Path) -> str | None:
    """None if ``path`` holds a state dict of tensors readable with weights_only=True,
    else what it is instead."""
    try:
        obj = load_checkpoint(path)
    except Exception as exc:
        # Only the type: torch's message may advise weights_only=False, which must never be
        # suggested for a file from the internet.
        return f"is not a PyTorch weights file (torch.load: {type(exc).__name__})"
    if not isinstance(obj, Mapping) or not any(isinstance(v, torch.Tensor)
                                               for v in obj.values()):
        return "is a PyTorch file but not a state dict of weights"
    return None


def _fetch_file(entry: Entry, root: Path | None, urls: list[str], progress: bool,
                retries: int) -> Path:
    dest = entry_path(entry, root)
    got = download_file(urls, dest, sha256=entry.sha256, md5=entry.md5,
                        sha256_prefix=entry.sha256_prefix, progress=progress,
                        retries=retries, check=_content_check(entry))
    _record(entry, root, dest, got.url, got.sha256, got.md5, got.size)
    _record_in_zoo(entry, dest, got.url, got.sha256)
    return dest


def _fetch_archive(entry: Entry, root: Path | None, urls: list[str], progress: bool,
                   retries: int, force: bool) -> Path:
    base = _base(entry, root)
    work = base / ".downloads"
    archive = work / entry.filename
    got = download_file(urls, archive, sha256=entry.sha256, md5=entry.md5,
                        sha256_prefix=entry.sha256_prefix, progress=progress,
                        retries=retries)
    staging = work / f"{entry.filename}.contents"
    try:
        if sniff_archive(archive) is None:  # name the link, not our scratch file
            raise DataError(f"the file from {got.url} is not a zip or tar archive"
                            f"{web_page_hint(archive)}. Nothing was installed: check the "
                            f"link, or download the file in a browser and use --from FILE")
        extract_archive(archive, staging)
        # The name the file had at its origin (a per-set zip passed with --from).
        origin = Path(urllib.parse.urlparse(got.url).path).stem
        # One archive may hold several entries (the DiffAugment zip holds every set).
        siblings = [e for e in REGISTRY.values() if e.filename == entry.filename]
        installed = []
        for e in siblings:
            found = _find_member(e, staging, origin)
            target = base / e.dest
            if found is None or (e is not entry and not force
                                 and _looks_complete(e, target)):
                continue
            _move_into_place(found, target)
            _record(e, root, target, got.url, got.sha256, got.md5, _disk_size(target))
            installed.append(e.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)  # extracted: the archive is only dead weight
    if entry.name not in installed:
        raise DataError(f"{archive.name} from {got.url} does not contain {entry.name!r} "
                        f"(looked for a folder named {entry.member!r}). It may be a "
                        f"different archive: check the link")
    return base / entry.dest


def _find_member(entry: Entry, staging: Path, origin: str) -> Path | None:
    """The folder in an extracted archive that holds ``entry``, or None."""
    if not staging.is_dir():
        return None
    want = (entry.member or Path(entry.dest).name).lower()
    for path in sorted(staging.rglob("*"), key=lambda p: len(p.parts)):
        if path.is_dir() and path.name.lower() == want:
            return path
        # A zip of zips: unpack the inner one next to it and use that.
        if path.is_file() and path.name.lower() == f"{want}.zip":
            return extract_archive(path, path.with_suffix(""))
    # A single-set archive whose contents sit at the top (the old per-set zips).
    if origin.lower() == want or (entry.marker and (staging / entry.marker).exists()):
        return staging
    return None


def _move_into_place(found: Path, target: Path) -> None:
    """Rename (same disk: both under the data root), so the target appears complete;
    a previous copy (--force) is swapped out only at the last moment."""
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_dir(found, target)


# --- verifying ---------------------------------------------------------------------------

def _check_cifar_files(path: Path) -> tuple[bool, str]:
    """CIFAR-10 batch files against torchvision's published per-file md5s."""
    from torchvision.datasets import CIFAR10

    bad = []
    for filename, md5 in CIFAR10.train_list + CIFAR10.test_list:
        f = path / filename
        if not f.is_file() or file_digests(f)[1] != md5:
            bad.append(filename)
    if bad:
        return False, f"md5 mismatch or missing: {', '.join(bad)}"
    return True, "md5 of every batch file (torchvision's list)"


_CONTENT_CHECKS = {"cifar10": _check_cifar_files}


def verify(name: str, root: str | os.PathLike | None = None) -> dict:
    """Check ``name`` on disk again, record the result, and return :func:`status`.

    A file is re-hashed against its published checksum. CIFAR-10's extracted files are
    checked against torchvision's md5 list (so a copy torchvision made counts too).
    Other extracted folders can only be checked for completeness: the archive is gone.
    """
    entry = get_entry(name)
    root = None if root is None else Path(root)
    path = entry_path(entry, root)
    if not _looks_complete(entry, path):
        raise DataError(f"{name} is not present at {path}: run "
                        f"`python data_scripts/get_data.py {name}` first")
    record = _read_manifest(name, root) or {}
    if entry.kind == "file":
        sha256, md5 = file_digests(path)
        want = {"sha256": entry.sha256, "md5": entry.md5}
        got = {"sha256": sha256, "md5": md5}
        if entry.checksum_kind in ("sha256", "md5"):
            ok = got[entry.checksum_kind] == want[entry.checksum_kind].lower()
        elif entry.checksum_kind == "sha256 prefix":
            ok = sha256.startswith(entry.sha256_prefix)
        else:
            ok = False
        if entry.checksum_kind and not ok:
            _manifest_path(name, root).unlink(missing_ok=True)
            raise DataError(f"{path} does not match its published {entry.checksum_kind} "
                            f"(got sha256 {sha256}, md5 {md5}): the file is damaged or a "
                            f"different version. Fetch it again with --force")
        wrong = _content_check(entry)(path) if _content_check(entry) else None
        if wrong:
            _manifest_path(name, root).unlink(missing_ok=True)
            raise DataError(f"{path} {wrong}: it is the wrong file or damaged. Delete it "
                            f"and fetch {name} again")
        _record(entry, root, path, record.get("url", "(local copy)"), sha256, md5,
                path.stat().st_size)
        _record_in_zoo(entry, path, record.get("url", "(local copy)"), sha256)
    elif name in _CONTENT_CHECKS:
        ok, how = _CONTENT_CHECKS[name](path)
        if not ok:
            _manifest_path(name, root).unlink(missing_ok=True)
            raise DataError(f"{name} at {path} failed its check: {how}. Delete the folder "
                            f"and fetch it again")
        _write_manifest(name, root, dict(record, name=name, path=str(path), verified=True,
                                         checksum=how, size=_disk_size(path)))
    elif not record:
        _write_manifest(name, root, dict(name=name, path=str(path), verified=False,
                                         checksum=None, size=_disk_size(path)))
    return status(name, root)

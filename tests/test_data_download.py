"""download() and the registry against a local HTTP server on 127.0.0.1.

The server serves bytes the tests make, and can misbehave on purpose: lie about the
length and close early (truncation), fail the first request (retry), answer 404/503.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import subprocess
import sys
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from course_lib.cli import main as course_main
from course_lib.data import (REGISTRY, DataError, Entry, data_root, download, entry_path,
                             fetch, few_shot, is_present, status, unpaired, verify)
from course_lib.data import downloads as download_module
from course_lib.data.cli import cmd_list, get_data_main
from course_lib.data.paths import torch_home

REPO = Path(__file__).resolve().parents[1]


# --- the server ----------------------------------------------------------------------------

class Handler(BaseHTTPRequestHandler):
    """Routes: path -> (behaviour, body). Behaviours: ok, truncate, flaky, 503."""

    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits[self.path] += 1
            hit = server.hits[self.path]
        behaviour, body = server.routes.get(self.path, ("404", b""))
        if behaviour == "404":
            self.send_error(404, "Not Found")
        elif behaviour == "503":
            self.send_error(503, "Service Unavailable")
        elif behaviour == "truncate" or (behaviour == "flaky" and hit == 1):
            # Promise the whole body, send half, hang up.
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.routes, httpd.hits, httpd.lock = {}, Counter(), threading.Lock()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"

    def serve(path: str, body: bytes, behaviour: str = "ok") -> str:
        httpd.routes[path] = (behaviour, body)
        return httpd.url + path

    httpd.serve = serve
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Every test gets its own data root and torch home, and no waiting between retries."""
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COURSE_DIFFAUGMENT_URL", raising=False)
    monkeypatch.setattr(download_module, "RETRY_BACKOFF_S", 0.0)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def partials(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*") if p.name.endswith(".part")] \
        if folder.exists() else []


BODY = bytes(range(256)) * 800  # 200 KB: several chunks, so progress bars really update


# --- download() ---------------------------------------------------------------------------

def test_download_verifies_and_renames_into_place(server, tmp_path):
    url = server.serve("/good.bin", BODY)
    dest = tmp_path / "dl" / "good.bin"
    assert download(url, dest, sha256=sha(BODY), progress=True) == dest
    assert dest.read_bytes() == BODY
    assert partials(dest.parent) == []


def test_download_accepts_the_publishers_md5(server, tmp_path):
    url = server.serve("/md5.bin", BODY)
    dest = download(url, tmp_path / "md5.bin", md5=md5(BODY), progress=False)
    assert dest.read_bytes() == BODY


def test_wrong_checksum_names_url_expected_and_got(server, tmp_path):
    url = server.serve("/wrong.bin", BODY)
    dest = tmp_path / "wrong.bin"
    with pytest.raises(DataError) as err:
        download(url, dest, sha256="0" * 64, progress=False)
    message = str(err.value)
    assert url in message and "0" * 64 in message and sha(BODY) in message
    assert not dest.exists()
    assert partials(tmp_path) == []


def test_wrong_md5_is_refused_too(server, tmp_path):
    url = server.serve("/wrong-md5.bin", BODY)
    with pytest.raises(DataError, match=md5(BODY)):
        download(url, tmp_path / "x.bin", md5="f" * 32, progress=False)
    assert not (tmp_path / "x.bin").exists()


def test_failed_download_leaves_the_previous_copy_untouched(server, tmp_path):
    dest = tmp_path / "keep.bin"
    dest.write_bytes(b"the good old copy")
    url = server.serve("/changed.bin", BODY)
    with pytest.raises(DataError):
        download(url, dest, sha256=sha(b"something else"), progress=False)
    assert dest.read_bytes() == b"the good old copy"
    assert partials(tmp_path) == []


def test_truncated_transfer_is_retried_then_refused(server, tmp_path):
    url = server.serve("/truncated.bin", BODY, "truncate")
    dest = tmp_path / "truncated.bin"
    with pytest.raises(DataError, match="truncated") as err:
        download(url, dest, retries=2, progress=True)  # no checksum: length alone catches it
    assert "3 attempts" in str(err.value)
    assert server.hits["/truncated.bin"] == 3
    assert not dest.exists()
    assert partials(tmp_path) == []


def test_retry_after_a_failed_first_request_succeeds(server, tmp_path):
    url = server.serve("/flaky.bin", BODY, "flaky")
    dest = download(url, tmp_path / "flaky.bin", sha256=sha(BODY), retries=3,
                    progress=False)
    assert dest.read_bytes() == BODY
    assert server.hits["/flaky.bin"] == 2


def test_server_errors_are_retried(server, tmp_path):
    url = server.serve("/busy.bin", b"", "503")
    with pytest.raises(DataError, match="503"):
        download(url, tmp_path / "busy.bin", retries=1, progress=False)
    assert server.hits["/busy.bin"] == 2


def test_404_is_not_retried(server, tmp_path):
    with pytest.raises(DataError, match="404"):
        download(server.url + "/missing.bin", tmp_path / "m.bin", retries=3, progress=False)
    assert server.hits["/missing.bin"] == 1


def test_mirrors_are_tried_in_order(server, tmp_path):
    good = server.serve("/mirror2.bin", BODY)
    dead_port = "http://127.0.0.1:9/nothing-listens-here.bin"
    urls = [server.url + "/mirror1-gone.bin", dead_port, good]
    dest = download(urls, tmp_path / "m.bin", sha256=sha(BODY), retries=0, progress=False)
    assert dest.read_bytes() == BODY


def test_all_mirrors_failing_lists_each_failure(server, tmp_path):
    urls = [server.url + "/gone-a.bin", server.serve("/bad-b.bin", b"x")]
    with pytest.raises(DataError) as err:
        download(urls, tmp_path / "m.bin", sha256=sha(b"y"), retries=0, progress=False)
    message = str(err.value)
    assert "2 mirrors" in message and "gone-a.bin" in message and "bad-b.bin" in message


def test_file_urls_work(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(BODY)
    dest = download(src.as_uri(), tmp_path / "copy.bin", sha256=sha(BODY), progress=False)
    assert dest.read_bytes() == BODY


# --- paths ---------------------------------------------------------------------------------

def test_data_root_and_torch_home_follow_the_environment(tmp_path, monkeypatch):
    assert data_root() == tmp_path / "data"
    monkeypatch.delenv("COURSE_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_root() == tmp_path / "xdg" / "efficient-gans-workbook" / "data"
    monkeypatch.delenv("TORCH_HOME")
    assert torch_home() == tmp_path / "xdg" / "torch"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert data_root() == Path.home() / ".cache" / "efficient-gans-workbook" / "data"


def test_fid_inception_goes_where_pytorch_fid_looks(tmp_path):
    import torch.hub

    path = entry_path("fid-inception")
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / \
        "pt_inception-2015-12-05-6726825d.pth"
    # torch hub (which pytorch-fid uses) reads from the same folder.
    assert Path(torch.hub.get_dir()) / "checkpoints" == path.parent


# --- the registry ----------------------------------------------------------------------------

def test_registry_has_the_public_names_and_honest_checksums():
    assert set(REGISTRY) == {
        "cifar10", "100-shot-obama", "100-shot-grumpy_cat", "100-shot-panda",
        "AnimalFace-cat", "AnimalFace-dog", "horse2zebra",
        "cyclegan-horse2zebra-pretrained", "fid-inception"}
    assert REGISTRY["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"
    assert REGISTRY["fid-inception"].sha256_prefix == "6726825d"
    for name in ("100-shot-obama", "horse2zebra", "cyclegan-horse2zebra-pretrained"):
        assert REGISTRY[name].sha256 is None and REGISTRY[name].md5 is None  # unpublished
    notes = REGISTRY["100-shot-obama"].notes
    assert "data-efficient-gans.mit.edu" in notes and "hanlab.mit.edu" in notes
    assert "Dropbox" in notes
    for entry in REGISTRY.values():
        assert entry.licence and entry.kind in ("archive", "file")


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(DataError, match="cifar10.*horse2zebra"):
        fetch("cifar-10")


def test_diffaugment_sets_without_a_link_say_what_to_do():
    with pytest.raises(DataError, match="--from"):
        fetch("100-shot-panda")
    assert not is_present("100-shot-panda")


def put_entry(monkeypatch, **fields) -> Entry:
    entry = Entry(**{"licence": "test data", "size": None, **fields})
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    return entry


def test_fetched_file_shows_as_present_and_verified(server, monkeypatch):
    url = server.serve("/weights.pth", BODY)
    put_entry(monkeypatch, name="toy-weights", urls=(url,), filename="weights.pth",
              kind="file", dest="weights/toy.pth", sha256=sha(BODY))
    assert status("toy-weights")["present"] is False
    path = fetch("toy-weights", progress=False)
    assert path == data_root() / "weights" / "toy.pth" and path.read_bytes() == BODY
    st = status("toy-weights")
    assert st["present"] and st["verified"] and st["size"] == len(BODY)
    assert is_present("toy-weights")
    # Already there: no second download.
    fetch("toy-weights")
    assert server.hits["/weights.pth"] == 1


def test_entry_without_published_checksum_is_present_but_unverified(server, monkeypatch):
    url = server.serve("/nochecksum.pth", BODY)
    put_entry(monkeypatch, name="toy-unverified", urls=(url,), filename="n.pth",
              kind="file", dest="n.pth")
    fetch("toy-unverified", progress=False)
    st = status("toy-unverified")
    assert st["present"] and not st["verified"] and "unverified" in st["check"]
    out = io.StringIO()
    cmd_list(out=out)
    line = next(l for l in out.getvalue().splitlines() if l.startswith("toy-unverified"))
    assert "present" in line and "unverified" in line


def test_sha256_prefix_checks_torch_hub_style_names(server, monkeypatch, tmp_path):
    url = server.serve("/hub.pth", BODY)
    put_entry(monkeypatch, name="toy-hub", urls=(url,), filename="hub.pth", kind="file",
              base="torch", dest="hub/checkpoints/hub.pth", sha256_prefix=sha(BODY)[:8])
    path = fetch("toy-hub", progress=False)
    assert path == tmp_path / "torch" / "hub" / "checkpoints" / "hub.pth"
    assert status("toy-hub")["verified"]
    put_entry(monkeypatch, name="toy-hub-bad", urls=(url,), filename="hub.pth",
              kind="file", base="torch", dest="hub/checkpoints/bad.pth",
              sha256_prefix="deadbeef")
    with pytest.raises(DataError, match="deadbeef"):
        fetch("toy-hub-bad", progress=False)
    assert not is_present("toy-hub-bad")


def test_wrong_checksum_in_registry_leaves_nothing_present(server, monkeypatch):
    url = server.serve("/tampered.pth", BODY)
    put_entry(monkeypatch, name="toy-tampered", urls=(url,), filename="t.pth", kind="file",
              dest="t.pth", sha256=sha(b"what the publisher released"))
    with pytest.raises(DataError, match="checksum mismatch"):
        fetch("toy-tampered", progress=False)
    st = status("toy-tampered")
    assert not st["present"] and not st["verified"]
    assert partials(data_root()) == []


def test_verify_catches_a_file_damaged_after_fetching(server, monkeypatch):
    url = server.serve("/later.pth", BODY)
    put_entry(monkeypatch, name="toy-later", urls=(url,), filename="l.pth", kind="file",
              dest="l.pth", sha256=sha(BODY))
    path = fetch("toy-later", progress=False)
    assert verify("toy-later")["verified"]
    path.write_bytes(BODY[:-10])
    assert not status("toy-later")["verified"]  # size changed: no longer trusted
    with pytest.raises(DataError, match="damaged"):
        verify("toy-later")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def png_bytes(color, size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def test_fetched_archive_is_extracted_verified_and_cleaned_up(server, monkeypatch):
    body = zip_bytes({"toyset/img0.png": png_bytes("red"), "toyset/sub/img1.png":
                      png_bytes("blue")})
    url = server.serve("/toyset.zip", body)
    put_entry(monkeypatch, name="toyset", urls=(url,), filename="toyset.zip",
              kind="archive", dest="toyset", member="toyset", sha256=sha(body))
    path = fetch("toyset", progress=False)
    assert (path / "img0.png").is_file() and (path / "sub" / "img1.png").is_file()
    st = status("toyset")
    assert st["present"] and st["verified"]
    downloads = data_root() / ".downloads"
    assert not downloads.exists() or list(downloads.iterdir()) == []  # archive removed


def test_force_replaces_an_installed_archive(server, monkeypatch):
    url = server.serve("/v1.zip", zip_bytes({"ver/one.png": png_bytes("red")}))
    put_entry(monkeypatch, name="toy-ver", urls=(url,), filename="ver.zip",
              kind="archive", dest="ver")
    fetch("toy-ver", progress=False)
    server.serve("/v1.zip", zip_bytes({"ver/two.png": png_bytes("blue")}))
    assert (fetch("toy-ver", progress=False) / "one.png").exists()  # present: kept
    path = fetch("toy-ver", force=True, progress=False)
    assert [p.name for p in path.iterdir()] == ["two.png"]
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".ver")] == []


def test_archive_that_is_not_an_archive_installs_nothing(server, monkeypatch):
    url = server.serve("/page.zip", b"<!DOCTYPE html><html>log in</html>")
    put_entry(monkeypatch, name="toy-page", urls=(url,), filename="page.zip",
              kind="archive", dest="toy-page")
    with pytest.raises(DataError, match="web page"):
        fetch("toy-page", progress=False)
    assert not is_present("toy-page")
    assert not (data_root() / ".downloads" / "page.zip").exists()


def test_zip_slip_from_the_network_installs_nothing(server, monkeypatch, tmp_path):
    body = zip_bytes({"slip/ok.png": png_bytes("red"), "../../evil.txt": b"x"})
    url = server.serve("/slip.zip", body)
    put_entry(monkeypatch, name="toy-slip", urls=(url,), filename="slip.zip",
              kind="archive", dest="slip")
    with pytest.raises(DataError, match="outside the target"):
        fetch("toy-slip", progress=False)
    assert not is_present("toy-slip")
    assert not list(tmp_path.rglob("evil.txt"))


def test_one_zip_holding_all_diffaugment_sets_installs_each(server, monkeypatch):
    """The authors' current layout: one zip with every set; the link comes from the
    environment since we cannot pin it. Fetching one set installs all of them, and the
    few-shot loader then serves the real images."""
    members = {f"datasets/100-shot-obama/img/{i:03d}.png": png_bytes((i, 80, 120))
               for i in range(6)}
    members.update({f"datasets/100-shot-panda/{i}.png": png_bytes((20, i, 20))
                     for i in range(4)})
    url = server.serve("/all-sets.zip?dl=1", zip_bytes(members))
    monkeypatch.setenv("COURSE_DIFFAUGMENT_URL", url)
    fetch("100-shot-obama", progress=False)
    assert is_present("100-shot-obama") and is_present("100-shot-panda")
    assert not is_present("100-shot-grumpy_cat")
    st = status("100-shot-panda")
    assert st["present"] and not st["verified"]  # no published checksum: say so
    ds = few_shot("100-shot-obama", size=32)
    assert not ds.is_embedded and len(ds) == 6 and "real" in ds.source
    assert ds[0][0].shape == (3, 32, 32)


def test_a_per_set_zip_can_be_installed_from_a_local_file(tmp_path):
    """An old per-set zip (images at the top level), passed with --from."""
    zipped = tmp_path / "AnimalFace-cat.zip"
    zipped.write_bytes(zip_bytes({f"{i}.png": png_bytes((i, i, i)) for i in range(3)}))
    assert get_data_main(["AnimalFace-cat", "--from", str(zipped), "--no-progress"]) == 0
    assert len(few_shot("AnimalFace-cat", size=16)) == 3
    assert zipped.exists()  # the user's own copy is left alone


def test_real_horse2zebra_feeds_the_unpaired_loader(server, monkeypatch):
    members = {}
    for split, n in (("trainA", 3), ("trainB", 5), ("testA", 2), ("testB", 2)):
        for i in range(n):
            members[f"horse2zebra/{split}/{i}.jpg"] = png_bytes((40 * i, 100, 50))
    body = zip_bytes(members)
    url = server.serve("/horse2zebra.zip", body)
    monkeypatch.setitem(REGISTRY, "horse2zebra",
                        dataclasses.replace(REGISTRY["horse2zebra"], urls=(url,)))
    fetch("horse2zebra", progress=False)
    data = unpaired("horse2zebra", "train", size=16)
    assert not data.is_embedded and len(data) == 5
    assert len(data.domain_a) == 3 and len(data.domain_b) == 5


# --- command line --------------------------------------------------------------------------

def test_course_cli_list_and_fetch(server, monkeypatch, capsys):
    url = server.serve("/cli.pth", BODY)
    put_entry(monkeypatch, name="toy-cli", urls=(url,), filename="c.pth", kind="file",
              dest="c.pth", sha256=sha(BODY))
    assert course_main(["data", "fetch", "toy-cli", "--no-progress"]) == 0
    assert course_main(["data", "list"]) == 0
    out = capsys.readouterr().out
    line = next(l for l in out.splitlines() if l.startswith("toy-cli "))
    assert "present" in line and "verified" in line and str(data_root()) in line
    assert course_main(["data", "verify", "toy-cli"]) == 0
    assert course_main(["data", "fetch", "nope"]) == 1  # DataError -> message, exit 1
    assert "unknown dataset" in capsys.readouterr().err


def test_get_data_script_lists_in_a_fresh_process(tmp_path):
    env = {**os.environ, "COURSE_DATA": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, str(REPO / "data_scripts" / "get_data.py"),
                           "--list"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    for name in REGISTRY:
        assert name in done.stdout
    assert "missing" in done.stdout

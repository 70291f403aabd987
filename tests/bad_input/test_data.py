"""Bad input to the data layer and get_data.py (issue #11).

What the project promises: a wrong --url, --from or --root ends in one line that names
the flag and says what to do, never a traceback; a wrong file is never installed (and
never as "unverified" weights); a checksum mismatch on a file of your own does not blame
a server; image sizes are bounded. Each test reproduces a case that failed before the
fix. No network: local files and a server on 127.0.0.1.
"""
import gzip
import hashlib
import io
import os
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from PIL import Image

from course_lib import zoo
from course_lib.cli import main as course_main
from course_lib.data import (DataError, data_root, fetch, get_dataset, is_present,
                             load_image_folder, verify)
from course_lib.data import downloads as download_module
from course_lib.data.cli import get_data_main


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "zoo"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("COURSE_DIFFAUGMENT_URL", raising=False)
    monkeypatch.setattr(download_module, "RETRY_BACKOFF_S", 0.0)


@pytest.fixture(scope="module")
def server():
    """127.0.0.1 serving ``server.files[path] = bytes``; counts requests per path."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
            body = self.server.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.files, httpd.hits = {}, {}
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def fails_cleanly(argv, capsys, flag) -> str:
    """get_data.py ``argv`` must stop with a message naming ``flag``; returns it."""
    try:
        code = get_data_main(argv)
    except SystemExit as stop:  # argparse: a usage error
        code = stop.code
    assert code not in (0, None)
    captured = capsys.readouterr()
    message = captured.err + captured.out
    assert flag in message and "Traceback" not in message
    return message


def png(color="red", size=(40, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def state_dict_bytes(tensors=None) -> bytes:
    buf = io.BytesIO()
    torch.save(tensors or {"model.1.weight": torch.ones(2, 3)}, buf)
    return buf.getvalue()


# --- --url ------------------------------------------------------------------------------------

@pytest.mark.parametrize("front", ["get_data", "course_lib"])
def test_a_path_given_as_url_says_use_from(tmp_path, capsys, front):
    """Reproduction: `--url /etc/passwd` gave a traceback (ValueError: unknown url type)."""
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0")
    argv = ["horse2zebra", "--url", str(path)]
    if front == "course_lib":
        assert course_main(["data", "fetch", *argv]) == 2  # a usage error, as argparse's
        message = capsys.readouterr().err
        assert "--url" in message and "Traceback" not in message
    else:
        message = fails_cleanly(argv, capsys, "--url")
    assert "not a URL" in message and f"--from {path}" in message
    assert not is_present("horse2zebra")


def test_a_malformed_url_is_refused_while_parsing(capsys):
    """Reproduction: `--url "http://[::1"` gave a traceback (ValueError: Invalid IPv6 URL)."""
    message = fails_cleanly(["horse2zebra", "--url", "http://[::1"], capsys, "--url")
    assert "not a valid URL" in message


@pytest.mark.parametrize("url", ["/etc/passwd", "http://[::1", "gopher://example.org/x",
                                 "https://", "http://127.0.0.1:notaport/x.zip"])
def test_the_library_refuses_bad_urls_with_a_data_error(url):
    with pytest.raises(DataError, match="URL"):
        fetch("horse2zebra", urls=[url], progress=False, retries=0)


# --- --root -------------------------------------------------------------------------------------

def test_a_root_that_is_a_file_is_refused_while_parsing(tmp_path, capsys):
    """Reproduction: `--root FILE` gave a traceback (NotADirectoryError on .downloads)."""
    root = tmp_path / "root.txt"
    root.write_text("mine")
    for argv in (["horse2zebra", "--root", str(root)], ["--list", "--root", str(root)],
                 ["--list", "--root", str(root / "under")]):
        message = fails_cleanly(argv, capsys, "--root")
        assert "is a file, not a folder" in message
    assert root.read_text() == "mine"


def test_the_library_checks_the_root_before_downloading(server, tmp_path):
    server.files["/h2z.zip"] = b"never fetched"
    root = tmp_path / "root.txt"
    root.write_text("mine")
    with pytest.raises(DataError, match="is a file, not a folder"):
        fetch("horse2zebra", root=root, urls=[server.url + "/h2z.zip"], progress=False)
    assert server.hits.get("/h2z.zip") is None and root.read_text() == "mine"


def test_a_data_root_that_is_a_file_is_reported_by_list(tmp_path, monkeypatch, capsys):
    root = tmp_path / "data.txt"
    root.write_text("x")
    monkeypatch.setenv("COURSE_DATA", str(root))
    assert get_data_main(["--list"]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err


# --- --from -------------------------------------------------------------------------------------

def test_from_a_folder_says_it_is_a_folder(tmp_path, capsys):
    """Reproduction: `--from DIR` said "no such file"."""
    folder = tmp_path / "Downloads"
    folder.mkdir()
    message = fails_cleanly(["horse2zebra", "--from", str(folder)], capsys, "--from")
    assert "is a folder, not a file" in message
    with pytest.raises(DataError, match="is a folder, not a file"):
        fetch("horse2zebra", source=folder)


def test_from_a_non_archive_names_the_file_given(tmp_path, capsys):
    """Reproduction: the message named an internal .downloads/horse2zebra.zip."""
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    message = fails_cleanly(["horse2zebra", "--from", str(notes)], capsys, "--from")
    assert str(notes) in message and ".downloads" not in message
    assert "not a zip or tar archive" in message
    assert notes.read_text() == "hello" and not is_present("horse2zebra")


def test_a_checksum_mismatch_on_a_local_file_does_not_blame_a_server(tmp_path, capsys):
    """Reproduction: a wrong file given with --from was reported as "The server may be
    serving a different or damaged file"."""
    fake = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(fake, "w:gz") as tf:
        member = tarfile.TarInfo("cifar-10-batches-py/data_batch_1")
        member.size = 3
        tf.addfile(member, io.BytesIO(b"abc"))
    message = fails_cleanly(["cifar10", "--from", str(fake)], capsys, "--from")
    assert "checksum mismatch" in message and str(fake) in message
    assert "server" not in message.lower()
    assert not is_present("cifar10") and fake.exists()


def test_a_checksum_mismatch_from_a_server_still_says_so(server, monkeypatch):
    server.files["/c.tar.gz"] = gzip.compress(b"not the real thing")
    with pytest.raises(DataError, match="server"):
        fetch("cifar10", urls=[server.url + "/c.tar.gz"], progress=False)


def test_a_text_file_is_not_installed_as_pretrained_weights(tmp_path, capsys):
    """Reproduction: a text file given with --from was installed as horse2zebra.pth and
    marked "unverified"."""
    notes = tmp_path / "horse2zebra.pth"
    notes.write_text("this is not a model")
    message = fails_cleanly(["cyclegan-horse2zebra-pretrained", "--from", str(notes)],
                            capsys, "--from")
    assert "not a PyTorch weights file" in message
    assert not is_present("cyclegan-horse2zebra-pretrained")
    assert zoo.fetched_path("cyclegan-horse2zebra-pretrained") is None


def test_an_unsafe_pickle_is_refused_without_advising_weights_only_false(tmp_path, capsys):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    evil = tmp_path / "horse2zebra.pth"
    torch.save({"model.1.weight": Evil()}, evil)
    message = fails_cleanly(["cyclegan-horse2zebra-pretrained", "--from", str(evil)],
                            capsys, "--from")
    assert "weights_only=False" not in message
    assert not is_present("cyclegan-horse2zebra-pretrained")


def test_a_web_page_served_as_weights_is_not_installed(server, monkeypatch):
    server.files["/h2z.pth"] = b"<!DOCTYPE html><html>please log in</html>"
    with pytest.raises(DataError, match="not a PyTorch weights file"):
        fetch("cyclegan-horse2zebra-pretrained", urls=[server.url + "/h2z.pth"],
              progress=False)
    assert not is_present("cyclegan-horse2zebra-pretrained")


def test_fetched_pretrained_weights_are_recorded_in_the_zoo(server):
    body = state_dict_bytes()
    server.files["/horse2zebra.pth"] = body
    path = fetch("cyclegan-horse2zebra-pretrained", urls=[server.url + "/horse2zebra.pth"],
                 progress=False)
    assert zoo.fetched_path("cyclegan-horse2zebra-pretrained") == path.resolve()
    meta = zoo.fetched_entry("cyclegan-horse2zebra-pretrained")
    g = meta["spec"]["models"]["G_A"]
    assert g["class"] == "ResnetGenerator"
    assert g["kwargs"]["ngf"] == 64 and g["kwargs"]["n_blocks"] == 9
    assert meta["task"] == "cyclegan" and meta["sha256"] == hashlib.sha256(body).hexdigest()
    assert meta["source"].endswith("/horse2zebra.pth")


def test_weights_fetched_before_the_zoo_knew_them_are_recorded_when_fetched_again(
        tmp_path, monkeypatch):
    """A file installed by 0.2.0 (no zoo record): fetching again records it, without a
    download; so does verify."""
    path = data_root() / "pretrained" / "cyclegan" / "horse2zebra.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(state_dict_bytes())
    assert zoo.fetched_path("cyclegan-horse2zebra-pretrained") is None
    assert fetch("cyclegan-horse2zebra-pretrained") == path
    assert zoo.fetched_path("cyclegan-horse2zebra-pretrained") == path.resolve()
    monkeypatch.setenv("COURSE_CACHE", str(tmp_path / "zoo2"))
    verify("cyclegan-horse2zebra-pretrained")
    assert zoo.fetched_path("cyclegan-horse2zebra-pretrained") == path.resolve()


def test_verify_catches_a_text_file_installed_by_an_older_version():
    path = data_root() / "pretrained" / "cyclegan" / "horse2zebra.pth"
    path.parent.mkdir(parents=True)
    path.write_text("this is not a model")
    with pytest.raises(DataError, match="not a PyTorch weights file"):
        verify("cyclegan-horse2zebra-pretrained")
    assert path.exists()  # the user's file is reported, not deleted


def test_an_archive_link_serving_a_page_names_the_link_not_a_scratch_file(server, monkeypatch):
    server.files["/page.zip"] = b"<!DOCTYPE html><html>log in</html>"
    with pytest.raises(DataError) as err:
        fetch("horse2zebra", urls=[server.url + "/page.zip"], progress=False)
    assert "/page.zip" in str(err.value) and ".downloads" not in str(err.value)
    assert "web page" in str(err.value)


# --- --list shows both roots ----------------------------------------------------------------

def test_list_shows_the_data_root_and_the_zoo(capsys):
    assert get_data_main(["--list"]) == 0
    out = capsys.readouterr().out
    assert f"data root: {data_root()}" in out and f"model zoo: {zoo.cache_dir()}" in out


# --- image folders ----------------------------------------------------------------------------

@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.png").write_bytes(png())
    return folder


@pytest.mark.parametrize("size", [30000, 1025, 7, 0, -32, True, 32.0, "64"])
def test_image_size_out_of_bounds_is_refused_before_decoding(photos, size):
    """Reproduction: size=30000 called every image "corrupt: MemoryError"; size=True gave
    1x1 images."""
    with pytest.raises(DataError, match="8 to 1024"):
        load_image_folder(photos, size)


@pytest.mark.parametrize("size", [8, 1024])
def test_image_size_bounds_are_inclusive(photos, size):
    assert load_image_folder(photos, size)[0][0].shape == (3, size, size)


def test_data_that_is_a_file_says_so(photos):
    """Reproduction: `--data FILE` said the file "does not exist"."""
    with pytest.raises(DataError) as err:
        get_dataset(photos / "a.png", size=32)
    assert "is a file, not a folder" in str(err.value)
    assert "does not exist" not in str(err.value)

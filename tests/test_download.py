"""Dataset download against a real HTTP server on 127.0.0.1: good and bad SHA-256."""

from __future__ import annotations

import hashlib
import http.server
import threading
from functools import partial

import pytest

from crossrt import fetch as fetch_module
from crossrt.config import DataConfig
from crossrt.errors import DataError
from crossrt.fetch import fetch, resolve

from conftest import write_dataset


@pytest.fixture
def server(tmp_path):
    """A static file server for a folder of gzipped IDX files; yields (base_url, folder, hits)."""
    folder = write_dataset(tmp_path / "served", n_train=30, n_test=20, gz=True)
    hits = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(folder)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", folder, hits
    httpd.shutdown()
    httpd.server_close()


def _hashes(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_download_verifies_and_caches(server, tmp_path, monkeypatch):
    url, folder, hits = server
    monkeypatch.setitem(fetch_module.SHA256, "mnist", _hashes(folder))
    dest = fetch("mnist", tmp_path / "cache", urls=(url,))
    assert _hashes(dest) == _hashes(folder)
    assert len(hits) == 4
    fetch("mnist", dest, urls=(url,))  # already there with the right hash: nothing downloaded
    assert len(hits) == 4
    assert not list(dest.glob(".*.tmp"))


def test_bad_checksum_keeps_nothing(server, tmp_path, monkeypatch):
    url, folder, _ = server
    wrong = {name: "0" * 64 for name in _hashes(folder)}
    monkeypatch.setitem(fetch_module.SHA256, "mnist", wrong)
    dest = tmp_path / "cache"
    with pytest.raises(DataError, match=r"could not download MNIST .*SHA-256 mismatch"):
        fetch("mnist", dest, urls=(url,))
    assert not dest.exists()  # neither the bad file, nor a temp file, nor the folder the download made is left


def test_second_mirror_used_when_first_fails(server, tmp_path, monkeypatch):
    url, folder, hits = server
    monkeypatch.setitem(fetch_module.SHA256, "mnist", _hashes(folder))
    dest = fetch("mnist", tmp_path / "cache", urls=(url + "missing/", url))
    assert len(list(dest.iterdir())) == 4
    assert len({h for h in hits if h.startswith("/missing/")}) == 4  # each file: 404 first, then found


def test_resolve_downloads_mnist_through_mirror_env(server, tmp_path, monkeypatch):
    url, folder, _ = server
    monkeypatch.setitem(fetch_module.SHA256, "mnist", _hashes(folder))
    monkeypatch.setenv("CROSSRT_MIRROR", url)
    monkeypatch.setenv("CROSSRT_CACHE", str(tmp_path / "cache"))
    ds = resolve(DataConfig("mnist"))
    assert ds.name == "mnist" and "downloaded" in ds.reason
    assert len(ds.train_labels) == 30
    assert resolve(DataConfig("mnist")).reason.startswith("MNIST from the cache")

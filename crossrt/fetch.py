"""Named datasets: find them (system folder, cache), download them (SHA-256 checked), choose one.

`--dataset auto` is MNIST when it can be had, else Fashion-MNIST, and the Dataset says which
and why. A download lands in the cache only once its hash matches the published one, and ends
in bounded time and size: a mirror that sends a byte every few seconds, or without end, is given
up after DEADLINE_S or MAX_BYTES, not after a timeout per read that a slow drip never reaches.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import socket
import threading
import time
import urllib.request
from pathlib import Path

from .config import DataConfig
from .data import Dataset, has_files, load_folder
from .errors import DataError
from .files import atomic_file
from .system import cache_dir

# SHA-256 of the files as the public mirrors serve them (gzip-compressed).
SHA256 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
MIRRORS = {
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
    "fashion-mnist": (
        "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
}
# Debian's package dataset-fashion-mnist (installed by `make setup`) puts the files here.
SYSTEM_DIRS = {"fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),), "mnist": ()}
PRETTY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST"}


def mirrors(name: str) -> tuple[str, ...]:
    """$CROSSRT_MIRROR (one base URL, for a local mirror or a test server), else the public ones."""
    override = os.environ.get("CROSSRT_MIRROR")
    return (override,) if override else MIRRORS[name]


DEADLINE_S = 600.0  # for one file, from the first byte asked for to the last: MNIST is 10 MB at most
MAX_BYTES = 64 * 2**20  # the largest file of either dataset is 26 MB


class _Watchdog:
    """The sockets of one download, shut down when its deadline passes: that ends a read that is
    waiting (for the headers as for the body) at once, however slowly the bytes come."""

    def __init__(self, seconds: float):
        self.socks: list[socket.socket] = []
        self.expired = False
        self.timer = threading.Timer(seconds, self._expire)
        self.timer.daemon = True

    def _expire(self) -> None:
        self.expired = True
        for sock in self.socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def opener(self) -> urllib.request.OpenerDirector:
        """urllib's opener (proxies, redirects) whose connections report their sockets here."""
        dog = self

        def tracked(base):
            class Connection(base):
                def connect(self):
                    super().connect()
                    dog.socks.append(self.sock)
                    if dog.expired:
                        dog._expire()

            return Connection

        class HTTP(urllib.request.HTTPHandler):
            def http_open(self, req):
                return self.do_open(tracked(http.client.HTTPConnection), req)

        class HTTPS(urllib.request.HTTPSHandler):
            def https_open(self, req):
                return self.do_open(tracked(http.client.HTTPSConnection), req, context=self._context)

        return urllib.request.build_opener(HTTP, HTTPS)


def _download(
    url: str, dest: Path, sha256: str, timeout: float, deadline: float | None = None, max_bytes: int | None = None
) -> None:
    """Stream url into a temp file beside dest; it replaces dest only if the hash matches.
    timeout bounds each wait, deadline (DEADLINE_S) the whole download, max_bytes (MAX_BYTES) its size."""
    deadline, max_bytes = deadline or DEADLINE_S, max_bytes or MAX_BYTES
    dog, t0 = _Watchdog(deadline), time.monotonic()
    dog.timer.start()
    got = 0
    try:
        with atomic_file(dest) as out, dog.opener().open(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise DataError(f"{url}: {int(length):,} bytes, more than the {max_bytes:,} any dataset file has")
            digest = hashlib.sha256()
            while chunk := response.read1(1 << 16):  # returns what has come: the deadline is checked often
                got += len(chunk)
                if got > max_bytes:
                    raise DataError(f"{url}: more than the {max_bytes:,} bytes any dataset file has; stopped")
                if time.monotonic() - t0 > deadline:
                    raise TimeoutError
                digest.update(chunk)
                out.write(chunk)
            if dog.expired:
                raise TimeoutError
            if length and length.isdigit() and got != int(length):  # the connection closed early
                raise DataError(f"{url}: broke off after {got:,} of {int(length):,} bytes")
            if digest.hexdigest() != sha256:
                raise DataError(
                    f"{url}: SHA-256 mismatch (got {digest.hexdigest()[:16]}..., expected {sha256[:16]}...)"
                )
    except (OSError, http.client.HTTPException, ValueError) as e:
        if dog.expired or isinstance(e, TimeoutError) and time.monotonic() - t0 > deadline:
            raise DataError(f"{url}: not done after {deadline:g} s ({got:,} bytes came); given up") from None
        if isinstance(e, OSError):
            raise
        raise DataError(f"{url}: {type(e).__name__}: {str(e)[:120] or 'no answer'}") from None
    finally:
        dog.timer.cancel()


def fetch(
    name: str,
    dest: Path | None = None,
    urls: tuple[str, ...] | None = None,
    timeout: float = 30.0,
    deadline: float | None = None,
    max_bytes: int | None = None,
) -> Path:
    """Download a named dataset into dest (default: the cache, unless the system already has it),
    verifying every file's SHA-256; each file within deadline seconds and max_bytes (DEADLINE_S, MAX_BYTES).

    Files already present with the right hash are kept, others are deleted and fetched again;
    a download only lands in dest once it has matched its hash, so an interrupted or tampered
    download leaves nothing behind.
    """
    if dest is None and (system := next((d for d in SYSTEM_DIRS[name] if has_files(d)), None)):
        return system  # installed by the system (Debian's dataset-fashion-mnist): nothing to download
    dest = Path(dest) if dest is not None else cache_dir() / name
    urls = urls or mirrors(name)
    made = not dest.exists()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"the cache folder {dest} for {PRETTY[name]}: cannot be created ({e.strerror or e}); "
            f"set $CROSSRT_CACHE to a folder crossrt can write"
        ) from None
    try:
        _fetch_files(name, dest, urls, timeout, deadline, max_bytes)
    except BaseException:
        if made and not any(dest.iterdir()):  # a failed first download leaves no empty cache folder behind
            dest.rmdir()
        raise
    return dest


def _fetch_files(name: str, dest: Path, urls: tuple[str, ...], timeout: float, deadline, max_bytes) -> None:
    for filename, sha256 in SHA256[name].items():
        target = dest / filename
        if target.is_file():
            if _sha256(target) == sha256:
                continue
            target.unlink()  # corrupt or tampered: never kept, fetched again
        errors = []
        for base in urls:
            url = base.rstrip("/") + "/" + filename
            try:
                _download(url, target, sha256, timeout, deadline, max_bytes)
                break
            except DataError as e:
                errors.append(str(e))
            except OSError as e:  # URLError, HTTPError, timeouts, refused connections
                errors.append(f"{url}: {getattr(e, 'reason', None) or e}")
        else:
            raise DataError(
                f"could not download {PRETTY[name]} {filename}: {'; '.join(errors)} (offline? train, "
                f"export, quantize and bench-infer take any folder of the four IDX files: --data-dir DIR)"
            )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verified(name: str, folder: Path) -> bool:
    """Whether folder holds every file of the named dataset with its published SHA-256."""
    return all((folder / f).is_file() and _sha256(folder / f) == h for f, h in SHA256[name].items())


def _named(name: str, download: bool) -> Dataset:
    for folder in SYSTEM_DIRS[name]:
        if has_files(folder):
            return load_folder(folder, name, f"{PRETTY[name]} from {folder}")
    cached = cache_dir() / name
    if verified(name, cached):
        return load_folder(cached, name, f"{PRETTY[name]} from the cache {cached}")
    if not download:
        raise DataError(f"{PRETTY[name]} is not in {cached} and downloading is off")
    return load_folder(fetch(name, cached), name, f"{PRETTY[name]} downloaded to {cached}")


def resolve(
    cfg: DataConfig, download: bool = True, trained_on: tuple[str | None, str | None] = (None, None)
) -> Dataset:
    """Find the dataset the settings ask for.

    `auto` is, for a trained model, the (name, folder) it records: that folder when it is still
    there, else the named dataset from the cache or a download; otherwise MNIST when it can
    be had, else Fashion-MNIST. Every failure says which flag to pass.
    """
    if cfg.data_dir is not None:
        name = cfg.dataset if cfg.dataset != "auto" else Path(os.path.abspath(cfg.data_dir)).name
        return load_folder(cfg.data_dir, name, f"--data-dir {cfg.data_dir}")
    if cfg.dataset != "auto":
        return _named(cfg.dataset, download)
    name, folder = trained_on
    if folder and has_files(Path(folder)):
        return load_folder(Path(folder), name or Path(folder).name, f"{folder}, where the model's training data was")
    if name in SHA256:
        return _named(name, download)
    if name:
        raise DataError(
            f"the model was trained on {name!r} from {folder or 'a folder'}, which is not there "
            f"now: pass that dataset's folder with --data-dir DIR"
        )
    try:
        return _named("mnist", download)
    except DataError as mnist_error:
        try:
            ds = _named("fashion-mnist", download)
        except DataError as fashion_error:
            raise DataError(
                f"--dataset auto: neither dataset is available. MNIST: {mnist_error}. "
                f"Fashion-MNIST: {fashion_error}. Give a folder with --data-dir"
            ) from None
        why = str(mnist_error).split(" (offline?")[0].split(": ")[-1][:80]
        ds.reason += f" (auto: MNIST is not cached and could not be downloaded: {why})"
        return ds

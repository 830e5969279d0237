"""Tests for safetywash.data.registry, .download, .files and the data directory of .load.

No test uses the internet: downloads go to a local server.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from safetywash.data import download as datasets
from safetywash.data import load
from safetywash.data.catalog import load_catalog, shipped_catalog_path
from safetywash.data.download import default_cache_dir, resolve_data_dir
from safetywash.data.errors import DatasetError
from safetywash.data.files import atomic_write, sha256_file
from safetywash.data.load import READERS, default_data_dir, load_dataset
from safetywash.data.registry import DatasetSpec, dataset_names, dataset_spec, fetch_dataset
from safetywash.data.sources.epoch import EPOCH_EXTERNAL

NAME = "safetywashing"  # small (3 files, ~100 KB): used for all download tests
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Clear the package's env vars, keep the default cache in tmp_path, forbid the internet."""
    monkeypatch.delenv(datasets.DATA_DIR_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "default-cache"))
    real_urlopen = urllib.request.urlopen

    def local_only(request: urllib.request.Request | str, *args: object, **kwargs: object):
        url = request.full_url if isinstance(request, urllib.request.Request) else request
        host = urllib.parse.urlsplit(url).hostname
        assert host == "127.0.0.1", f"test tried to reach the internet: {url}"
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


@pytest.fixture
def shared_data(shared_dataset) -> Path:
    """The data directory holding the real ``NAME`` dataset."""
    return shared_dataset(NAME).parent


def _copy_dataset(shared: Path, dest_root: Path, name: str = NAME) -> Path:
    """Copy the registered files of ``name`` to ``dest_root/<path>``; return ``dest_root``."""
    for path in dataset_spec(name).files:
        target = dest_root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared / name / path, target)
    return dest_root


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@dataclass
class Server:
    base_url: str
    root: Path
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def server(shared_data: Path, tmp_path: Path) -> Iterator[Server]:
    """Serve a copy of the dataset at ``<base_url>/<path>``, counting GET requests."""
    served = tmp_path / "served"
    repo_dir = _copy_dataset(shared_data, served / "owner" / "repo" / "commit")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    port = httpd.server_address[1]
    try:
        yield Server(f"http://127.0.0.1:{port}/owner/repo/commit", repo_dir, requests)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _assert_complete(root: Path, name: str = NAME) -> None:
    for path, digest in dataset_spec(name).files.items():
        assert sha256_file(root / path) == digest


# --- registry ----------------------------------------------------------------------------------


def test_every_registered_dataset_can_be_loaded_by_name() -> None:
    names = dataset_names()
    assert names and names == sorted(set(names))
    assert set(READERS) == set(names)  # a reader for each, none for an unregistered name
    for name in names:
        assert dataset_spec(name).name == name
        assert shipped_catalog_path(name).is_file()
    with pytest.raises(DatasetError, match="no-such-data"):
        load_dataset("no-such-data")


@pytest.mark.parametrize("name", dataset_names())
def test_registered_checksums_match_shared_copies(name: str, shared_dataset) -> None:
    spec = dataset_spec(name)
    assert spec.base_url.startswith("https://raw.githubusercontent.com/")
    _assert_complete(shared_dataset(name), name)


@pytest.mark.parametrize("name", dataset_names())
def test_readers_read_only_registered_files(
    name: str, shared_dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every file a reader opens is registered (so fetched and verified), and every registered
    file is read unless it is known not to be (e.g. the Open LLM v1 table is registered, not
    its misaligned HELM neighbour)."""
    root = shared_dataset(name)
    opened: set[Path] = set()
    real_open = Path.open

    def spy(self: Path, *args: object, **kwargs: object):
        opened.add(self)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", spy)
    READERS[name](root)
    read = {p.relative_to(root).as_posix() for p in opened if p.is_relative_to(root)}
    registered = set(dataset_spec(name).files)
    assert read <= registered
    # Registered for the record, not read: Safetywashing's metadata table (the shipped catalog
    # describes the benchmarks) and Epoch's tables of benchmarks the catalog excludes.
    epoch_catalog = load_catalog("epoch-benchmark-stitching")
    unread = {
        "safetywashing": {"data/benchmarks_info.csv"},
        "epoch-benchmark-stitching": {
            external.path(key)
            for key, external in EPOCH_EXTERNAL.items()
            if epoch_catalog.loc[key, "role"] == "excluded"
        },
    }.get(name, set())
    assert registered - read == unread


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(DatasetError, match="no-such-data") as info:
        fetch_dataset("no-such-data")
    for name in dataset_names():
        assert name in str(info.value)


@pytest.mark.parametrize("path", ["/abs.csv", "../up.csv", "a/../../b.csv"])
def test_spec_rejects_unsafe_paths(path: str) -> None:
    with pytest.raises(ValueError, match="relative"):
        DatasetSpec("x", "https://example.org/", {path: "0" * 64}, "")


def test_spec_rejects_bad_digest_and_is_read_only() -> None:
    with pytest.raises(ValueError, match="sha256"):
        DatasetSpec("x", "https://example.org/", {"a.csv": "ABC"}, "")
    with pytest.raises(TypeError):
        dataset_spec(NAME).files["data/new.csv"] = "0" * 64  # type: ignore[index]


def test_spec_url_joins_with_and_without_slash() -> None:
    spec = DatasetSpec("x", "https://h/p/", {"d/a b.csv": "0" * 64}, "")
    assert spec.url("d/a b.csv") == "https://h/p/d/a%20b.csv"
    assert spec.url("d/a b.csv", "http://m/q") == "http://m/q/d/a%20b.csv"


# --- directory resolution ----------------------------------------------------------------------


def test_resolve_data_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve_data_dir() is None
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    monkeypatch.setenv(datasets.DATA_DIR_ENV, "")
    assert resolve_data_dir() is None


def test_default_cache_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(datasets.CACHE_DIR_ENV, str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv(datasets.CACHE_DIR_ENV)
    assert default_cache_dir() == tmp_path / "xdg" / "safetywash"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "safetywash"


# --- download into the cache -------------------------------------------------------------------


def test_download_then_reuse_cache(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = fetch_dataset(NAME, cache_dir=cache, base_url=server.base_url)
    assert root == cache / NAME
    _assert_complete(root)
    assert len(server.requests) == len(dataset_spec(NAME).files)
    assert not list(root.rglob("*.part"))

    again = fetch_dataset(NAME, cache_dir=cache, base_url=server.base_url)
    assert again == root
    assert len(server.requests) == len(dataset_spec(NAME).files)  # no new request
    assert fetch_dataset(NAME, cache_dir=cache, base_url=_closed_port_url()) == root
    assert fetch_dataset(NAME, cache_dir=cache, download=False) == root


def test_default_cache_dir_is_used(server: Server, tmp_path: Path) -> None:
    root = fetch_dataset(NAME, base_url=server.base_url + "/")
    assert root == tmp_path / "default-cache" / NAME
    _assert_complete(root)


def test_corrupt_cache_file_is_redownloaded(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = fetch_dataset(NAME, cache_dir=cache, base_url=server.base_url)
    first = next(iter(dataset_spec(NAME).files))
    _flip_byte(root / first)
    before = len(server.requests)
    fetch_dataset(NAME, cache_dir=cache, base_url=server.base_url)
    assert len(server.requests) == before + 1
    assert server.requests[-1].endswith(first)
    _assert_complete(root)


def test_corrupt_download_raises_and_leaves_nothing(server: Server, tmp_path: Path) -> None:
    path = "data/benchmarks_chat_models.csv"
    _flip_byte(server.root / path)
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match=r"(?i)checksum") as info:
        fetch_dataset(NAME, cache_dir=cache, base_url=server.base_url)
    message = str(info.value)
    assert f"{server.base_url}/{path}" in message
    assert dataset_spec(NAME).files[path] in message
    assert sha256_file(server.root / path) in message
    leftovers = [p.name for p in cache.rglob("*") if "chat_models" in p.name]
    assert leftovers == []
    assert not list(cache.rglob("*.part"))


def test_unreachable_network_explains_offline_layout(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="could not be downloaded") as info:
        fetch_dataset(NAME, cache_dir=cache, base_url=_closed_port_url(), timeout=2)
    _assert_offline_guidance(str(info.value), cache)
    assert not [p for p in cache.rglob("*") if p.is_file()]


def test_download_false_explains_offline_layout(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DatasetError, match="download=False") as info:
        fetch_dataset(NAME, cache_dir=cache, download=False)
    _assert_offline_guidance(str(info.value), cache)


def _assert_offline_guidance(message: str, cache: Path) -> None:
    spec = dataset_spec(NAME)
    assert "SAFETYWASH_DATA_DIR" in message
    assert f"<data_dir>/{NAME}/" in message
    assert str(cache / NAME) in message
    assert spec.base_url in message
    for path in spec.files:
        assert path in message


# --- local data directory ----------------------------------------------------------------------


def test_local_dir_argument_needs_no_network(shared_data: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    root = fetch_dataset(NAME, data_dir=shared_data, cache_dir=cache, base_url=_closed_port_url())
    assert root == shared_data / NAME
    assert not cache.exists()


def test_local_dir_from_env(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(shared_data))
    assert fetch_dataset(NAME, base_url=_closed_port_url()) == shared_data / NAME
    # An explicit argument wins over the environment variable.
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "empty"))
    assert fetch_dataset(NAME, data_dir=shared_data) == shared_data / NAME


def test_local_dir_missing_file_is_an_error(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = tmp_path / "local"
    _copy_dataset(shared_data, local / NAME)
    gone = "data/benchmarks_info.csv"
    (local / NAME / gone).unlink()
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(local))
    with pytest.raises(DatasetError) as info:
        fetch_dataset(NAME, base_url=_closed_port_url())
    message = str(info.value)
    assert str(local / NAME / gone) in message
    assert f"<data_dir>/{NAME}/" in message
    assert "SAFETYWASH_DATA_DIR" in message
    assert "data/benchmarks_base_models.csv" not in message.split("Expected layout")[0]


def test_local_dir_pointing_at_dataset_root_gets_hint(shared_data: Path) -> None:
    with pytest.raises(DatasetError, match="pass its parent"):
        fetch_dataset(NAME, data_dir=shared_data / NAME)


def test_local_dir_wrong_checksum_is_an_error(shared_data: Path, tmp_path: Path) -> None:
    local = tmp_path / "local"
    _copy_dataset(shared_data, local / NAME)
    bad = local / NAME / "data/benchmarks_base_models.csv"
    _flip_byte(bad)
    with pytest.raises(DatasetError, match=r"(?i)checksum") as info:
        fetch_dataset(NAME, data_dir=local)
    message = str(info.value)
    assert str(bad) in message
    assert dataset_spec(NAME).files["data/benchmarks_base_models.csv"] in message
    assert hashlib.sha256(bad.read_bytes()).hexdigest() in message


# --- atomic writes -----------------------------------------------------------------------------


def _write_then(text: str, failure: BaseException | None):
    """A writer that writes ``text`` to its path, then raises ``failure`` (if any)."""

    def write(tmp: Path) -> None:
        tmp.write_text(text)
        if failure is not None:
            raise failure

    return write


def test_atomic_write_replaces_with_umask_permissions(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    old_umask = os.umask(0o027)
    try:
        assert atomic_write(target, _write_then("new", None)) == target
        fresh = atomic_write(tmp_path / "fresh.txt", _write_then("x", None))
    finally:
        os.umask(old_umask)
    assert target.read_text() == "new"
    assert fresh.stat().st_mode & 0o777 == 0o640  # 0o666 less the umask, not mkstemp's 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.txt", "out.txt"]


@pytest.mark.parametrize("failure", [KeyboardInterrupt(), OSError("disk full")])
def test_interrupted_atomic_write_keeps_the_old_file(tmp_path: Path, failure) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(type(failure)):
        atomic_write(target, _write_then("half of the new", failure))
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    with pytest.raises(type(failure)):
        atomic_write(tmp_path / "new.txt", _write_then("half", failure))
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    data = os.urandom(3 << 20)  # several read chunks
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()


# --- the default local data directory ----------------------------------------------------------


def test_default_data_dir_is_beside_the_project(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert load.SHARED_DATA_DIR == REPO_ROOT.parent / "shared" / "data"
    monkeypatch.setattr(load, "SHARED_DATA_DIR", tmp_path / "shared")
    assert default_data_dir() is None  # no such folder: download into the cache
    (tmp_path / "shared").mkdir()
    assert default_data_dir() == tmp_path / "shared"
    monkeypatch.setenv(datasets.DATA_DIR_ENV, str(tmp_path / "env"))
    assert default_data_dir() == tmp_path / "env"


def test_load_dataset_finds_the_default_data_dir(
    shared_data: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # No data_dir, no environment variable, nothing cached, no network: the folder beside
    # the project is used, as the commands use it.
    monkeypatch.setattr(load, "SHARED_DATA_DIR", shared_data)
    study = load_dataset(NAME, "chat", download=False)
    assert study.name == "safetywashing-chat" and study.n_llms == 26
    assert not (tmp_path / "default-cache").exists()
    # A default folder without the dataset is an error naming it, not a silent download.
    monkeypatch.setattr(load, "SHARED_DATA_DIR", tmp_path)
    with pytest.raises(DatasetError, match="the default beside the project") as info:
        load_dataset(NAME, "chat")
    assert str(tmp_path / NAME) in str(info.value)
    # Without a default folder the cache is used.
    monkeypatch.setattr(load, "SHARED_DATA_DIR", tmp_path / "absent")
    with pytest.raises(DatasetError, match="download=False"):
        load_dataset(NAME, "chat", download=False)


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception), ("", None)])
def test_missing_real_data_fails_under_ci(
    shared_dataset, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome or pytest.skip.Exception, match="not found under"):
        shared_dataset(NAME, tmp_path)

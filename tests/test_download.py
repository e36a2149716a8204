"""Downloads against a local HTTP server on 127.0.0.1 (never the internet), with Range support."""

import hashlib
import http.server
import re
import shutil
import threading

import pytest

from qanet.data.download import DownloadError, RemoteFile, download
from tests.conftest import run_python, shared_file

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    ranges: list[str | None] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError:
            self.send_error(404)
            return
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted)
        if wanted:
            start = int(re.fullmatch(r"bytes=(\d+)-", wanted).group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    _RangeHandler.ranges = []

    def handler(*args, **kwargs):
        return _RangeHandler(*args, directory=str(root), **kwargs)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _remote(base: str, name: str = "file.bin", payload: bytes = PAYLOAD) -> RemoteFile:
    return RemoteFile(f"{base}/{name}", "sha256", hashlib.sha256(payload).hexdigest())


def test_download_verifies_and_reports_progress(server, tmp_path):
    root, base = server
    (root / "file.bin").write_bytes(PAYLOAD)
    seen = []
    path = download(_remote(base), tmp_path / "out" / "file.bin",
                    progress=lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == PAYLOAD
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD))
    assert not (tmp_path / "out" / "file.bin.part").exists()


def test_partial_download_resumes_with_a_range_request(server, tmp_path):
    root, base = server
    (root / "file.bin").write_bytes(PAYLOAD)
    destination = tmp_path / "file.bin"
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:30000])
    download(_remote(base), destination)
    assert _RangeHandler.ranges == ["bytes=30000-"]
    assert destination.read_bytes() == PAYLOAD


def test_complete_partial_file_is_verified_not_refetched(server, tmp_path):
    root, base = server
    (root / "file.bin").write_bytes(PAYLOAD)
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    download(_remote(base), tmp_path / "file.bin")
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_checksum_mismatch_deletes_the_download(server, tmp_path):
    root, base = server
    (root / "file.bin").write_bytes(PAYLOAD[:-1] + b"x")
    with pytest.raises(DownloadError, match=r"file.bin: sha256 [0-9a-f]{64} does not match the published"):
        download(_remote(base), tmp_path / "file.bin")
    assert not (tmp_path / "file.bin").exists() and not (tmp_path / "file.bin.part").exists()


def test_missing_file_is_a_clear_error(server, tmp_path):
    _, base = server
    with pytest.raises(DownloadError, match=r"absent.bin: HTTP 404"):
        download(_remote(base, "absent.bin"), tmp_path / "absent.bin")


def test_fetch_command_verifies_the_official_checksums(server, tmp_path):
    root, base = server
    shutil.copy(shared_file("squad/v1.1/dev-v1.1.json"), root / "dev-v1.1.json")  # byte-identical to the official
    (root / "train-v1.1.json").write_text("{}")  # not the official train file
    result = run_python("-m", "bench", "data", "fetch", "squad-v1.1", "--mirror", base, "--dest", str(tmp_path),
                        check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: 1 of 2 files failed: {base}/train-v1.1.json: sha256 "
        "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a does not match the published "
        "3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955; the download was deleted")
    assert f"{tmp_path / 'dev-v1.1.json'} (4,854,279 bytes, sha256 verified)" in result.stdout
    assert not (tmp_path / "train-v1.1.json").exists()


def test_content_digest_is_cached_per_path_and_recomputed_when_the_file_changes(tmp_path):
    import json
    import os

    from qanet.data.download import DIGESTS, content_digest

    path, cache = tmp_path / "vectors.txt", tmp_path / "cache"

    def store_says_stale() -> None:  # from now on only a key that still matches can give the old answer
        stored = json.loads((cache / DIGESTS).read_text())
        (cache / DIGESTS).write_text(json.dumps({key: "stale" for key in stored}))

    path.write_text("a 1 2\n")
    os.utime(path, ns=(1, 1))
    assert content_digest(path, cache) == hashlib.sha256(b"a 1 2\n").hexdigest()
    store_says_stale()
    assert content_digest(path, cache) == "stale"  # the cache is used while nothing changed
    path.write_text("b 3 4\n")  # same size, new content, new modification time
    assert content_digest(path, cache) == hashlib.sha256(b"b 3 4\n").hexdigest()
    store_says_stale()
    replacement = tmp_path / "new.txt"
    replacement.write_text("c 5 6\n")
    stat = path.stat()
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)  # same path, size and modification time: only the inode tells
    assert content_digest(path, cache) == hashlib.sha256(b"c 5 6\n").hexdigest()
    assert len(json.loads((cache / DIGESTS).read_text())) == 1  # one entry per path

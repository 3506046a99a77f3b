"""The download path, against a local HTTP server that behaves like Google Drive."""

import io
import json
import tarfile
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bench.cli import download as dl
from bench.core.data import load_corpus
from bench.cli.download import main as data_main
from bench.core.config import DataConfig
from bench.core.errors import BenchError


def make_archive(lines=3):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for split in ("train", "valid", "test"):
            payload = "".join(f"word{i} {split} text\n" for i in range(lines)).encode()
            info = tarfile.TarInfo(f"yahoo_data/yahoo.{split}.txt")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


@pytest.fixture
def drive_like_server():
    """First request: an HTML warning page with a confirmation form; confirmed request: the archive."""
    archive = make_archive()
    requests = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            if "confirm=yes" in self.path:
                body, kind = archive, "application/octet-stream"
            else:
                body = (b'<html><form id="download-form" action="/download" method="get">'
                        b'<input type="hidden" name="id" value="abc"><input type="hidden" name="confirm" value="yes">'
                        b'</form></html>')
                kind = "text/html; charset=utf-8"
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/uc?export=download&id=abc", requests
    server.shutdown()


def test_download_confirms_verifies_and_lays_out(tmp_path, drive_like_server, monkeypatch):
    url, requests = drive_like_server
    monkeypatch.setitem(dl.SOURCES, "yahoo", replace(dl.SOURCES["yahoo"], expected_sentences={"train": 3}))
    target = dl.download("yahoo", tmp_path, url=url)
    assert len(requests) == 2 and requests[1].startswith("/download?id=abc&confirm=yes")
    assert sorted(p.name for p in target.iterdir()) == ["SOURCE.json", "test.txt", "train.txt", "valid.txt"]
    source = json.loads((target / "SOURCE.json").read_text())
    assert source["files"]["train"]["sentences"] == 3 and len(source["archive_sha256"]) == 64
    corpus = load_corpus("yahoo", DataConfig(), tmp_path)
    assert len(corpus.splits["train"]) == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_download_rejects_an_archive_with_wrong_counts(tmp_path, drive_like_server):
    url, _ = drive_like_server
    with pytest.raises(BenchError, match="has 3 sentences, expected 100000"):
        dl.download("yahoo", tmp_path, url=url)
    assert not (tmp_path / "yahoo").exists()


def test_download_cli_reports_unreachable_address(tmp_path, capsys):
    with pytest.raises(BenchError, match="could not download http://127.0.0.1:9/"):
        data_main(["download", "yahoo", "--data-dir", str(tmp_path), "--url", "http://127.0.0.1:9/x"])
    with pytest.raises(BenchError, match="no download source for 'ptb'"):
        data_main(["download", "ptb", "--data-dir", str(tmp_path)])

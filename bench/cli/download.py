"""Fetch the published Yahoo / Yelp / synthetic archives and lay them out for the loader.

Sources: the gzipped tar archives that He et al. 2019 distribute through Google Drive
(github.com/jxhe/vae-lagging-encoder, ``prepare_data.py``). Large Drive files answer the
first request with an HTML page asking for confirmation; :func:`fetch` then repeats the
request with the confirmation fields from that page. After extraction the splits are
checked (UTF-8, non-empty, expected sentence counts) and written as
``<data-dir>/<name>/{train,valid,test}.txt`` with a ``SOURCE.json`` that records the
address and the sha256 of the archive and of every file.
"""

from __future__ import annotations

import hashlib
import html
import io
import re
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookiejar import CookieJar
from pathlib import Path

from bench.core.data import DATA_DIR_ENV, DATASETS, SPLITS, SYNTHETIC, dataset_info, read_split, resolve_data_dir
from bench.core.errors import BenchError, run_cli
from bench.core.files import write_json_atomic

DRIVE_URL = "https://drive.google.com/uc?export=download&id={}"


@dataclass(frozen=True)
class Source:
    """Where a dataset's archive lives and what it must contain."""

    url: str
    members: dict[str, str]  # split -> path inside the archive
    expected_sentences: dict[str, int] = field(default_factory=dict)
    citation: str = ""


SOURCES = {
    "yahoo": Source(DRIVE_URL.format("13azGlTuGdzWLCmgDmQPmvb_jcexVWX7i"),
                    {s: f"yahoo_data/yahoo.{s}.txt" for s in SPLITS},
                    {"train": 100_000, "valid": 10_000, "test": 10_000},
                    "Yang et al. 2017 via He et al. 2019"),
    "yelp": Source(DRIVE_URL.format("1FT49oLNV8syhmGXEgiK6XTjEfMNqqEJJ"),
                   {s: f"yelp_data/yelp.{s}.txt" for s in SPLITS},
                   {"train": 100_000, "valid": 10_000, "test": 10_000},
                   "Yang et al. 2017 via He et al. 2019"),
    "he_synthetic": Source(DRIVE_URL.format("1pEHLedf3ZSo7UrHdvR1VWPfWNTcN6oWH"),
                           {s: f"synthetic_data/synthetic.{s}.txt" for s in SPLITS},
                           citation="He et al. 2019, Section 6.1"),
}


def fetch(url: str, timeout: float = 60.0) -> bytes:
    """GET ``url``; if a confirmation page comes back (Google Drive), confirm and GET again."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
    for _attempt in range(3):
        try:
            with opener.open(url, timeout=timeout) as response:
                body = response.read()
                content_type = response.headers.get("Content-Type", "")
        except OSError as err:
            raise BenchError(f"could not download {url}: {err}; check the network or pass --url MIRROR") from None
        if "text/html" not in content_type:
            return body
        confirmed = confirmation_url(url, body.decode("utf-8", "replace"))
        if confirmed is None:
            break
        url = confirmed
    raise BenchError(f"{url} answered with a web page instead of the archive; download it by hand and "
                     "pass --archive FILE")


def confirmation_url(url: str, page: str) -> str | None:
    """The URL that confirms a large-file download, from a Drive warning page."""
    form = re.search(r'<form[^>]*action="([^"]+)"[^>]*>(.*?)</form>', page, re.S)
    if form:
        fields = dict(re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(2)))
        action = urllib.parse.urljoin(url, html.unescape(form.group(1)))
        return f"{action}?{urllib.parse.urlencode(fields)}"
    token = re.search(r"confirm=([0-9A-Za-z_-]+)", page)
    if token:
        return f"{url}&confirm={token.group(1)}"
    return None


def install(name: str, archive: bytes, data_dir: Path, source: Source, url: str) -> Path:
    """Extract ``archive``, verify the splits and move them into ``data_dir/name``."""
    target = data_dir / name
    if target.exists() and any(target.iterdir()):
        raise BenchError(f"{target} already exists and is not empty; remove it to download again")
    try:
        tar = tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")
    except tarfile.TarError:
        raise BenchError(f"the file from {url} is not a tar archive; the address may be stale, pass --url") from None
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{name}."))  # same filesystem: the move is a rename
    try:
        with tar:
            files = {split: extract_split(tar, member, staging / f"{split}.txt", name, source, url)
                     for split, member in source.members.items()}
        write_json_atomic(staging / "SOURCE.json", {
            "dataset": name, "url": url, "citation": source.citation,
            "archive_sha256": hashlib.sha256(archive).hexdigest(), "files": files,
            "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        if target.exists():
            target.rmdir()
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def extract_split(tar: tarfile.TarFile, member: str, path: Path, name: str, source: Source, url: str) -> dict:
    """Write one split from the archive to ``path``, check it, and describe it."""
    try:
        handle = tar.extractfile(member)
    except KeyError:
        handle = None
    if handle is None:
        raise BenchError(f"archive from {url} has no {member}; its layout changed, lay the files out by hand")
    path.write_bytes(handle.read())
    sentences = len(read_split(path, dataset_info(name).label_separator))
    split = path.stem
    expected = source.expected_sentences.get(split)
    if expected is not None and sentences != expected:
        raise BenchError(f"{member} has {sentences} sentences, expected {expected}; the download is "
                         "incomplete or a different release")
    return {"sentences": sentences, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "from": member}


def download(name: str, data_dir: Path, url: str | None = None, archive_file: Path | None = None) -> Path:
    if name not in SOURCES:
        raise BenchError(f"no download source for '{name}'; known: {', '.join(SOURCES)}")
    source = SOURCES[name]
    url = url or source.url
    if archive_file is not None:
        archive, url = Path(archive_file).read_bytes(), str(archive_file)
    else:
        archive = fetch(url)
    return install(name, archive, data_dir, source, url)


def main(argv: list[str] | None = None) -> int:
    """``python -m bench download {list,download}``: see what is available, fetch published data."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench download", description="Datasets: list and download.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n  python -m bench download list --data-dir ../shared/data\n"
                                            "  python -m bench download download yahoo --data-dir ~/data\n")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="named datasets and whether their splits are present")
    listing.add_argument("--data-dir", metavar="DIR")
    fetch = commands.add_parser("download", help="fetch a published archive, verify it and lay it out")
    fetch.add_argument("name", help="yahoo, yelp or he_synthetic")
    fetch.add_argument("--data-dir", metavar="DIR", help=f"where to put it (default: ${DATA_DIR_ENV})")
    fetch.add_argument("--url", help="a mirror of the archive instead of the published address")
    fetch.add_argument("--archive", metavar="FILE", help="an archive already downloaded by hand")
    args = parser.parse_args(argv)
    root = resolve_data_dir(args.data_dir)
    if args.command == "list":
        print(f"data directory: {root or f'(none: pass --data-dir or set {DATA_DIR_ENV})'}")
        print(f"  {SYNTHETIC:16s} built in")
        names = sorted(set(DATASETS) | ({p.name for p in root.iterdir() if p.is_dir()} if root and root.is_dir()
                                         else set()))
        for name in names:
            present = [s for s in SPLITS if root and (root / name / f"{s}.txt").is_file()]
            state = "ready" if len(present) == 3 else f"missing {', '.join(s for s in SPLITS if s not in present)}"
            print(f"  {name:16s} {state:28s} {dataset_info(name).description}")
        return 0
    if root is None:
        raise BenchError(f"download needs --data-dir DIR or {DATA_DIR_ENV}=DIR")
    target = download(args.name, root, args.url, args.archive)
    print(f"{args.name}: ready in {target}")
    return 0


if __name__ == "__main__":
    run_cli(main)

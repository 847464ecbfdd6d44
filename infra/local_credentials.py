"""Local secrets: S3 credentials for the managed SeaweedFS, the local Ray's auth token.

Secrets never live in code or config files of the project. For the zero-setup local store
we generate a random key pair once, keep it in ``<home>/secrets/s3.json`` (mode 0600), and
export it into this process's environment, so SeaweedFS, boto3, pyarrow, s3fs and local
Ray workers all see the same identity. Any ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``
already in the environment wins. The local Ray's token lives beside them in
``<home>/secrets/ray-auth-token`` (see ``infra/ray_runtime.py``).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path


def credentials_file(home: Path) -> Path:
    return home / "secrets" / "s3.json"


def ensure_local_credentials(home: Path, create: bool = True) -> bool:
    """Export AWS_* credentials for the local store (creating them if ``create``); True if set."""
    if os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY"):
        return True
    path = credentials_file(home)
    if path.is_file():
        data = json.loads(path.read_text())
    elif not create:
        return False
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        data = {"access_key_id": "tf" + secrets.token_hex(8), "secret_access_key": secrets.token_urlsafe(30)}
        fd = os.open(str(path) + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(str(path) + ".tmp", path)
    os.environ["AWS_ACCESS_KEY_ID"] = data["access_key_id"]
    os.environ["AWS_SECRET_ACCESS_KEY"] = data["secret_access_key"]
    return True


def ray_token_file(home: Path) -> Path:
    return home / "secrets" / "ray-auth-token"


def ensure_ray_token(home: Path) -> Path:
    """The token file of the local Ray (created once, mode 0600); its path.

    The file is created with ``link`` from a complete temporary file, never replaced: Ray
    processes read it whenever they start (workers too), so a token that changed under a
    running cluster would lock its own new workers out.
    """
    path = ray_token_file(home)
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass  # another process won the race: use its token
    finally:
        tmp.unlink()
    return path

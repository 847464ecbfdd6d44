"""Turn a store URL into a pyarrow filesystem plus a root path, with S3 errors made readable.

pyarrow's S3 client retries for a long time and reports failures as bare ``OSError``; a
``head_bucket`` through boto3 with short timeouts answers "is it reachable, are the keys
right, does the bucket exist" in about a second, so every S3 store is probed once first
(an endpoint that does not answer is retried for ``store.retry_seconds``, see ``retry.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

import pyarrow.fs as pafs

from trustflow.data.store.retry import RetryPolicy, call_with_retry
from trustflow.errors import InputError, StoreError, StoreUnavailable
from trustflow.settings import Settings


@dataclass(frozen=True)
class StoreLocation:
    """Where a store lives: ``scheme`` is ``file`` or ``s3``; ``root`` is the path inside ``fs``."""

    url: str
    scheme: str
    root: str
    bucket: str | None = None


def confine_key(key: str) -> str:
    """``key`` as a relative path that cannot leave the store root; ``InputError`` naming it if not.

    A key comes from untrusted places (a model card, an event's object key), and
    ``ArtifactStore.path`` joins it under the root: ``..``, an absolute key, an empty segment
    (``a//b``), ``.``, a backslash or a control character could address something outside the
    store (``file://``) or another prefix of the bucket (``s3://``, where the server may
    normalise ``..``). One trailing ``/`` (a folder) is tolerated and dropped.
    """
    if not isinstance(key, str) or not key:
        raise InputError(f"store key {key!r}: empty")
    if key.startswith("/"):
        raise InputError(f"store key {key!r}: absolute keys are not allowed (keys are relative to the store root)")
    if "\\" in key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise InputError(f"store key {key!r}: backslashes and control characters are not allowed")
    body = key[:-1] if key.endswith("/") else key
    for segment in body.split("/"):
        if segment in ("", ".", ".."):
            what = "an empty segment" if not segment else f"a {segment!r} segment"
            raise InputError(f"store key {key!r}: {what} is not allowed (keys must stay inside the store)")
    return body


def parse_store_url(url: str) -> StoreLocation:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = (parsed.netloc + parsed.path) if parsed.netloc not in ("", "localhost") else parsed.path
        if not path.startswith("/"):
            raise StoreError(f"store URL {url!r}: file:// URLs need an absolute path")
        return StoreLocation(url=url, scheme="file", root=path.rstrip("/") or "/")
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise StoreError(f"store URL {url!r}: s3:// URLs need a bucket (s3://bucket/prefix)")
        prefix = parsed.path.strip("/")
        root = f"{parsed.netloc}/{prefix}" if prefix else parsed.netloc
        return StoreLocation(url=url, scheme="s3", root=root, bucket=parsed.netloc)
    raise StoreError(f"store URL {url!r}: scheme must be file:// or s3://")


def s3_client(settings: Settings, timeout_s: float = 5.0):  # noqa: ANN201 - boto3 client type is dynamic
    """A boto3 S3 client with short timeouts and few retries, for bucket/object operations."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key_id.get_secret_value() if settings.s3_access_key_id else None,
        aws_secret_access_key=settings.s3_secret_access_key.get_secret_value()
        if settings.s3_secret_access_key
        else None,
        config=Config(
            connect_timeout=timeout_s,
            read_timeout=max(timeout_s, 30.0),
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": "path"},
        ),
    )


def retry_policy(settings: Settings) -> RetryPolicy:
    """The store's retry policy from ``store.retry_seconds``."""
    return RetryPolicy(budget_s=settings.store.retry_seconds)


def endpoint_name(settings: Settings) -> str:
    return settings.s3_endpoint_url or "AWS S3"


def probe_bucket(settings: Settings, bucket: str) -> None:
    """Fail with one clear line unless ``bucket`` is reachable with the configured credentials.

    An endpoint that refuses connections or answers 5xx is retried for ``store.retry_seconds``
    (a store restarting must not kill the run that opens it); wrong keys or a missing bucket
    are answers and fail at once.
    """
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    endpoint = endpoint_name(settings)
    client = s3_client(settings, timeout_s=3.0)
    try:
        call_with_retry(
            lambda: client.head_bucket(Bucket=bucket),
            operation=f"start-up check (head_bucket {bucket})",
            endpoint=endpoint,
            policy=retry_policy(settings),
        )
    except StoreUnavailable as exc:
        if isinstance(exc.__cause__, EndpointConnectionError):
            raise StoreUnavailable(
                f"cannot reach S3 endpoint {endpoint} (s3_endpoint_url); is the store running? (trustflow storage up; "
                f"retried for {settings.store.retry_seconds:.0f} s, store.retry_seconds)",
                endpoint,
                None,
                exc.operation,
            ) from exc.__cause__
        raise
    except NoCredentialsError:
        raise StoreError(f"no S3 credentials for {endpoint}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") from None
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied") or status == 403:
            raise StoreError(
                f"S3 endpoint {endpoint} rejected the credentials for bucket {bucket!r} "
                "(check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            ) from None
        if code in ("404", "NoSuchBucket") or status == 404:
            raise StoreError(f"bucket {bucket!r} does not exist on {endpoint}") from None
        raise StoreError(f"S3 endpoint {endpoint}: {code or exc}") from None
    except BotoCoreError as exc:
        raise StoreError(f"S3 endpoint {endpoint}: {exc}") from None


def make_filesystem(location: StoreLocation, settings: Settings) -> pafs.FileSystem:
    """pyarrow filesystem for a location; S3 ones are probed first so errors are clear."""
    if location.scheme == "file":
        return pafs.LocalFileSystem()
    assert location.bucket is not None
    probe_bucket(settings, location.bucket)
    endpoint = settings.s3_endpoint_url
    kwargs: dict = {
        "region": settings.s3_region,
        "connect_timeout": 5,
        "request_timeout": 60,
        "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        "check_directory_existence_before_creation": False,
    }
    if endpoint:
        parsed = urlparse(endpoint)
        kwargs["endpoint_override"] = parsed.netloc or parsed.path
        kwargs["scheme"] = parsed.scheme or "http"
        kwargs["force_virtual_addressing"] = False
    if settings.s3_access_key_id and settings.s3_secret_access_key:
        kwargs["access_key"] = settings.s3_access_key_id.get_secret_value()
        kwargs["secret_key"] = settings.s3_secret_access_key.get_secret_value()
    return pafs.S3FileSystem(**kwargs)

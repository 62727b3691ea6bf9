"""`LEADOPS_STORAGE_URL`: where release artifacts and evidence screenshots live, chosen by environment.

Unset (or `file:///abs/folder`): a folder on this node (`LEADOPS_MEDIA_ROOT`). With several app nodes
every node must read what any node wrote: an S3-compatible bucket through django-storages,
`s3://BUCKET[/PREFIX]?endpoint_url=URL&region_name=R&addressing_style=path` (every query parameter is
optional; credentials come from boto3's usual sources, e.g. `AWS_ACCESS_KEY_ID` and
`AWS_SECRET_ACCESS_KEY`, never from the URL). docs/DEPLOY.md, "Files with several app nodes".
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

S3_BACKEND = "storages.backends.s3.S3Storage"
FILE_BACKEND = "django.core.files.storage.FileSystemStorage"
# The S3 options an operator may set in the URL's query; everything else is refused (a typo must
# not be silently ignored).
_S3_OPTIONS = {
    "endpoint_url": str, "region_name": str, "addressing_style": str, "signature_version": str,
    "querystring_auth": bool, "querystring_expire": int, "use_ssl": bool, "verify": bool,
}


def _option(name: str, text: str) -> Any:
    kind = _S3_OPTIONS[name]
    if kind is bool:
        if text.lower() not in ("true", "false", "1", "0"):
            raise ImproperlyConfigured(f"LEADOPS_STORAGE_URL: {name} must be true or false, not {text!r}.")
        return text.lower() in ("true", "1")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ImproperlyConfigured(
                f"LEADOPS_STORAGE_URL: {name} must be a number, not {text!r}.") from None
    return text


def default_storage_from_url(url: str) -> dict[str, Any]:
    """The `STORAGES["default"]` entry that `url` names (an empty url: the folder `MEDIA_ROOT`)."""
    if not url:
        # No location: the storage follows MEDIA_ROOT (LEADOPS_MEDIA_ROOT), also when tests move it.
        return {"BACKEND": FILE_BACKEND}
    parts = urlsplit(url)
    if parts.scheme == "file":
        if parts.netloc or not parts.path.startswith("/"):
            raise ImproperlyConfigured("LEADOPS_STORAGE_URL: a file URL names an absolute folder: file:///srv/media")
        return {"BACKEND": FILE_BACKEND, "OPTIONS": {"location": unquote(parts.path)}}
    if parts.scheme != "s3":
        raise ImproperlyConfigured(
            f"LEADOPS_STORAGE_URL must start with s3:// or file://, not {parts.scheme or url[:10]!r}.")
    if parts.username or parts.password:
        raise ImproperlyConfigured("LEADOPS_STORAGE_URL must not hold credentials: set AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY instead.")
    if not parts.hostname:
        raise ImproperlyConfigured("LEADOPS_STORAGE_URL names no bucket: s3://BUCKET[/PREFIX]")
    options: dict[str, Any] = {
        "bucket_name": parts.netloc, "location": unquote(parts.path).strip("/"),
        # Private objects, signed download links, and never a silent overwrite of an artifact.
        "default_acl": None, "querystring_auth": True, "file_overwrite": False,
    }
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _S3_OPTIONS:
            raise ImproperlyConfigured(f"LEADOPS_STORAGE_URL: unknown option {name!r} "
                                       f"(known: {', '.join(sorted(_S3_OPTIONS))}).")
        options[name] = _option(name, value)
    return {"BACKEND": S3_BACKEND, "OPTIONS": options}

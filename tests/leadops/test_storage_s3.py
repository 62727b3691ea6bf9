"""Evidence and artifacts on more than one app node: an S3-compatible bucket chosen by LEADOPS_STORAGE_URL.

The bucket is a real S3-protocol server (moto in server mode) started by the test on 127.0.0.1;
where it cannot start, the tests skip and say why.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage, storages
from django.urls import reverse
from PIL import Image

from leadops.storage import default_storage_from_url
from queueing.models import AttemptEvidence
from tests.e2e.servers import free_port
from tests.factories import make_jobs

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "leadops-test"


def test_storage_url_unset_keeps_the_media_folder():
    assert default_storage_from_url("") == {"BACKEND": "django.core.files.storage.FileSystemStorage"}


def test_storage_url_names_an_s3_bucket_with_its_options():
    entry = default_storage_from_url(
        "s3://evidence-bucket/node-files?endpoint_url=http://127.0.0.1:9000&region_name=me-south-1"
        "&addressing_style=path&querystring_expire=600")
    assert entry["BACKEND"] == "storages.backends.s3.S3Storage"
    assert entry["OPTIONS"] == {
        "bucket_name": "evidence-bucket", "location": "node-files", "default_acl": None,
        "querystring_auth": True, "file_overwrite": False, "endpoint_url": "http://127.0.0.1:9000",
        "region_name": "me-south-1", "addressing_style": "path", "querystring_expire": 600}
    assert default_storage_from_url("file:///srv/media")["OPTIONS"] == {"location": "/srv/media"}


@pytest.mark.parametrize(("url", "message"), [
    ("ftp://host/x", "must start with s3:// or file://"),
    ("s3://key:secret@bucket", "must not hold credentials"),
    ("s3://bucket?endpont_url=http://x", "unknown option 'endpont_url'"),
    ("s3://bucket?use_ssl=maybe", "use_ssl must be true or false"),
    ("file://relative/path", "absolute folder"),
])
def test_a_wrong_storage_url_is_refused_with_a_reason(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        default_storage_from_url(url)


def test_settings_read_the_storage_url_from_the_environment(tmp_path):
    # A fresh process, as a deployment starts: the environment alone picks the bucket.
    code = ("import django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'leadops.settings'; django.setup(); "
            "from django.conf import settings; print(settings.STORAGES['default']['BACKEND'], "
            "settings.STORAGES['default']['OPTIONS']['bucket_name'])")
    env = {"PATH": "/usr/bin:/bin", "DEBUG": "true", "LEADOPS_STORAGE_URL": "s3://shared-bucket/leadops",
           "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["storages.backends.s3.S3Storage", "shared-bucket"]


@pytest.fixture(scope="module")
def s3_server():
    """A moto S3 server on a free port of 127.0.0.1, with the test bucket; skipped when it cannot start."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        pytest.skip(f"no S3-protocol server to start: {exc} (pip install 'moto[s3]' Flask flask-cors)")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
    except OSError as exc:
        pytest.skip(f"the moto S3 server cannot listen on 127.0.0.1:{port}: {exc}")
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="test", aws_secret_access_key="test")
    client.create_bucket(Bucket=BUCKET)
    try:
        yield endpoint, client
    finally:
        server.stop()


@pytest.fixture
def bucket_storage(s3_server, settings, monkeypatch):
    endpoint, client = s3_server
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    url = f"s3://{BUCKET}/node-files?endpoint_url={endpoint}&region_name=us-east-1&addressing_style=path"
    settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_url(url)}
    return url, client


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 120, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.django_db
def test_evidence_uploaded_to_one_node_is_read_by_another_from_the_bucket(bucket_storage, signed, admin_client):
    url, client = bucket_storage
    assert type(storages["default"]).__name__ == "S3Storage" == default_storage.__class__.__name__
    make_jobs(1)
    job = signed.pull(1).json()["jobs"][0]
    png = _png()
    response = signed.evidence(job["id"], job["attempt_id"], png)
    assert response.status_code == 200, response.content
    evidence = AttemptEvidence.objects.get(pk=response.json()["evidence_id"])
    # The object is in the bucket, under the prefix, not on this node's disk.
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert f"node-files/{evidence.storage_name}" in keys
    # Another node: a storage of its own built from the same URL reads the same bytes.
    from storages.backends.s3 import S3Storage

    other_node = S3Storage(**default_storage_from_url(url)["OPTIONS"])
    with other_node.open(evidence.storage_name, "rb") as stored:
        assert stored.read() == png
    # The admin serves it from the bucket through the same storage API (DLQ and attempt pages).
    page = admin_client.get(reverse("admin:queueing_attemptevidence_file", args=[evidence.pk]))
    assert page.status_code == 200
    assert b"".join(page.streaming_content if page.streaming else [page.content]) == png


@pytest.mark.django_db
def test_the_evidence_purge_deletes_the_object_from_the_bucket(bucket_storage, signed):
    import datetime as dt

    from django.utils import timezone

    from queueing.services import evidence_purge

    _, client = bucket_storage
    make_jobs(1)
    job = signed.pull(1).json()["jobs"][0]
    evidence_id = signed.evidence(job["id"], job["attempt_id"], _png()).json()["evidence_id"]
    name = AttemptEvidence.objects.get(pk=evidence_id).storage_name
    assert evidence_purge(older_than=timezone.now() + dt.timedelta(seconds=1)) == 1
    keys = [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert f"node-files/{name}" not in keys


def test_a_bucket_without_its_client_library_is_a_system_check_error(settings):
    from leadops.checks import check_storage_backend

    settings.STORAGES = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.nowhere.S3Storage"}}
    assert [message.id for message in check_storage_backend()] == ["leadops.E005"]
    settings.STORAGES = {**settings.STORAGES, "default": default_storage_from_url("s3://bucket")}
    assert check_storage_backend() == []

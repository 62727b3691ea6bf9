"""The command line of the reference worker: where its key comes from and where a pushed key goes."""

from __future__ import annotations

import json
import stat

import pytest

from worker_client.__main__ import build_parser, credentials_writer, load_credentials, parse_leads_per_job


def test_secret_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEADOPS_WORKER_SECRET", "from-env")
    args = build_parser().parse_args(["--url", "http://x", "--worker-id", "w", "--key-id", "k"])

    assert load_credentials(args) == ("w", "k", "from-env")


def test_missing_secret_is_a_one_line_error(monkeypatch):
    monkeypatch.delenv("LEADOPS_WORKER_SECRET", raising=False)
    args = build_parser().parse_args(["--url", "http://x", "--worker-id", "w", "--key-id", "k"])

    with pytest.raises(SystemExit) as caught:
        load_credentials(args)
    assert "\n" not in str(caught.value.code)


def test_a_pushed_key_is_stored_privately_and_used_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADOPS_WORKER_SECRET", raising=False)
    path = tmp_path / "state" / "credentials.json"

    credentials_writer(path)("k-2", "new-secret")

    assert json.loads(path.read_text()) == {"key_id": "k-2", "secret": "new-secret"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    args = build_parser().parse_args(["--url", "http://x", "--worker-id", "w", "--key-id", "k-1", "--secret", "old",
                                      "--credentials-file", str(path)])
    assert load_credentials(args) == ("w", "k-2", "new-secret")


def test_leads_per_job_is_n_or_a_range():
    assert parse_leads_per_job("7") == 7
    assert parse_leads_per_job("5-40") == (5, 40)


def test_an_enrolled_credentials_file_names_its_worker(tmp_path, monkeypatch):
    monkeypatch.delenv("LEADOPS_WORKER_SECRET", raising=False)
    path = tmp_path / "credentials.json"

    credentials_writer(path, worker_id="w-enrolled")("k-1", "s-1")

    args = build_parser().parse_args(["--url", "http://x", "--credentials-file", str(path)])
    assert load_credentials(args) == ("w-enrolled", "k-1", "s-1")

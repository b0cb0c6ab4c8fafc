"""One way to AWS: with only the original AWS_* variables (no AIRFLOW_CONN_AWS_DEFAULT, no boto3
credentials anywhere else) the S3 export, its verify and purge, the report store and SNS all use
the connection built from the configuration. AWS_SSLENABLED keeps the original's meaning."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meccano.errors import StorageError
from meccano.settings.config import load_settings
from meccano.settings.connections import aws_conn_id, aws_connection, aws_extra
from tests.support.export import NOW, SHARED_BUCKET, TargetReader, configure_export, db_rows, run_chain, seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def only_original_aws(s3_server, monkeypatch, tmp_path):
    """The original's variables only; boto3's own credential search finds nothing."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "placeholder")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")  # restored to absent after the test
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_ACCESSKEYID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRETACCESSKEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_ENDPOINTURL", s3_server.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    client = s3_server.client()
    for bucket in (SHARED_BUCKET, "meccano-reports-orig"):
        try:
            client.create_bucket(Bucket=bucket)
        except (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists):
            pass
    return s3_server


@pytest.mark.services
def test_export_verify_purge_with_only_original_variables(iotdb, only_original_aws, tmp_path, monkeypatch):
    configure_export(tmp_path, monkeypatch)
    remote = f"orig-{datetime.now(UTC):%H%M%S%f}"
    monkeypatch.setenv("EXPORT_BUCKET", SHARED_BUCKET)
    monkeypatch.setenv("EXPORT_REMOTEDIRECTORY", remote + "/")
    old, recent = seed(iotdb)
    result = run_chain(load_settings(), iotdb, run_id="orig", when=NOW)
    assert result["rows"] == sum(old.values()) and result["purged"] == sum(old.values())
    assert TargetReader(only_original_aws.client(), SHARED_BUCKET, prefix=f"{remote}/facts").rows() == old
    assert db_rows(iotdb) == recent


@pytest.mark.services
def test_wrong_original_secret_is_refused_not_bypassed(iotdb, only_original_aws, tmp_path, monkeypatch):
    """Proof that the configured keys are what S3 sees: a wrong one fails, naming the cause, never the key."""
    configure_export(tmp_path, monkeypatch)
    monkeypatch.setenv("EXPORT_BUCKET", SHARED_BUCKET)
    monkeypatch.setenv("AWS_SECRETACCESSKEY", "wrong-Secret-Value-1")
    seed(iotdb)
    with pytest.raises(StorageError) as err:
        run_chain(load_settings(), iotdb, run_id="wrong", when=NOW)
    assert "credentials" in str(err.value) and "wrong-Secret-Value-1" not in str(err.value)


@pytest.mark.services
def test_report_published_to_s3_with_only_original_variables(sqlite_iotdb, only_original_aws, airflow_db,
                                                             monkeypatch):
    from meccano.plugins.factory import build_dags
    from meccano.reports.store import ReportStore

    monkeypatch.setenv("MECCANO_REPORTS_DIR", "s3://meccano-reports-orig/reports")
    sqlite_iotdb.execute("INSERT INTO Facts (channel, year, month, day, week_day, hour, minute, second, "
                         "device_group, device, sensor, data, creationDate) VALUES "
                         "('c', 2026, 1, 1, 1, 0, 0, 0, 'g', 'dev1', 1, 1, CURRENT_TIMESTAMP)")
    run = build_dags(only_dag_id="updatesByDevice")["updatesByDevice"].test()
    assert run.state == "success"
    store = ReportStore.from_settings(load_settings())
    latest = store.latest("updatesByDevice")
    assert latest is not None and store.read("updatesByDevice", latest.stamp, "output.png")[:4] == b"\x89PNG"
    keys = [o["Key"] for o in only_original_aws.client().list_objects_v2(Bucket="meccano-reports-orig")["Contents"]]
    assert any(k.endswith("/output.png") for k in keys)


def test_an_airflow_connection_still_wins(monkeypatch):
    defined = json.dumps({"conn_type": "aws", "login": "fromAirflow", "password": "p",
                          "extra": {"region_name": "eu-west-1"}})
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", defined)
    monkeypatch.setenv("AWS_ACCESSKEYID", "fromConfig")
    settings = load_settings()
    assert aws_conn_id(settings) == "aws_default"
    import os

    assert os.environ["AIRFLOW_CONN_AWS_DEFAULT"] == defined  # never overridden
    assert aws_connection(settings).login == "fromAirflow"


def test_built_connection_follows_configuration_changes(monkeypatch):
    """A changed configuration is a new connection id: nothing cached per id can serve the old keys."""
    import os

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", "placeholder")
    monkeypatch.delenv("AIRFLOW_CONN_AWS_DEFAULT")
    monkeypatch.setenv("AWS_ACCESSKEYID", "key-one")
    first = aws_conn_id(load_settings())
    monkeypatch.setenv("AWS_ACCESSKEYID", "key-two")
    second = aws_conn_id(load_settings())
    assert first != second and first.startswith("aws_default_cfg_") and second.startswith("aws_default_cfg_")
    assert json.loads(os.environ["AIRFLOW_CONN_" + second.upper()])["login"] == "key-two"
    assert "AIRFLOW_CONN_AWS_DEFAULT" not in os.environ  # the Airflow name stays free for a real connection
    assert aws_connection(load_settings()).login == "key-two"


@pytest.mark.parametrize(("ssl", "endpoint", "expected_url", "verify"), [
    ("true", "s3.local:8333", "https://s3.local:8333", None),
    ("false", "s3.local:8333", "http://s3.local:8333", None),  # the original: sslEnabled false = plain HTTP
    ("false", "https://s3.local", "https://s3.local", False),  # TLS without certificate check
    ("true", "https://s3.local", "https://s3.local", None),
])
def test_ssl_enabled_means_what_the_original_meant(monkeypatch, ssl, endpoint, expected_url, verify):
    monkeypatch.setenv("AWS_SSLENABLED", ssl)
    monkeypatch.setenv("AWS_ENDPOINTURL", endpoint)
    extra = aws_extra(load_settings())
    assert extra["endpoint_url"] == expected_url and extra.get("verify") is verify
    assert extra["config_kwargs"] == {"s3": {"addressing_style": "path"}}


def test_no_endpoint_is_plain_aws(monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINTURL", raising=False)
    assert aws_extra(load_settings()) == {"region_name": "sa-east-1"}

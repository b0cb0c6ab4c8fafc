from meccano.iotdb.schema import OWN_TABLES, TABLES, inspect_schema


def test_mariadb_iotdb_has_full_schema(iotdb):
    tables, indexes, views = inspect_schema(iotdb)
    assert {*TABLES, *OWN_TABLES} <= tables
    assert "Facts_creationDate_idx" in indexes["Facts"]
    assert {"DeviceStatus", "DeviceActivity"} <= views
    assert iotdb.scalar("SELECT COUNT(*) FROM Facts") == 0

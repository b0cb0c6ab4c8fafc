"""Each engine runs its example plugin as a DAG (``dag.test()``) against MariaDB."""

from __future__ import annotations

import pytest

from meccano.plugins.factory import build_dags

ENGINES = ["example_native", "example_python", "example_R"]


def _seed(iotdb) -> None:
    iotdb.execute("INSERT INTO Registration (device, device_group) VALUES "
                  "('aa:01', 'store1'), ('aa:02', 'store1'), ('aa:03', 'store2'), ('aa:04', NULL)")


@pytest.mark.parametrize("dag_id", ENGINES)
def test_example_plugin_reads_and_writes_iotdb(dag_id, iotdb, airflow_db):
    _seed(iotdb)
    dag = build_dags(only_dag_id=dag_id)[dag_id]
    run = dag.test()
    assert run.state == "success"
    rows = iotdb.query("SELECT plugin, device_group, devices FROM ExampleOutput ORDER BY device_group")
    assert {(r["device_group"], r["devices"]) for r in rows} == {("store1", 2), ("store2", 1), (None, 1)}
    assert {r["plugin"] for r in rows} == {f"{dag_id}:1.0"}

#!/usr/bin/env python3
"""Example python script plugin, written as for the original ServiceManager: it reads
the IOTDB credentials from MYSQL_* (or MECCANO_IOTDB_SQLITE in the embedded demo)."""

import os
import sqlite3

PLUGIN = os.environ.get("MECCANO_PLUGIN", "example_python:1.0")
RUN_AT = os.environ.get("MECCANO_LOGICAL_DATE", "manual")

if os.environ.get("MECCANO_IOTDB_SQLITE"):
    con = sqlite3.connect(os.environ["MECCANO_IOTDB_SQLITE"])
    mark = "?"
else:
    import MySQLdb

    con = MySQLdb.connect(host=os.environ["MYSQL_HOST"], port=int(os.environ["MYSQL_PORT"]),
                          user=os.environ["MYSQL_USER"], passwd=os.environ["MYSQL_PASSWORD"],
                          db=os.environ["MYSQL_DATABASE"])
    mark = "%s"
cur = con.cursor()
cur.execute("SELECT device_group, COUNT(*) FROM Registration GROUP BY device_group")
rows = cur.fetchall()
for group, devices in rows:
    cur.execute("INSERT INTO ExampleOutput (plugin, device_group, devices, runAt) "
                f"VALUES ({mark}, {mark}, {mark}, {mark})", (PLUGIN, group, devices, RUN_AT))
con.commit()
con.close()
print(f"counted {len(rows)} device groups")

"""S3 export and purge of old IOTDB table-days: one chain (plan, export, verify, purge) for any
table with a date column, driven by configuration; any of its tasks may run on any worker. Each task
builds one run context (:mod:`meccano.export.context`) and hands it down; formats come from one
registry (:mod:`meccano.export.formats`).

See ``docs/export.md`` for the design (ledger, manifests, re-run rules) and the rooms.
"""

from meccano.errors import ExportError, StorageError, VerifyError

__all__ = ["ExportError", "StorageError", "VerifyError"]

"""S3 export and purge of old IOTDB partitions: one chain (plan, export, verify, purge) for any
table with a date column, driven by configuration; any of its tasks may run on any worker.

See ``docs/export.md`` for the design (ledger, manifests, re-run rules).
"""

from meccano.errors import ExportError, StorageError, VerifyError

__all__ = ["ExportError", "StorageError", "VerifyError"]

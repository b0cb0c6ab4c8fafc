"""S3 export and purge of old IOTDB partitions: one chain (plan, export, upload,
verify, purge, cleanup) for any table with a date column, driven by configuration.

See ``docs/export.md`` for the design (ledger, manifests, re-run rules).
"""

from meccano.export.errors import ExportError, StorageError, VerifyError

__all__ = ["ExportError", "StorageError", "VerifyError"]

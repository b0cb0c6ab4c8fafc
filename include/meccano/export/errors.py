"""Errors of the export chain; their messages say what failed and how to fix it."""

from __future__ import annotations


class ExportError(RuntimeError):
    """The export chain cannot go on; the message names the table, day and the fix."""


class StorageError(ExportError):
    """The export target (S3 or a local folder) failed; the message never carries secrets."""


class VerifyError(ExportError):
    """What is in the target or the database differs from the manifest: nothing is purged."""


class PurgeStopped(ExportError):
    """A purge chunk found other rows than were exported; that chunk was rolled back."""

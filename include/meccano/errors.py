"""The one family of errors the ServiceManager raises on purpose.

Every error derives from :class:`MeccanoError`, so a caller that wants "anything the product
refused" catches one type. Each message names the file, key, table or value at fault and says
how to fix it. The second base keeps the meaning of the standard library's types where a caller
already relies on it (a bad setting is a ``ValueError``, an unsafe file an ``OSError``).
"""

from __future__ import annotations


class MeccanoError(Exception):
    """Base of every error of the project; the message names what is wrong and how to fix it."""


class ConfigError(MeccanoError, ValueError):
    """A setting is missing or invalid; the message names the key and its source."""


class UnsafeFile(MeccanoError, OSError):
    """The file is not a regular file within bounds; the message says what it is instead."""


class PluginError(MeccanoError, RuntimeError):
    """A plugin cannot run; the message says which plugin and how to fix it."""


class PluginsFolderError(ConfigError):
    """The plugins folder is missing, unreadable or holds no plugin; the message names it and the setting."""


class NotificationError(MeccanoError, RuntimeError):
    """SNS refused or could not be reached; the notification stays PENDING."""


class PartitionError(MeccanoError, RuntimeError):
    """The table cannot be partitioned or maintained as asked; the message says why and what to do."""


class ReportStoreError(MeccanoError, RuntimeError):
    """The report store cannot be used or a report is unusable; the message says why."""


class MigrationError(MeccanoError, RuntimeError):
    """The ServiceManager's tables cannot be migrated as asked (a table that is not ours, an unknown
    revision, a downgrade that would drop rows or touch the gateway's tables); nothing was changed by
    the refused step, and the message says what to do."""


class ExportError(MeccanoError, RuntimeError):
    """The export chain cannot go on; the message names the table, day and the fix."""


class StorageError(ExportError):
    """The export target (S3 or a local folder) failed; the message never carries secrets."""


class VerifyError(ExportError):
    """What is in the target or the database differs from the manifest: nothing is purged."""


class PurgeStopped(ExportError):
    """A purge chunk found other rows than were exported; that chunk was rolled back."""


class MissingTable(ExportError, LookupError):
    """A table named in ``export.tables`` does not exist in the IOTDB."""


class AmbiguousValue(MeccanoError):
    """A value holds the CSV fast path's unit or record separator: the writer reads those rows
    the exact way instead. Never reaches a user: the export catches it and falls back."""


class SwitchOverError(MeccanoError, ValueError):
    """An original installation cannot be read as asked (not one, or its variables file is unusable);
    the message names the path and what ``migrate`` expects there."""


class ScriptIsolationUnavailable(PluginError):
    """This worker cannot keep a script plugin from itself the way ``plugins.isolation`` asks (it cannot switch
    to the plugin user, or the pod isolation is not set up); the message names the setting and each fix."""


class PluginUserMissing(PluginError):
    """The OS user that script plugins run as (``plugins.runAs``) does not exist on this worker, this worker
    cannot switch to it, or it is root or the worker's own user; the message names the setting, the user and
    the set-up step that creates one."""


class RunConfWidens(ConfigError, ExportError):
    """A run's ``dag_run.conf`` asks to purge or delete more than config.yml says (a shorter retention, a lower
    age); only config.yml can allow it (``confMayWiden``). A retry cannot help: the run fails at once."""

"""The plugin contract: what a plugin.json declares (manifest, cron), what a run may change (run conf) and what a
native plugin receives (context). Below the rooms that run plugins (reports, export, scripts, plugins)."""

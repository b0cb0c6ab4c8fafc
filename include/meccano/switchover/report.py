"""The report of ``migrate check``: one line per setting and per plugin folder, a summary, an exit code.

Statuses of a setting: ``carried`` (kept as it is), ``replaced`` (by what, in ``detail``),
``ignored`` (why) and ``problem`` (the message ``config show`` gives). Statuses of a plugin
folder: ``unchanged``, ``warning`` (notes say what to check) and ``change`` (what to change,
where). A note with ``action`` set needs the operator before the plugin can run here (a
missing R package, interpreter or module); the other notes are things to check once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SETTING_LABELS = {"carried": "CARRIED", "replaced": "REPLACED", "ignored": "IGNORED", "problem": "PROBLEM"}
PLUGIN_LABELS = {"unchanged": "UNCHANGED", "warning": "WARNING", "change": "CHANGE"}
EXIT_CLEAN, EXIT_ACTION, EXIT_NOT_ORIGINAL = 0, 1, 2


@dataclass(frozen=True)
class SettingItem:
    source: str  # "config.yml [default]" or the variables file's name
    key: str  # the YAML path or the variable
    value: str  # as shown: '***' for a secret
    status: str  # carried | replaced | ignored | problem
    detail: str = ""

    def line(self) -> str:
        text = f"{SETTING_LABELS[self.status]:9} {self.source}: {self.key} = {self.value}"
        return f"{text} -> {self.detail}" if self.detail else text


@dataclass(frozen=True)
class Note:
    text: str
    kind: str = "warning"  # warning | change
    action: bool = False  # the plugin cannot run here until the operator acts


@dataclass
class PluginItem:
    folder: str
    engine: str = "?"
    status: str = "unchanged"
    notes: list[Note] = field(default_factory=list)
    version: str = ""  # "wins over a:1.0", "shadowed: a:2.0 wins"

    def lines(self) -> list[str]:
        head = f"{PLUGIN_LABELS[self.status]:9} plugins/{self.folder} ({self.engine})"
        if self.version:
            head += f" [{self.version}]"
        if not self.notes:
            return [f"{head}: runs unchanged"]
        return [head] + [f"          - {'needs a change: ' if n.kind == 'change' else ''}{n.text}"
                         for n in self.notes]

    @property
    def needs_action(self) -> bool:
        return self.status == "change" or any(n.action for n in self.notes)


@dataclass
class Report:
    path: str
    config_file: str | None
    env_file: str | None
    settings: list[SettingItem] = field(default_factory=list)
    plugins: list[PluginItem] = field(default_factory=list)
    no_home: list[str] = field(default_factory=list)  # what the original had that nothing here takes

    def counts(self) -> dict[str, int]:
        out = {status: 0 for status in (*SETTING_LABELS, *PLUGIN_LABELS)}
        for item in self.settings:
            out[item.status] += 1
        for plugin in self.plugins:
            out[plugin.status] += 1
        return out

    @property
    def exit_code(self) -> int:
        problem = any(s.status == "problem" for s in self.settings)
        return EXIT_ACTION if problem or any(p.needs_action for p in self.plugins) else EXIT_CLEAN

    def summary(self) -> str:
        c = self.counts()
        action = sum(p.needs_action for p in self.plugins)
        verdict = "action needed" if self.exit_code else "ready to apply"
        return (f"summary: {len(self.settings)} settings: {c['carried']} carried over, {c['replaced']} replaced, "
                f"{c['ignored']} ignored, {c['problem']} problems; {len(self.plugins)} plugin folders: "
                f"{c['unchanged']} run unchanged, {c['warning']} with a warning, {c['change']} need a change "
                f"({action} need action before they run here); {verdict}")

    def lines(self) -> list[str]:
        out = [f"original installation: {self.path}",
               f"config: {self.config_file or 'none (no config/config.yml)'}",
               f"variables: {self.env_file or 'none (--env-file not given)'}", "", "settings:"]
        out += [item.line() for item in self.settings] or ["          (none found)"]
        out += ["", "plugins:"]
        for plugin in self.plugins:
            out += plugin.lines()
        if not self.plugins:
            out.append("          (no plugin folder)")
        out += ["", "no home here:"]
        out += [f"          - {text}" for text in self.no_home] or ["          (nothing)"]
        out += ["", self.summary()]
        return out

    def as_json(self) -> dict[str, Any]:
        return {"path": self.path, "config_file": self.config_file, "env_file": self.env_file,
                "settings": [asdict(s) for s in self.settings],
                "plugins": [{**asdict(p), "needs_action": p.needs_action} for p in self.plugins],
                "no_home": list(self.no_home), "counts": self.counts(), "summary": self.summary(),
                "exit_code": self.exit_code}

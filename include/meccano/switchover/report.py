"""The report of ``migrate check``: one line per setting and per plugin folder, a summary, an exit code.

Statuses of a setting: ``carried`` (kept as it is), ``replaced`` (by what, in ``detail``),
``ignored`` (why) and ``problem`` (the message ``config show`` gives). Statuses of a plugin
folder: ``unchanged``, ``warning`` (notes say what to check) and ``change`` (what to change,
where). Each note of a plugin and each setting that is a problem is a :class:`~meccano.problems.Problem`:
severity ``error`` (the plugin needs a change), ``warning`` (the operator must act before the plugin can run
here: a missing R package, interpreter or module) or ``info`` (a thing to check once).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from meccano.problems import Problem, Severity

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

    @property
    def problem(self) -> Problem | None:
        """The setting as a problem (``status`` problem only): where is its key, within its source."""
        return Problem(self.key, self.detail, within=self.source) if self.status == "problem" else None


def change(where: str, text: str) -> Problem:
    """A note: the plugin needs a change before it runs here."""
    return Problem(where, text, severity=Severity.ERROR)


def needs_operator(where: str, text: str) -> Problem:
    """A note: the operator must act (install something) before the plugin can run here."""
    return Problem(where, text, severity=Severity.WARNING)


def check_once(where: str, text: str) -> Problem:
    """A note: a thing to check once."""
    return Problem(where, text, severity=Severity.INFO)


@dataclass
class PluginItem:
    folder: str
    engine: str = "?"
    status: str = "unchanged"
    notes: list[Problem] = field(default_factory=list)
    version: str = ""  # "wins over a:1.0", "shadowed: a:2.0 wins"

    def lines(self) -> list[str]:
        head = f"{PLUGIN_LABELS[self.status]:9} plugins/{self.folder} ({self.engine})"
        if self.version:
            head += f" [{self.version}]"
        if not self.notes:
            return [f"{head}: runs unchanged"]
        return [head] + [f"          - {'needs a change: ' if n.severity == Severity.ERROR else ''}{n.message}"
                         for n in self.notes]

    @property
    def needs_action(self) -> bool:
        return self.status == "change" or any(n.severity != Severity.INFO for n in self.notes)


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
                "settings": [{**asdict(s), "problem": s.problem.as_json() if s.problem else None}
                             for s in self.settings],
                "plugins": [{**asdict(p), "notes": [n.as_json() for n in p.notes], "needs_action": p.needs_action}
                            for p in self.plugins],
                "no_home": list(self.no_home), "counts": self.counts(), "summary": self.summary(),
                "exit_code": self.exit_code}

"""The HTML page of the web view: one server-rendered document, inline CSS, no script,
no external resource (these machines often have no internet)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from zoneinfo import ZoneInfo

from meccano.web.listing import PluginRow

_UTC = ZoneInfo("UTC")

CSS = """
:root{--fg:#1d2733;--muted:#5b6670;--line:#dde3e8;--bg:#f6f8fa;--ok:#2e7d32;--bad:#c62828;--warn:#b26a00}
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;
color:var(--fg);background:#fff}header{padding:14px 24px;border-bottom:1px solid var(--line);background:var(--bg)}
h1{font-size:20px;margin:0}h2{font-size:16px;margin:28px 0 10px}main{padding:0 24px 40px;max-width:1500px}
.muted{color:var(--muted)}a{color:#0b5cad}table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{background:var(--bg);font-weight:600;position:sticky;top:0}tr:hover td{background:#fafbfc}
code{font-size:12px}.badge{display:inline-block;white-space:nowrap;padding:1px 7px;border-radius:10px;font-size:12px;
background:#e8ecef}.success{background:#e3f3e4;color:var(--ok)}.failed{background:#fde7e7;color:var(--bad)}
.running,.queued{background:#fff3dc;color:var(--warn)}.off{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:16px}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 12px}.card h3{font-size:15px;margin:0 0 4px}
.card img{width:100%;height:auto;border:1px solid var(--line);margin-top:6px}
.errors{color:var(--bad);margin:4px 0 0 18px;padding:0}details{margin:6px 0}
iframe{width:100%;height:260px;border:1px solid var(--line);background:#fff}
"""


def _time(value: datetime | None, zone: ZoneInfo = _UTC) -> str:
    """A moment in the fleet's zone, with the zone: ``2026-11-27 02:00 -03``."""
    if value is None:
        return '<span class="muted">–</span>'
    local = value.astimezone(zone)
    return escape(f"{local:%Y-%m-%d %H:%M} {local.tzname()}")


def _a(href: str | None, text: str, blank: bool = False) -> str:
    if not href:
        return ""
    target = ' target="_top"' if blank else ""
    return f'<a href="{escape(href)}"{target}>{escape(text)}</a>'


def _v(value: object) -> str:
    if value is None:
        return '<span class="muted">–</span>'
    if isinstance(value, bool):
        return "yes" if value else '<span class="off">no</span>'
    return escape(str(value))


def _state(row: PluginRow) -> str:
    if not row.valid:
        return '<span class="badge failed">invalid</span>'
    if row.shadowed_by:
        return f'<span class="badge">shadowed by {escape(row.shadowed_by)}</span>'
    if row.last_run is None or row.last_run.state is None:
        return '<span class="badge">never run</span>'
    state = escape(row.last_run.state)
    return f'<span class="badge {state}">{state}</span>'


def render_page(rows: list[PluginRow], listing_href: str, timezone: str = "UTC") -> str:
    now = datetime.now(UTC)
    zone = ZoneInfo(timezone)

    def _t(value: datetime | None) -> str:
        return _time(value, zone)

    valid = [r for r in rows if r.valid]
    invalid = [r for r in rows if not r.valid]
    reports = [r for r in valid if r.type == "report" and not r.shadowed_by]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        f"<title>Meccano plugins</title><style>{CSS}</style></head><body>",
        "<header><h1>Meccano plugins</h1>",
        f'<div class=muted>{len(valid)} valid · {len(invalid)} invalid · {len(reports)} reports · '
        f'as of {_t(now)} · times in {escape(timezone)} · {_a(listing_href, "JSON listing")}</div></header><main>',
        "<h2>Plugins</h2><table id=plugins><thead><tr><th>Plugin</th><th>Version</th><th>Type</th><th>Engine</th>"
        f"<th>Schedule ({escape(timezone)})</th><th>Enabled</th><th>Last run</th><th>Status</th><th>Next run</th>"
        "<th>Links</th>"
        "</tr></thead><tbody>",
    ]
    for r in rows:
        links = " · ".join(x for x in (_a(r.links.dag, "DAG", blank=True), _a(r.links.docs, "docs"),
                                       _a(r.links.report, "report")) if x)
        name = r.name or r.folder
        last = _t(r.last_run.started_at) if r.last_run else _t(None)
        out.append(
            f'<tr data-plugin="{escape(r.folder)}" data-valid="{str(r.valid).lower()}">'
            f"<td><strong>{escape(name)}</strong><div class=muted>{_v(r.description)}</div></td>"
            f"<td>{_v(r.version)}</td><td>{_v(r.type)}</td><td>{_v(r.engine)}</td><td><code>{_v(r.schedule)}</code></td>"
            f"<td>{_v(r.enabled)}{' <span class=muted>(paused)</span>' if r.paused else ''}</td>"
            f"<td>{last}</td><td>{_state(r)}</td><td>{_t(r.next_run)}</td><td>{links}</td></tr>")
    out.append("</tbody></table>")
    if invalid:
        out.append("<h2>Invalid plugins</h2>")
        for r in invalid:
            errs = "".join(f"<li>{escape(e)}</li>" for e in r.errors)
            out.append(f'<div class=card data-invalid="{escape(r.folder)}"><h3>{escape(r.folder)}</h3>'
                       f"<div class=muted>DAG {_a(r.links.dag, r.dag_id, blank=True)} fails with these errors:</div>"
                       f"<ul class=errors>{errs}</ul></div>")
    out.append("<h2>Latest reports</h2><div class=grid>")
    for r in reports:
        if r.links.report and r.report:
            body = (f'<a href="{escape(r.links.report)}"><img class=report src="{escape(r.links.report)}" '
                    f'alt="latest {escape(r.name or "")} chart" width=1000 height=400></a>'
                    f'<div class=muted>made {_t(r.report.created_at)} · {_a(r.links.report_data, "data (CSV)")} · '
                    f'{_a(r.links.report_history, "history")}</div>')
        else:
            body = '<div class=muted>No report yet: it appears after the DAG\'s first successful run.</div>'
        out.append(f'<div class=card data-report="{escape(r.name or "")}"><h3>{escape(r.name or "")}</h3>'
                   f"<div class=muted>{_v(r.description)}</div>{body}</div>")
    if not reports:
        out.append("<div class=muted>No report plugins.</div>")
    out.append("</div><h2>Documentation</h2>")
    for r in valid:
        if r.links.docs and not r.shadowed_by:
            out.append(f"<details><summary>{escape(r.folder)}</summary>"
                       f'<iframe sandbox loading=lazy title="{escape(r.folder)} documentation" '
                       f'src="{escape(r.links.docs)}"></iframe></details>')
    out.append("</main></body></html>")
    return "".join(out)

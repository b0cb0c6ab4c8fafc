"""The HTML page of the web view: one server-rendered document from a Jinja2 template
(``templates/page.html``, autoescaped), inline CSS, no script, no external resource (these
machines often have no internet)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup

from meccano.contract.manifest import PluginType
from meccano.problems import Problem
from meccano.web.listing import PluginRow

TEMPLATES = Path(__file__).with_name("templates")


def local_time(value: datetime, timezone: str = "UTC") -> str:
    """A moment in the fleet's zone, with the zone's abbreviation: ``2026-11-27 02:00 -03``."""
    local = value.astimezone(ZoneInfo(timezone))
    return f"{local:%Y-%m-%d %H:%M} {local.tzname()}"


@cache
def _template() -> tuple[Template, Markup]:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=False, lstrip_blocks=False)
    env.filters["local"] = local_time
    # The style sheet is ours, not data: marked safe so that its quotes stay quotes.
    return env.get_template("page.html"), Markup((TEMPLATES / "page.css").read_text(encoding="utf-8"))


def render_page(rows: list[PluginRow], listing_href: str, timezone: str = "UTC",
                missing: Sequence[Problem] = (), notices: Sequence[str] = ()) -> str:
    """The page; every time shown in ``timezone`` (the fleet's zone, the one the crons run in); what plugin tasks
    need and is ``missing`` at the top, then ``notices`` (choices of the operator the page states plainly, such as
    ``plugins.isolation: none``)."""
    template, css = _template()
    valid = [r for r in rows if r.valid]
    return template.render(
        rows=rows, valid=valid, invalid=[r for r in rows if not r.valid],
        reports=[r for r in valid if r.type == PluginType.REPORT and not r.shadowed_by],
        listing_href=listing_href, now=datetime.now(UTC), css=css, timezone=timezone,
        missing=[m.masked() for m in missing], notices=notices)

"""The HTML page of the web view: one server-rendered document from a Jinja2 template
(``templates/page.html``, autoescaped), inline CSS, no script, no external resource (these
machines often have no internet)."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template
from markupsafe import Markup

from meccano.web.listing import PluginRow

TEMPLATES = Path(__file__).with_name("templates")


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@cache
def _template() -> tuple[Template, Markup]:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=False, lstrip_blocks=False)
    env.filters["utc"] = _utc
    # The style sheet is ours, not data: marked safe so that its quotes stay quotes.
    return env.get_template("page.html"), Markup((TEMPLATES / "page.css").read_text(encoding="utf-8"))


def render_page(rows: list[PluginRow], listing_href: str) -> str:
    template, css = _template()
    valid = [r for r in rows if r.valid]
    return template.render(
        rows=rows, valid=valid, invalid=[r for r in rows if not r.valid],
        reports=[r for r in valid if r.type == "report" and not r.shadowed_by],
        listing_href=listing_href, now=datetime.now(UTC), css=css)

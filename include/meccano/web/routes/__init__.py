"""The web view's routes, one router per concern; ``meccano.web.app`` includes them all."""

from meccano.web.routes import assets, listing, page, reports

ROUTERS = (listing.router, page.router, assets.router, reports.router)

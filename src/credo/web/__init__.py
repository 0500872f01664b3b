"""Server-rendered pages: a portal for subjects, consoles for reviewers and agencies,
a public lookup and a statistics dashboard.

The pages hold no rules of their own: they call the same services (and, where the
API already answers the question, the same API functions) and render the result.

Mount with :func:`install` (``credo.api.app.create_app`` does).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"


def install(app: FastAPI) -> None:
    """Add the pages (``/``, ``/login``, ``/me``, ``/agency``, ``/review``, ``/public``,
    ``/dashboard``) and their static files (``/static``) to ``app``."""
    from credo.web.routes import install_handlers, router

    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    install_handlers(app)

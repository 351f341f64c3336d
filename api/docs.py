"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), served with
their assets from the engine itself: they work on a network that blocks CDNs, and run
no script from another origin. The assets are those the fastapi-offline package ships
(Swagger UI's dist and ReDoc's standalone bundle); the pages start them from files the
engine serves (api/static), so that the Content-Security-Policy holds without inline script."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from api.headers import REDOC_POLICY

#: The engine's own files: the pages' stylesheet, the script that starts Swagger UI.
STATIC = Path(__file__).parent / "static"
#: Swagger UI's and ReDoc's files, from the fastapi-offline package.
DOCS_ASSETS = Path(str(files("fastapi_offline").joinpath("static")))

# Paths are relative to the page (/docs, /redoc), so that the pages work under a root path too.
SWAGGER_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API</title>
<link rel="icon" href="docs/assets/favicon.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui" data-openapi="{openapi}"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="assets/swagger-init.js"></script>
</body>
</html>
"""

REDOC_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – API reference</title>
<link rel="icon" href="docs/assets/favicon.png">
</head>
<body>
<redoc spec-url="{openapi}"></redoc>
<script src="docs/assets/redoc.standalone.js"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add the two pages (the app is made with docs_url=None and redoc_url=None)."""
    openapi = (app.openapi_url or "/openapi.json").lstrip("/")
    app.mount("/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/assets", StaticFiles(directory=STATIC), name="assets")

    @app.get("/docs", include_in_schema=False, response_class=HTMLResponse)
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(SWAGGER_PAGE.format(title=app.title, openapi=openapi))  # the engine's policy holds

    @app.get("/redoc", include_in_schema=False, response_class=HTMLResponse)
    def redoc() -> HTMLResponse:
        return HTMLResponse(
            REDOC_PAGE.format(title=app.title, openapi=openapi), headers={"Content-Security-Policy": REDOC_POLICY}
        )

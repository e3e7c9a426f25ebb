"""Interactive API documentation at /api/v1/docs: Swagger UI from the flask-openapi3-swagger package.

Its assets are served from the installed package, so the page loads nothing from any other host
(and Swagger UI's online validator is turned off for the same reason).
"""
from __future__ import annotations

import os

import flask_openapi3_swagger
from flask import Blueprint, render_template_string
from flask_openapi3_swagger.templates import swagger_html_string

ASSETS = os.path.join(os.path.dirname(flask_openapi3_swagger.__file__), "templates", "swagger")

# The page's asset links are relative ("swagger/js/..."): from /api/v1/docs they land here.
bp = Blueprint("docs", __name__, static_folder=ASSETS, static_url_path="/swagger")


@bp.get("/docs")
def docs():
    """Swagger UI over openapi.json, with every asset from this directory."""
    return render_template_string(swagger_html_string, doc_url="openapi.json",
                                  swagger_config={"validatorUrl": None}, oauth_config=None)

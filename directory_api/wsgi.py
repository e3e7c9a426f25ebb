"""The WSGI entry: `gunicorn 'directory_api.wsgi:app'`.

Importing this module reads the settings from the environment (DIRECTORY_*, see config.SETTINGS),
builds the app and starts its background threads (lease writer, sweeper) in this process.
gunicorn imports it in each worker after the fork, so each worker runs its own threads; with
--preload the master would import it and the threads would not survive the fork.
"""
from __future__ import annotations

import logging
import os
from typing import Mapping

from flask import Flask

from . import create_app
from .config import load_config


def build(environ: Mapping[str, str]) -> Flask:
    """The app for these environment variables, its background threads started."""
    app = create_app(load_config(environ=environ))
    app.extensions["p2p"].start()
    return app


# An entry point configures logging; under gunicorn the root logger has no handler of its own.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = build(os.environ)

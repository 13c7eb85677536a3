"""The WSGI entry point for gunicorn: ``gunicorn slipway.wsgi:app``."""

from slipway.webapp import create_app

app = create_app()

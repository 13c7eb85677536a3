"""A WSGI entry point for any WSGI server (``slipway server api`` serves the app with gevent)."""

from slipway.webapp import create_app

app = create_app()

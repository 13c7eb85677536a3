"""The HTTP router: nginx in front of every app's live instances."""

"""Language runtimes the platform provides itself, outside the images (Node.js releases)."""

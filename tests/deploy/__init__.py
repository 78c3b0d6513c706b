"""Integration tests of ``deploy/``: real nginx, gunicorn and redis-server on 127.0.0.1."""

"""wsgi_apisec: framework-agnostic API security for WSGI apps."""

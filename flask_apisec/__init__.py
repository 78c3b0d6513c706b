"""flask_apisec: the Flask extension on top of wsgi_apisec."""

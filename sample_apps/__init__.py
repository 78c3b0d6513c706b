"""Runnable sample apps for flask-apisec (``python -m sample_apps.demo``)."""

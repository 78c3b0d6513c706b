"""Production deployment: nginx (TLS, client certificates) in front of gunicorn, a Redis
replay store, and the small protected app the integration tests and the load benchmark run.

See ``deploy/README.md``. ``python -m deploy.stack`` starts the whole stack on 127.0.0.1.
"""

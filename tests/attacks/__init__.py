"""The attack suite: one named test per attack class, each run against both entry points.

:mod:`tests.attacks.harness` builds, from one :class:`~tests.attacks.harness.Setup`, the
Flask extension (``flask_apisec.APISec`` + decorators) and the bare WSGI stack
(``wsgi_apisec.middleware.protect`` over a plain WSGI app); the ``target`` fixture in
``conftest.py`` gives every test one :class:`~tests.attacks.harness.Target` of each kind.
"""

"""The sans-IO Message: parts of the target URI for Messages built by hand (a client, a
test), where the WSGI adapter's own checks did not run."""

from __future__ import annotations

import pytest

from wsgi_apisec.errors import InvalidRequest
from wsgi_apisec.message import Message


def test_target_uri_parts() -> None:
    message = Message("GET", "https://api.example/a/b?x=1")
    assert (message.path, message.query, message.path_and_query) == ("/a/b", "x=1", "/a/b?x=1")
    assert Message("GET", "https://api.example").path == "/"


@pytest.mark.parametrize("uri", ["http://[x/a", "https://a]/p", "http://[1.2.3.4]/"])
@pytest.mark.parametrize("part", ["path", "query", "path_and_query"])
def test_unparsable_target_uri_is_a_400_not_a_value_error(uri: str, part: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        getattr(Message("GET", uri), part)
    assert (caught.value.status, caught.value.code) == (400, "request.invalid")

"""directory_api.views.paging: opaque page cursors that carry a row id."""
import base64
import json

import pytest

from directory_api.errors import ValidationError
from directory_api.views.paging import decode_cursor, encode_cursor


@pytest.mark.parametrize("after_id", [0, 1, 1234, 2**62])
def test_round_trip(after_id):
    assert decode_cursor(encode_cursor(after_id)) == after_id


def _b64(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.mark.parametrize("junk", [
    "", "abc", "!!!", "é", encode_cursor(1)[:-2] + "zz",
    _b64({"x": 1}), _b64({"a": -1}), _b64({"a": True}), _b64({"a": 1.5}), _b64({"a": "1"}), _b64([1]),
])
def test_junk_is_a_validation_error_of_the_cursor_field(junk):
    with pytest.raises(ValidationError) as err:
        decode_cursor(junk)
    assert err.value.field == "cursor" and "not a cursor issued by this directory" in err.value.detail

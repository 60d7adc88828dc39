"""The control API's shared request rules: /save takes a file name, never a path."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fedchain.shared.control_api import SaveRequest, model_file_name


@pytest.mark.parametrize(
    ("name", "stored"),
    [("global", "global.safetensors"), ("r10.safetensors", "r10.safetensors"), ("a-b_c.1", "a-b_c.1.safetensors")],
)
def test_plain_names_are_kept(name: str, stored: str) -> None:
    assert model_file_name(name) == stored
    assert SaveRequest(name=name).name == stored


@pytest.mark.parametrize(
    "name", ["../node.key", "/etc/passwd", "a/b", "..", ".", "", ".hidden", "x\\y", "a..b", "x" * 101, "na\x00me"]
)
def test_anything_but_a_file_name_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not a model file name"):
        model_file_name(name)
    with pytest.raises(ValidationError):
        SaveRequest(name=name)


def test_a_path_field_is_refused_with_a_clear_reason() -> None:
    with pytest.raises(ValidationError, match="takes a file name"):
        SaveRequest.model_validate({"path": "/tmp/x.safetensors"})
    assert SaveRequest.model_validate({}).name is None

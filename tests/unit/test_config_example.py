"""config.example.yaml is the settings reference: it must load, and it must name every setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import yaml

from appliance.config import AppConfig, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def missing_settings(struct_type: type[Any], document: dict[str, Any], path: str) -> list[str]:
    missing = []
    for field in msgspec.inspect.type_info(struct_type).fields:
        where = f"{path}.{field.name}"
        if field.name not in document:
            missing.append(where)
        elif isinstance(field.type, msgspec.inspect.StructType) and isinstance(document[field.name], dict):
            missing += missing_settings(field.type.cls, document[field.name], where)
    return missing


def test_the_example_loads_as_a_configuration() -> None:
    assert isinstance(load_config(EXAMPLE), AppConfig)


def test_the_example_names_every_setting() -> None:
    document = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert missing_settings(AppConfig, document, "$") == []

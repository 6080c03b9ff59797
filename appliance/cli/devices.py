"""`zatca-appliance devices` (placeholder until its module lands)."""

from __future__ import annotations

import argparse
from typing import Any


def register(commands: argparse._SubParsersAction[Any]) -> None:
    return None

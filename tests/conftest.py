"""Shared fixtures live in tests/fixtures/, one module per real component."""

pytest_plugins = [
    "tests.fixtures.softhsm",
    "tests.fixtures.emulator",
    "tests.fixtures.service",
]

"""Fixtures shared by every test module; the per-package fixtures live in tests/fixtures/."""
pytest_plugins = ["tests.fixtures.directory", "tests.fixtures.peer"]

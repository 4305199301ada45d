"""The end-to-end tests' fixtures live in tests/worker.py and are registered once, in tests/conftest.py."""

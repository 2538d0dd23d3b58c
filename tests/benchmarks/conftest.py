"""Benchmarks reuse the test servers (tests/conftest.py) and print figures; they assert nothing about speed."""

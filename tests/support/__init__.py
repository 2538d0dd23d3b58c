"""Helpers shared by the tests: imported by test modules and conftests, never test modules themselves."""

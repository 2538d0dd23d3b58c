"""Beacon: cookieless, self-hosted web and product analytics."""

"""Beacon's internal HTTP services, one process each."""

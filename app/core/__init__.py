"""Plumbing shared by every Beacon process: settings, database, Redis, logging, errors, HTTP, health."""

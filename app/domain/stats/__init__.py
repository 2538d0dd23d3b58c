"""The Stats API: Plausible-compatible v2 query and v1 endpoints, answered by the analytics service."""

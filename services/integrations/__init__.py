"""The integrations service."""

"""Annotations: dated notes on a site's timeline."""

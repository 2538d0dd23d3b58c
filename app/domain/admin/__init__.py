"""Instance administration endpoints."""

"""The site's imports page: upload an export of another analytics tool, follow its progress, delete it."""

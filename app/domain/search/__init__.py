"""One search box over sites, goals and annotations (PostgreSQL full-text search)."""

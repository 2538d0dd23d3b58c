"""API keys: hashed, scoped, shown once; Bearer authentication for the REST APIs."""

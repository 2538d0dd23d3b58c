"""Who may do what on a site: a member's role, checked once."""

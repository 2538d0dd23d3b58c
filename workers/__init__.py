"""Background jobs (Dramatiq on Redis) and the scheduler that enqueues periodic ones."""

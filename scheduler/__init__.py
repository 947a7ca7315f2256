"""Scheduled jobs. The database is the source of truth; APScheduler only wakes jobs up."""

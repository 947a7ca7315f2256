"""The web dashboard for staff and moderators under /admin: accounts, login, and its pages."""

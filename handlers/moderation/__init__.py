"""Moderation: screening what citizens write, the moderator chat, and telling authors."""

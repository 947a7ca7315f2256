"""The web chat: a citizen chat page and an embeddable snippet, on the same dialogue core."""

"""Channels: translate between a platform and the dialogue core's neutral vocabulary."""

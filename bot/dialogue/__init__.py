"""The dialogue core, the same for every channel.

The durable inbox and applying its events (``core``), sending what they caused (``outbox``),
per-key order (``locks``), the texts and languages (``i18n``) and the parts' health
(``health``). It knows the flows in ``handlers`` and the storage; it knows no channel, no
scheduler job and no setting: channels, the scheduler and the composition root in ``bot.app``
build on it, never the reverse.
"""

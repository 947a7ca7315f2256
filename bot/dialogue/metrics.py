"""What the dialogue core counts for ``/metrics`` (Prometheus's text format).

Each application has a registry of its own, so two applications in one process (tests, a
process that runs a second instance) never share or clash over counters. Labels are channel
names and lanes only: nothing that says who a participant is.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from handlers.screening.rules import CATEGORY, Screening

# Seconds from applying an update to its replies sent; the round trip to the platform is in it.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """The core's counters, and the outbox backlog as last read from the database."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.updates = Counter(
            "borgerdialog_updates_handled",
            "Inbound events handled, by channel and outcome (applied, repeated, ignored, failed).",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.reply_seconds = Histogram(
            "borgerdialog_update_reply_seconds",
            "From applying an inbound event to its replies sent.",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.flood_waits = Counter(
            "borgerdialog_flood_waits",
            "Sends the platform asked to retry later (Telegram's 429), by channel and lane.",
            ["channel", "lane"],
            registry=self.registry,
        )
        self.recipients_gone = Counter(
            "borgerdialog_recipients_gone",
            "Sends refused because the recipient blocked the bot or is gone (Telegram's 403).",
            ["channel", "lane"],
            registry=self.registry,
        )
        self.screening_actions = Counter(
            "borgerdialog_screening_actions",
            "Citizens' texts screened, by the action taken (allow, review, hold, hide).",
            ["action"],
            registry=self.registry,
        )
        self.screening_flags = Counter(
            "borgerdialog_screening_flags",
            "Flags screening raised, by category (personal_data, offensive, spam, ...).",
            ["category"],
            registry=self.registry,
        )
        self.outbox_pending = Gauge(
            "borgerdialog_outbox_pending",
            "Messages waiting in the outbox, by lane, when /metrics was read.",
            ["lane"],
            registry=self.registry,
        )

    def screened(self, result: Screening) -> None:
        """Count one screened text: its action, and each category it was flagged for once."""
        self.screening_actions.labels(result.action).inc()
        for category in {CATEGORY[flag.kind] for flag in result.flags}:
            self.screening_flags.labels(category).inc()

"""What the bot tells a citizen about their data (/privacy): the same facts in every channel,
and what the citizen's own channel adds to them."""

from __future__ import annotations

from handlers.context import FlowContext
from handlers.email import CONFIRM_WITHIN, WEB_CHANNEL, email_offered
from handlers.events import Outcome


def privacy_notice(ctx: FlowContext, outcome: Outcome) -> None:
    """Say what is stored, who sees it, why, for how long, and whom to contact."""
    organisation = ctx.organisation.name or ctx.t("organisation.unnamed")
    contact = ctx.organisation.privacy_contact or ctx.t("privacy.contact_unset")
    parts = (
        ctx.t(
            "privacy.body",
            organisation=organisation,
            retention_days=ctx.organisation.retention_days,
        ),
        channel_note(ctx),
        ctx.t("privacy.rights", contact=contact),
    )
    outcome.say("\n\n".join(part for part in parts if part))


def channel_note(ctx: FlowContext) -> str:
    """What the citizen's channel keeps beyond what every channel does ("" when nothing)."""
    channel = ctx.participant.channel
    if channel == WEB_CHANNEL:
        note = ctx.t("privacy.channel.web")
        if email_offered(ctx):
            hours = int(CONFIRM_WITHIN.total_seconds() // 3600)
            note += " " + ctx.t("privacy.channel.web_email", hours=hours)
        return note
    if channel == "telegram":
        return ctx.t("privacy.channel.telegram")
    if channel == "whatsapp":
        return ctx.t("privacy.channel.whatsapp")
    if channel == "messenger":
        return ctx.t("privacy.channel.messenger")
    return ""

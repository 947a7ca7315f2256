"""What the bot tells a citizen about their data (/privacy): the same facts in every channel,
and what the citizen's own channel adds to them."""

from __future__ import annotations

from handlers.context import FlowContext, OrganisationInfo, Texts
from handlers.email import CONFIRM_WITHIN, WEB_CHANNEL, email_offered
from handlers.events import Outcome


def privacy_notice(ctx: FlowContext, outcome: Outcome) -> None:
    """Say what is stored, who sees it, why, for how long, and whom to contact."""
    channel = ctx.participant.channel
    outcome.say(notice_text(ctx.t, ctx.organisation, channel, email=email_offered(ctx)))


def notice_text(t: Texts, organisation: OrganisationInfo, channel: str, *, email: bool) -> str:
    """The notice in one language, for one channel (``email``: an address can be given)."""
    parts = (
        t(
            "privacy.body",
            organisation=organisation.name or t("organisation.unnamed"),
            retention_days=organisation.retention_days,
        ),
        channel_note(t, channel, email=email),
        t("privacy.rights", contact=organisation.privacy_contact or t("privacy.contact_unset")),
    )
    return "\n\n".join(part for part in parts if part)


def channel_note(t: Texts, channel: str, *, email: bool) -> str:
    """What a channel keeps beyond what every channel does ("" when nothing)."""
    if channel == WEB_CHANNEL:
        note = t("privacy.channel.web")
        if email:
            hours = int(CONFIRM_WITHIN.total_seconds() // 3600)
            note += " " + t("privacy.channel.web_email", hours=hours)
        return note
    if channel == "telegram":
        return t("privacy.channel.telegram")
    if channel == "whatsapp":
        return t("privacy.channel.whatsapp")
    if channel == "messenger":
        return t("privacy.channel.messenger")
    return ""

"""Hearing back by e-mail, for web citizens who may close the tab: offer, address, confirmation.

A citizen who says yes to hearing back in the web chat is offered e-mail too. The address they
type is stored waiting for confirmation and a link is e-mailed to it (double opt-in); only once
the link is opened (``bot.channels.email``) does anything else go to it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from handlers.common import stale_button
from handlers.context import FlowContext, OrganisationInfo
from handlers.events import Button, ChatAddress, Outcome, Reply
from handlers.payloads import SkipEmail
from storage.email import EMAIL_CHANNEL

# The paths of the pages the confirmation and unsubscribe links open, on the bot's server.
CONFIRM_PATH = "/email/confirm"
UNSUBSCRIBE_PATH = "/email/unsubscribe"
CONFIRM_WITHIN = timedelta(hours=48)
# The participant state key set while the bot waits for an address to be typed.
AWAITING = "awaiting_email"
WEB_CHANNEL = "web"

# A plain address: no display name, no spaces, one @, a dotted domain (IDN as punycode).
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}"
)


@dataclass(frozen=True)
class OrganisationWithEmail(OrganisationInfo):
    """The organisation's facts, and whether it can write to citizens by e-mail (SMTP is set)."""

    email: bool = False


def is_email_address(text: str) -> bool:
    """Tell whether text is one plain e-mail address with an ASCII domain."""
    return len(text) <= 254 and _ADDRESS.fullmatch(text) is not None


def read_address(text: str) -> str | None:
    """Read a typed e-mail address; None unless it is one. Domains are kept as punycode."""
    text = text.strip().strip("<>").strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        # "søborg.dk" is a real domain; mail servers want it as "xn--sborg-wua.dk".
        ascii_domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    address = f"{local}@{ascii_domain}"
    return address if is_email_address(address) else None


def token_hash(token: str) -> str:
    """The stored form of a confirmation token: the token itself is only in the e-mail."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def email_offered(ctx: FlowContext) -> bool:
    """Whether this participant can be offered e-mail: in the web chat, with SMTP set up."""
    organisation = ctx.organisation
    return (
        ctx.participant.channel == WEB_CHANNEL
        and isinstance(organisation, OrganisationWithEmail)
        and organisation.email
    )


def _skip_button(ctx: FlowContext) -> tuple[tuple[Button, ...], ...]:
    return ((Button(ctx.t("email.skip"), payload=SkipEmail().wire),),)


def _awaiting(ctx: FlowContext, waiting: bool) -> None:
    state = {k: v for k, v in ctx.participant.state.items() if k != AWAITING}
    if waiting:
        state[AWAITING] = True
    # A new dict, so the JSON column is seen as changed.
    ctx.participant.state = state


async def offer(ctx: FlowContext, outcome: Outcome) -> None:
    """Offer hearing back by e-mail too, unless the participant already confirmed an address."""
    if not email_offered(ctx):
        return
    given = await ctx.uow.email.of_participant(ctx.participant.id)
    if given is not None and given.confirmed_at is not None:
        return
    _awaiting(ctx, True)
    outcome.say(ctx.t("email.offer"), buttons=_skip_button(ctx), expects_text=True)


async def typed(ctx: FlowContext, outcome: Outcome) -> bool:
    """Take a typed e-mail address when one was asked for; False if none was."""
    if not ctx.participant.state.get(AWAITING):
        return False
    if not email_offered(ctx):
        _awaiting(ctx, False)
        return False
    address = read_address(ctx.event.text)
    if address is None:
        outcome.say(ctx.t("email.invalid"), buttons=_skip_button(ctx), expects_text=True)
        return True
    _awaiting(ctx, False)
    token = secrets.token_urlsafe(32)
    given = await ctx.uow.email.give(
        ctx.participant.id, address, token_hash(token), ctx.now + CONFIRM_WITHIN, ctx.now
    )
    await ctx.uow.email.hide_typed(
        ctx.participant.chat_id, ctx.event.text, ctx.t("email.typed_hidden")
    )
    hours = int(CONFIRM_WITHIN.total_seconds() // 3600)
    organisation = ctx.organisation.name or ctx.t("organisation.unnamed")
    # The e-mail channel turns the link into a full address on the bot's own server.
    confirm = Button(ctx.t("email.confirm_link"), url=f"{CONFIRM_PATH}?token={token}")
    outcome.send_to(
        ChatAddress(EMAIL_CHANNEL, str(given.id)),
        Reply(
            ctx.t("email.confirm_body", organisation=organisation, hours=hours),
            buttons=((confirm,),),
        ),
    )
    outcome.say(ctx.t("email.sent", hours=hours))
    return True


def skip(ctx: FlowContext, outcome: Outcome) -> None:
    """No e-mail, thanks: stop waiting for an address."""
    if not ctx.participant.state.get(AWAITING):
        stale_button(ctx, outcome)
        return
    outcome.ack(ctx.event.button_ack_ref)
    _awaiting(ctx, False)
    if ctx.event.button_message_ref is not None:
        outcome.edit(ctx.event.button_message_ref, ctx.t("email.skipped"))
    else:
        outcome.say(ctx.t("email.skipped"))

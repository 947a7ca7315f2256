"""The first citizen path: greeting, help, privacy, language choice, and a helpful fallback."""

from __future__ import annotations

from handlers.context import FlowContext
from handlers.events import Button, Outcome
from handlers.payloads import ChooseLanguage

SUPPORTED_LANGUAGES = ("da", "en")


def help_(ctx: FlowContext, outcome: Outcome) -> None:
    """List what the participant can do."""
    outcome.say(ctx.t("help.body"))


def _language_buttons() -> tuple[tuple[Button, ...], ...]:
    return (
        (
            Button(label="Dansk", payload=ChooseLanguage("da").wire),
            Button(label="English", payload=ChooseLanguage("en").wire),
        ),
    )


def choose_language(ctx: FlowContext, outcome: Outcome) -> None:
    """Offer the languages as buttons."""
    outcome.say(ctx.t("language.choose"), buttons=_language_buttons())


def set_language(ctx: FlowContext, outcome: Outcome, language: str) -> None:
    """Store the chosen language and confirm it in that language."""
    ctx.participant.language = language
    confirmation = ctx.t(f"language.set.{language}")
    outcome.ack(ctx.event.button_ack_ref)
    if ctx.event.button_message_ref is not None:
        # Replacing the question with the answer removes the buttons, so they cannot be pressed
        # again from an old message.
        outcome.edit(ctx.event.button_message_ref, confirmation)
    else:
        outcome.say(confirmation)


def stale_button(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer a button whose payload is unknown, old or forged, without doing anything."""
    outcome.ack(ctx.event.button_ack_ref, ctx.t("button.stale"), alert=True)


def fallback(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer text the bot has no flow for with what the participant can do instead."""
    outcome.say(ctx.t("fallback.text"))


def unknown_command(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer a command the bot does not know with the ones it does."""
    outcome.say(ctx.t("command.unknown"))


def unsupported_content(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer a photo, sticker, voice message or similar: only text and buttons are read."""
    outcome.say(ctx.t("input.unsupported"))


def unreadable(ctx: FlowContext, outcome: Outcome) -> None:
    """Answer text that arrived broken (characters no database can store): ask again."""
    outcome.say(ctx.t("input.unreadable"), expects_text=True)


def group_chat(ctx: FlowContext, outcome: Outcome) -> None:
    """Point someone who writes in a group to a private chat, where answers stay private."""
    outcome.say(ctx.t("group.private_only"))


def refuse_unverified(ctx: FlowContext, outcome: Outcome, unverified: str, refused: str) -> bool:
    """In a members-only chat, answer someone Telegram did not confirm as a member; True if so.

    ``unverified`` is said when Telegram could not be asked, ``refused`` when it said no.
    """
    event = ctx.event
    if event.sender_verified is True:
        return False
    key = unverified if event.sender_verified is None else refused
    if event.is_button:
        outcome.ack(event.button_ack_ref, ctx.t(key), alert=True)
    else:
        outcome.say(ctx.t(key))
    return True

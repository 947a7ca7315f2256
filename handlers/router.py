"""Route one inbound event to the flow that handles it."""

from __future__ import annotations

from collections.abc import Callable

from handlers import common
from handlers.context import FlowContext
from handlers.events import Outcome

Flow = Callable[[FlowContext, Outcome], None]

# Danish aliases, so a citizen may type the command in the language they read.
COMMANDS: dict[str, Flow] = {
    "start": common.start,
    "help": common.help_,
    "hjaelp": common.help_,
    "privacy": common.privacy,
    "privatliv": common.privacy,
    "language": common.choose_language,
    "sprog": common.choose_language,
}
# Commands that are safe to answer in a group: they reveal nothing about anyone.
GROUP_COMMANDS = {"help", "hjaelp", "privacy", "privatliv"}


async def route(ctx: FlowContext) -> Outcome:
    """Decide what to do with an event and return the messages to send."""
    outcome = Outcome()
    event = ctx.event
    if event.is_button:
        assert event.button is not None
        language = common.parse_language_payload(event.button)
        if language is not None:
            common.set_language(ctx, outcome, language)
        else:
            common.stale_button(ctx, outcome)
        return outcome
    if not event.is_private_chat:
        if event.command in GROUP_COMMANDS:
            COMMANDS[event.command](ctx, outcome)
        elif event.is_command:
            common.group_chat(ctx, outcome)
        # Plain talk in a group is not addressed to the bot; staying quiet is the polite answer.
        return outcome
    flow = COMMANDS.get(event.command or "") if event.is_command else None
    (flow or common.fallback)(ctx, outcome)
    return outcome

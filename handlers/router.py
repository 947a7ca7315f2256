"""Route one inbound event to the flow that handles it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers import common, email, mydata
from handlers.consultation import asking, entry, sheet, summary
from handlers.context import FlowContext
from handlers.events import Outcome, well_formed_payload
from handlers.ideas import entry as ideas
from handlers.ideas import standing, voting, writing
from handlers.moderation import author, desk
from handlers.plan import staff

Flow = Callable[[FlowContext, Outcome], Awaitable[None] | None]

# Danish aliases, so a citizen may type the command in the language they read.
COMMANDS: dict[str, Flow] = {
    "start": entry.start,
    "help": common.help_,
    "hjaelp": common.help_,
    "privacy": common.privacy,
    "privatliv": common.privacy,
    "mydata": mydata.mydata,
    "minedata": mydata.mydata,
    "forget": mydata.forget,
    "glem": mydata.forget,
    "language": common.choose_language,
    "sprog": common.choose_language,
    "stop": mydata.stop,
    "ideas": ideas.ideas_command,
    "ideer": ideas.ideas_command,
    "vote": voting.vote_command,
    "stem": voting.vote_command,
}
# Commands that are safe to answer in a group: they reveal nothing about anyone.
GROUP_COMMANDS = {"help", "hjaelp", "privacy", "privatliv"}
QUESTION_ACTIONS = {"a", "t", "d", "s", "b"}


async def _run(flow: Flow, ctx: FlowContext, outcome: Outcome) -> None:
    result = flow(ctx, outcome)
    if result is not None:
        await result


async def route(ctx: FlowContext) -> Outcome:
    """Decide what to do with an event and return the messages to send."""
    outcome = Outcome()
    event = ctx.event
    if staff.is_staff_chat(ctx) and (not desk.is_moderator_chat(ctx) or staff.claims(ctx)):
        await staff.handle(ctx, outcome)
        return outcome
    if desk.is_moderator_chat(ctx):
        await desk.handle(ctx, outcome)
        return outcome
    if not event.is_private_chat:
        if event.is_button:
            common.stale_button(ctx, outcome)
        elif event.command in GROUP_COMMANDS:
            await _run(COMMANDS[event.command], ctx, outcome)
        elif event.is_command:
            common.group_chat(ctx, outcome)
        # Plain talk in a group is not addressed to the bot; staying quiet is the polite answer.
        return outcome
    if event.unreadable:
        common.unreadable(ctx, outcome)
    elif event.is_button:
        assert event.button is not None
        await press(ctx, outcome, event.button)
    elif event.is_command:
        await _run(COMMANDS.get(event.command or "", common.unknown_command), ctx, outcome)
    elif event.unsupported_content:
        common.unsupported_content(ctx, outcome)
    elif (
        not await writing.typed(ctx, outcome)
        and not await asking.typed(ctx, outcome)
        and not await email.typed(ctx, outcome)
    ):
        common.fallback(ctx, outcome)
    return outcome


async def press(ctx: FlowContext, outcome: Outcome, payload: str) -> None:
    """Dispatch a button by its namespace; anything unknown, old or forged gets a polite no."""
    if not well_formed_payload(payload):
        # Not made by the bot: a forgery or a client's mistake. Nothing below has to guess.
        common.stale_button(ctx, outcome)
        return
    namespace, _, rest = payload.partition(":")
    parts = rest.split(":") if rest else []
    language = common.parse_language_payload(payload)
    if language is not None:
        common.set_language(ctx, outcome, language)
    elif namespace == "c" and len(parts) == 1:
        await entry.choose(ctx, outcome, parts[0])
    elif namespace in QUESTION_ACTIONS:
        await asking.press(ctx, outcome, namespace, parts)
    elif namespace == "i" and len(parts) == 2:
        await ideas_button(ctx, outcome, parts[0], parts[1])
    elif namespace in ("v", "V"):
        await voting.press(ctx, outcome, namespace, parts)
    elif namespace == "rw" and len(parts) == 1:
        await author.rewrite(ctx, outcome, parts[0])
    elif payload == email.SKIP_PAYLOAD:
        email.skip(ctx, outcome)
    elif namespace == "f" and parts in (["y"], ["n"]):
        await mydata.forget_confirmed(ctx, outcome, parts == ["y"])
    elif namespace in ("ok", "h", "r", "e") and parts:
        participation = await sheet.own_participation(ctx, parts[0])
        if participation is None:
            common.stale_button(ctx, outcome)
        elif namespace == "ok" and parts[1:] in (["y"], ["n"]):
            await entry.consent(ctx, outcome, participation, parts[1] == "y")
        elif namespace == "h" and parts[1:] in (["y"], ["n"]):
            await summary.hear_back(ctx, outcome, participation, parts[1] == "y")
        elif namespace == "r" and len(parts) == 1:
            await asking.review(ctx, outcome, participation)
        elif namespace == "e" and len(parts) == 2:
            await asking.edit_answer(ctx, outcome, participation, parts[1])
        else:
            common.stale_button(ctx, outcome)
    else:
        common.stale_button(ctx, outcome)


async def ideas_button(ctx: FlowContext, outcome: Outcome, action: str, participation: str) -> None:
    """i:<action>:<participation>: the ideas menu and its actions."""
    if action == "m":
        await ideas.menu(ctx, outcome, participation)
    elif action == "w":
        await writing.write(ctx, outcome, participation)
    elif action in ("x", "e", "c"):
        await writing.draft_action(ctx, outcome, action, participation)
    elif action == "v":
        await voting.start_voting(ctx, outcome, participation)
    elif action == "h":
        await voting.history(ctx, outcome, participation)
    elif action == "n":
        await voting.notify_me(ctx, outcome, participation)
    elif action == "s":
        await standing.standing(ctx, outcome, participation)
    else:
        common.stale_button(ctx, outcome)

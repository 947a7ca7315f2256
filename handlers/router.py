"""Route one inbound event to the flow that handles it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from handlers import common, email, mydata
from handlers.consultation import asking, entry, sheet, summary
from handlers.context import FlowContext
from handlers.events import Outcome
from handlers.ideas import entry as ideas
from handlers.ideas import standing, voting, writing
from handlers.moderation import author, desk
from handlers.payloads import (
    CancelReport,
    CardButton,
    ChangeAnswer,
    ChooseConsultation,
    ChooseLanguage,
    Consent,
    ForgetAnswer,
    GoBack,
    HearBack,
    IdeasAction,
    IdeasButton,
    PickOption,
    ReportStatement,
    ReviewAnswers,
    RewriteContribution,
    SkipEmail,
    SkipQuestion,
    TickingDone,
    TickOption,
    parse,
)
from handlers.plan import staff
from storage.models import ParticipationStatus

Flow = Callable[[FlowContext, Outcome], Awaitable[None] | None]

# Danish aliases, so a citizen may type the command in the language they read. Telegram's
# menu only takes a-z, hence /hjaelp there; typed by hand (the web chat, a keyboard with æ),
# /hjælp and /idéer are the words people write.
COMMANDS: dict[str, Flow] = {
    "start": entry.start,
    "help": common.help_,
    "hjaelp": common.help_,
    "hjælp": common.help_,
    "privacy": entry.privacy,
    "privatliv": entry.privacy,
    "mydata": mydata.mydata,
    "minedata": mydata.mydata,
    "forget": mydata.forget,
    "glem": mydata.forget,
    "language": common.choose_language,
    "sprog": common.choose_language,
    "stop": mydata.stop,
    "ideas": ideas.ideas_command,
    "ideer": ideas.ideas_command,
    "idéer": ideas.ideas_command,
    "vote": voting.vote_command,
    "stem": voting.vote_command,
}
# Commands that are safe to answer in a group: they reveal nothing about anyone.
GROUP_COMMANDS = {"help", "hjaelp", "hjælp", "privacy", "privatliv"}


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
        # After the answers: an answer that happens to be a slug stays an answer.
        and not await entry.typed_slug(ctx, outcome)
        and not await email.typed(ctx, outcome)
    ):
        common.fallback(ctx, outcome)
    return outcome


async def press(ctx: FlowContext, outcome: Outcome, payload: str) -> None:
    """Dispatch a button by what it names; anything unknown, old or forged gets a polite no."""
    match parse(payload):
        case ChooseLanguage(language) if language in common.SUPPORTED_LANGUAGES:
            common.set_language(ctx, outcome, language)
        case ChooseConsultation(slug):
            await entry.choose(ctx, outcome, slug)
        case PickOption() | TickOption() | TickingDone() | SkipQuestion() | GoBack() as button:
            await asking.press(ctx, outcome, button)
        case IdeasButton(action, participation):
            await ideas_button(ctx, outcome, action, participation)
        case CardButton() | ReportStatement() | CancelReport() as button:
            await voting.press(ctx, outcome, button)
        case RewriteContribution(item):
            await author.rewrite(ctx, outcome, item)
        case SkipEmail():
            email.skip(ctx, outcome)
        case ForgetAnswer(erase):
            await mydata.forget_confirmed(ctx, outcome, erase)
        case Consent() | HearBack() | ReviewAnswers() | ChangeAnswer() as button:
            await participation_button(ctx, outcome, button)
        case _:
            # Not made by the bot, or made for another chat (a moderator's or staff's button).
            common.stale_button(ctx, outcome)


async def participation_button(
    ctx: FlowContext, outcome: Outcome, button: Consent | HearBack | ReviewAnswers | ChangeAnswer
) -> None:
    """A button about one participation: only its own participant may press it."""
    participation = await sheet.own_participation(ctx, button.participation_id)
    if participation is None:
        common.stale_button(ctx, outcome)
    elif (
        isinstance(button, HearBack | ReviewAnswers)
        and participation.status != ParticipationStatus.COMPLETED
    ):
        # Shown only to someone who has answered every question (so consented): pressed
        # before that, an old or forged button would store a wish without consent.
        common.stale_button(ctx, outcome)
    elif isinstance(button, Consent):
        await entry.consent(ctx, outcome, participation, button.given)
    elif isinstance(button, HearBack):
        await summary.hear_back(ctx, outcome, participation, button.wanted)
    elif isinstance(button, ReviewAnswers):
        await asking.review(ctx, outcome, participation)
    else:
        await asking.edit_answer(ctx, outcome, participation, button.question_id)


async def ideas_button(
    ctx: FlowContext, outcome: Outcome, action: IdeasAction, participation: int
) -> None:
    """The ideas menu and its actions."""
    if action == IdeasAction.MENU:
        await ideas.menu(ctx, outcome, participation)
    elif action == IdeasAction.WRITE:
        await writing.write(ctx, outcome, participation)
    elif action in (IdeasAction.SEND_DRAFT, IdeasAction.EDIT_DRAFT, IdeasAction.CANCEL_DRAFT):
        await writing.draft_action(ctx, outcome, action, participation)
    elif action == IdeasAction.VOTE:
        await voting.start_voting(ctx, outcome, participation)
    elif action == IdeasAction.HISTORY:
        await voting.history(ctx, outcome, participation)
    elif action == IdeasAction.NOTIFY:
        await voting.notify_me(ctx, outcome, participation)
    else:
        await standing.standing(ctx, outcome, participation)

"""What a post says, per language and audience: staff's own text, or the automatic posts' texts
written when they go out (so a results post has the results of the moment the round closed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from handlers import questionnaire
from handlers.context import Texts
from handlers.events import MAX_CAPTION_LENGTH, MAX_TEXT_LENGTH
from handlers.moderation.cards import moment_text
from handlers.plan.results import chart_png, gather_results, results_text
from storage.models import PlannedPost, PostKind
from storage.uow import UnitOfWork

LANGUAGES = ("da", "en")
# Texts of the public version (channels and groups) are stored under "public:<language>".
PUBLIC = "public:"

# The channel that needs an approved template outside its 24-hour window (bot.channels.whatsapp).
WHATSAPP_CHANNEL = "whatsapp"

# Build a link that opens a consultation in a channel: (channel, slug) → URL.
ConsultationLink = Callable[[str, str], str]


async def write_automatic(
    uow: UnitOfWork,
    post: PlannedPost,
    texts_in: Callable[[str | None], Texts],
    zone: ZoneInfo,
) -> None:
    """Fill in an automatic post's texts (and chart) from the consultation as it is now."""
    if post.kind not in PostKind.AUTOMATIC or post.consultation_id is None:
        return
    consultation = await uow.consultations.get(post.consultation_id)
    assert consultation is not None
    rounds = {r.position + 1: r for r in await uow.consultations.rounds(consultation.id)}
    round_ = rounds.get(int((post.anchor or {}).get("round") or 1))
    written: dict[str, str] = {}
    button_key = None
    if post.kind == PostKind.RESULTS:
        results = await gather_results(uow, consultation, texts_in, LANGUAGES)
        post.image = chart_png(results, "da")
        limit = MAX_CAPTION_LENGTH if post.image else MAX_TEXT_LENGTH
        for language in LANGUAGES:
            t = texts_in(language)
            written[language] = results_text(results, t, public=False, limit=limit)
            written[PUBLIC + language] = results_text(results, t, public=True, limit=limit)
    else:
        key = (
            "plan.auto.announcement" if post.kind == PostKind.ANNOUNCEMENT else "plan.auto.reminder"
        )
        button_key = (
            "plan.button.take_part"
            if post.kind == PostKind.ANNOUNCEMENT
            else "plan.button.continue"
        )
        for language in LANGUAGES:
            t = texts_in(language)
            written[language] = t(
                key,
                title=questionnaire.pick(consultation.title, language),
                purpose=questionnaire.shorten(
                    questionnaire.pick(consultation.purpose, language), 600
                ),
                closes=moment_text(t, round_.closes_at, zone) if round_ else "",
            )
    post.texts = written
    if button_key is not None:
        post.button = {
            "label": {language: texts_in(language)(button_key) for language in LANGUAGES},
            "consultation": consultation.slug,
        }


def payload_for(
    post: PlannedPost,
    language: str | None,
    channel: str,
    *,
    public: bool,
    link: ConsultationLink,
    paid: bool,
) -> dict[str, Any]:
    """The outbox payload of a post for one recipient's language and channel."""
    language = language if language in LANGUAGES else "da"
    texts = post.texts
    if public and any(key.startswith(PUBLIC) for key in texts):
        texts = {k[len(PUBLIC) :]: v for k, v in texts.items() if k.startswith(PUBLIC)}
    else:
        texts = {k: v for k, v in texts.items() if not k.startswith(PUBLIC)}
    text = questionnaire.pick(texts, language)
    buttons: list[list[dict[str, str]]] = []
    if post.button:
        label = questionnaire.pick(post.button["label"], language)
        url = post.button.get("url") or link(channel, post.button["consultation"])
        buttons = [[{"label": label, "url": url}]]
    payload: dict[str, Any] = {"type": "message", "text": text, "buttons": buttons}
    if post.image is not None:
        payload["image_post"] = post.id
    if paid:
        payload["paid"] = True
    if channel == WHATSAPP_CHANNEL:
        # Outside the citizen's 24-hour window WhatsApp takes only an approved template; the
        # channel sends this one there (None: it refuses, and the report says why).
        payload["template"] = (
            {"name": post.whatsapp_template, "language": language}
            if post.whatsapp_template
            else None
        )
    return payload


@dataclass(frozen=True)
class Preview:
    """A post as one kind of recipient sees it: a language, the public version or a citizen's."""

    language: str
    public: bool
    payload: dict[str, Any]
    # False when the post has no text in the language: its readers get the Danish one.
    translated: bool


async def previews(
    uow: UnitOfWork,
    post: PlannedPost,
    texts_in: Callable[[str | None], Texts],
    zone: ZoneInfo,
    link: ConsultationLink,
    channel: str,
) -> list[Preview]:
    """What the post's recipients will get on ``channel``, in each language: the publisher's own
    payloads. A post of the bot's own not yet written is written as it would be now, on a copy
    (the stored post stays as it is: it is written again when it goes out)."""
    shown = post
    if post.kind in PostKind.AUTOMATIC and not post.texts:
        shown = PlannedPost(
            id=post.id,
            kind=post.kind,
            consultation_id=post.consultation_id,
            anchor=post.anchor,
            audience=post.audience,
            texts={},
            image=None,
            button=None,
            whatsapp_template=post.whatsapp_template,
        )
        await write_automatic(uow, shown, texts_in, zone)
    audience = post.audience
    versions = []
    if audience.get("subscribers") is not None:
        versions.append(False)
    if audience.get("channel") or audience.get("chats"):
        versions.append(True)
    has_public = any(key.startswith(PUBLIC) for key in shown.texts)
    return [
        Preview(
            language,
            public,
            payload_for(shown, language, channel, public=public, link=link, paid=False),
            (PUBLIC + language if public and has_public else language) in shown.texts,
        )
        for public in versions
        for language in LANGUAGES
    ]

"""Publish due posts exactly once: claim in the database, queue one bulk message per recipient,
and keep the staff chat's progress message up to date."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.dialogue.i18n import english_texts
from handlers.context import Texts
from handlers.email import WEB_CHANNEL
from handlers.events import ChatAddress, Phrase, Reply
from handlers.plan import content, rules
from handlers.plan.content import ConsultationLink
from handlers.plan.staff import post_title, progress_text
from storage.email import EMAIL_CHANNEL
from storage.models import OutboxStatus, PlannedPost, PostKind, PostState
from storage.plan import Recipient
from storage.uow import UnitOfWork, UnitOfWorkFactory

logger = logging.getLogger(__name__)

# The progress message is edited at most this often (edits count against a group's 20/minute).
PROGRESS_EVERY = timedelta(seconds=6)
# The channel that takes no post outside its 24-hour window at all (bot.channels.messenger):
# message tags are for narrow uses a consultation's news is not, so such citizens are skipped.
MESSENGER_CHANNEL = "messenger"
POSTS_PER_CHECK = 20
MEGABYTE = 1024 * 1024
# How a post's report names a channel.
CHANNEL_NAMES = {
    "whatsapp": "WhatsApp",
    "messenger": "Messenger",
    "telegram": "Telegram",
    "web": "web chat",
    "email": "e-mail",
}


@dataclass(frozen=True)
class PublishingSettings:
    """Where posts and reports go, and how late a post may still go out."""

    zone: ZoneInfo
    late_window: timedelta
    public_chat: ChatAddress | None = None
    staff_chat: ChatAddress | None = None
    paid_broadcast: bool = False


class Publisher:
    """Turn due posts into bulk messages; tell staff how it goes."""

    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Callable[[], datetime],
        texts_in: Callable[[str | None], Texts],
        settings: PublishingSettings,
        link: ConsultationLink,
        channels: Callable[[], list[str]],
        deliver_chat: Callable[[str, str], Any],
        wake_sender: Callable[[], None] = lambda: None,
        image_limit: Callable[[str], int | None] = lambda _channel: None,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._texts_in = texts_in
        self.settings = settings
        self._link = link
        self._channels = channels
        self._deliver_chat = deliver_chat
        # The largest image a channel takes (None: not known); a bigger one is left out there.
        self._image_limit = image_limit
        self.wake_sender = wake_sender

    async def publish_due(self) -> list[int]:
        """Publish every post whose time has come; return the ids this process published.

        Only the database decides who publishes a post, so a restart, a clock that jumps or a
        second process never sends one twice.
        """
        published: list[int] = []
        while True:
            async with self._uow() as unit:
                due = await unit.plan.due(self._clock(), POSTS_PER_CHECK)
            if not due:
                return published
            for post_id in due:
                if await self.publish(post_id):
                    published.append(post_id)
            if len(due) < POSTS_PER_CHECK:
                return published

    async def publish(self, post_id: int) -> bool:
        """Claim one due post and queue its messages in the same transaction; False if lost."""
        now = self._clock()
        async with self._uow() as unit:
            if not await unit.plan.claim(post_id, now):
                return False
            post = await unit.plan.get(post_id)
            assert post is not None
            verdict, late = rules.late_decision(post.due_at, now, self.settings.late_window)
            if verdict == "skip":
                self._skip(post, late, now)
            else:
                post.late_seconds = late if verdict == "late" else None
                await content.write_automatic(unit, post, self._texts_in, self.settings.zone)
                await self._queue(unit, post, now)
            await self._plan_next(unit, post, now)
            await self._add_report(unit, post, now)
            await unit.commit()
        if self.settings.staff_chat is not None:
            await self._deliver_chat(
                self.settings.staff_chat.channel, self.settings.staff_chat.chat_id
            )
        self.wake_sender()
        return True

    def _skip(self, post: PlannedPost, late: int, now: datetime) -> None:
        window = int(self.settings.late_window.total_seconds() // 60)
        post.state = PostState.SKIPPED
        post.late_seconds = late
        note = Phrase("plan.note.missed", minutes=late // 60, window=window)
        rules.set_note(post, [note], english_texts())
        post.finished_at = now
        logger.warning("post %s skipped: %s", post.id, post.error)

    async def _queue(self, unit: UnitOfWork, post: PlannedPost, now: datetime) -> None:
        recipients = await self._recipients(unit, post)
        available = set(self._channels())
        messages: list[tuple[str, str, dict[str, Any]]] = []
        missing = 0
        no_template = 0
        outside_window = 0
        # Recipients per channel whose platform takes no image this big: they get the text only.
        without_image: dict[str, int] = {}
        image_size = len(post.image) if post.image else 0
        for recipient, public in recipients:
            if recipient.channel not in available:
                missing += 1
                continue
            if (
                recipient.channel == content.WHATSAPP_CHANNEL
                and not post.whatsapp_template
                and not rules.in_service_window(recipient.last_seen_at, now)
            ):
                # WhatsApp refuses free-form messages there, and no template is named.
                no_template += 1
                continue
            if recipient.channel == MESSENGER_CHANNEL and not rules.in_service_window(
                recipient.last_seen_at, now
            ):
                # Messenger takes only message tags there, and a consultation's news fits none.
                outside_window += 1
                continue
            payload = content.payload_for(
                post,
                recipient.language,
                recipient.channel,
                public=public,
                link=self._link,
                paid=self.settings.paid_broadcast,
            )
            messages.append((recipient.channel, recipient.chat_id, payload))
            limit = self._image_limit(recipient.channel) if image_size else None
            if limit is not None and image_size > limit:
                without_image[recipient.channel] = without_image.get(recipient.channel, 0) + 1
        await unit.plan.queue_bulk(post.id, messages, now)
        post.recipients = len(messages)
        skipped: list[Phrase] = []
        if missing:
            skipped.append(Phrase("plan.note.channel_not_running", count=missing))
        if no_template:
            skipped.append(Phrase("plan.note.whatsapp_window", count=no_template))
        if outside_window:
            skipped.append(Phrase("plan.note.messenger_window", count=outside_window))
        for channel, count in without_image.items():
            name = CHANNEL_NAMES.get(channel, channel)
            largest = (self._image_limit(channel) or 0) / MEGABYTE
            size = f"{image_size / MEGABYTE:.1f}"
            skipped.append(
                Phrase(
                    "plan.note.without_image",
                    count=count,
                    channel=name,
                    size=size,
                    largest=f"{largest:.0f}",
                )
            )
        if skipped:
            rules.set_note(post, skipped, english_texts())
        if not messages:
            post.state = PostState.SENT if not missing else PostState.FAILED
            post.finished_at = now
        logger.info("post %s queued for %d recipients", post.id, len(messages))

    async def _recipients(
        self, unit: UnitOfWork, post: PlannedPost
    ) -> list[tuple[Recipient, bool]]:
        """Who gets the post, each once; True for chats that get the public version."""
        audience = post.audience
        chosen: dict[tuple[str, str], tuple[Recipient, bool]] = {}
        public_chats = [int(chat) for chat in audience.get("chats") or []]
        if audience.get("channel") and self.settings.public_chat is not None:
            public_chats.insert(0, int(self.settings.public_chat.chat_id))
        for chat in public_chats:
            recipient = Recipient("telegram", str(chat), None)
            chosen.setdefault((recipient.channel, recipient.chat_id), (recipient, True))
        kind = audience.get("subscribers")
        subscribers: list[Recipient] = []
        consultation_id = post.consultation_id
        if kind == "all":
            subscribers = await unit.plan.subscribers()
        elif consultation_id is not None and kind == "hear_back":
            subscribers = await unit.plan.subscribers(consultation_id)
        elif consultation_id is not None and kind == "unfinished":
            subscribers = await unit.plan.unfinished(consultation_id)
        elif consultation_id is not None and kind == "segment":
            segment = audience["segment"]
            questions = await unit.consultations.questions(consultation_id)
            question = next((q for q in questions if q.key == segment["question"]), None)
            if question is not None:
                subscribers = await unit.plan.segment(
                    consultation_id, question.id, set(segment["options"])
                )
        elif consultation_id is not None and kind == "decision":
            statement = await unit.ideas.by_number(consultation_id, int(audience["statement"]))
            if statement is not None:
                subscribers = await unit.plan.concerned_by(statement)
        if EMAIL_CHANNEL in self._channels():
            # Web citizens who gave a confirmed address get it by e-mail too: they may have
            # closed the tab long ago.
            web = [r.chat_id for r in subscribers if r.channel == WEB_CHANNEL]
            subscribers += await unit.email.confirmed_for_web(web)
        for recipient in subscribers:
            chosen.setdefault((recipient.channel, recipient.chat_id), (recipient, False))
        return list(chosen.values())

    async def _plan_next(self, unit: UnitOfWork, post: PlannedPost, now: datetime) -> None:
        """A repeating post plans its next time as it goes out (or is skipped)."""
        repeat = post.repeat
        if not repeat or post.occurrence >= int(repeat["times"]):
            return
        due_at = rules.next_occurrence(post.due_at, repeat, self.settings.zone)
        await unit.plan.add(
            PlannedPost(
                key=f"{post.key}#{post.occurrence + 1}" if post.key else None,
                consultation_id=post.consultation_id,
                kind=post.kind,
                texts={} if post.kind in PostKind.AUTOMATIC else post.texts,
                image=None if post.kind in PostKind.AUTOMATIC else post.image,
                image_file_id=post.image_file_id,
                button=post.button,
                whatsapp_template=post.whatsapp_template,
                audience=post.audience,
                anchor=None,
                repeat=repeat,
                occurrence=post.occurrence + 1,
                due_at=due_at,
                state=PostState.PLANNED,
                recipients=0,
                created_by=post.created_by,
                created_at=now,
                updated_at=now,
            )
        )

    async def _add_report(self, unit: UnitOfWork, post: PlannedPost, now: datetime) -> None:
        """Start the staff chat's progress message for the post."""
        staff = self.settings.staff_chat
        if staff is None:
            return
        text = await self._progress(unit, post, await unit.plan.delivery_counts(post.id))
        post.progress_message_id = await unit.outbox.add(
            staff.channel, staff.chat_id, Reply(text).to_payload(), now
        )
        post.progress_shown_at = now

    async def _progress(self, unit: UnitOfWork, post: PlannedPost, counts: dict[str, int]) -> str:
        """The progress message's text, in the default language (staff's)."""
        consultation = (
            await unit.consultations.get(post.consultation_id) if post.consultation_id else None
        )
        t = self._texts_in(None)
        return progress_text(t, post, post_title(post, consultation, t), counts, self.settings.zone)

    async def report_progress(self, post_ids: set[int]) -> None:
        """Finish posts with nothing left to send, and edit their progress messages."""
        staff = self.settings.staff_chat
        changed = False
        for post_id in sorted(post_ids):
            now = self._clock()
            async with self._uow() as unit:
                post = await unit.plan.get(post_id)
                if post is None or post.state != PostState.SENDING:
                    continue
                counts = await unit.plan.delivery_counts(post_id)
                finished = not counts.get(OutboxStatus.PENDING)
                if finished:
                    delivered = counts.get(OutboxStatus.SENT, 0)
                    failed = counts.get(OutboxStatus.FAILED, 0)
                    post.state = PostState.FAILED if failed and not delivered else PostState.SENT
                    post.finished_at = now
                    if failed:
                        reasons = await unit.plan.failure_reasons(post_id)
                        # The reasons are the platforms' own texts, quoted as they came.
                        failures = [
                            Phrase("plan.note.failed", count=n, reason=reason)
                            for reason, n in reasons
                        ]
                        rules.set_note(post, failures, english_texts())
                    logger.info("post %s finished: %s", post_id, counts)
                due = (
                    post.progress_shown_at is None or now - post.progress_shown_at >= PROGRESS_EVERY
                )
                if staff is not None and post.progress_message_id and (finished or due):
                    shown = await unit.outbox.get(post.progress_message_id)
                    if shown is not None and shown.external_message_id is not None:
                        text = await self._progress(unit, post, counts)
                        edit = Reply(text, edit_ref=shown.external_message_id)
                        await unit.outbox.add(staff.channel, staff.chat_id, edit.to_payload(), now)
                        post.progress_shown_at = now
                        changed = True
                await unit.commit()
        if changed and staff is not None:
            await self._deliver_chat(staff.channel, staff.chat_id)

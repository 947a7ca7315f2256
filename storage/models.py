"""Typed SQLAlchemy models; every column that holds a time is timezone-aware UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# A naming convention makes constraint names predictable, so migrations can drop and alter them
# on PostgreSQL and SQLite alike.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JsonDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and always hand back aware UTC datetimes.

    SQLite keeps no offset, so without this a value read back would be naive.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; store timezone-aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base with the project's naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class InboxStatus:
    """States of an inbox event."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class OutboxStatus:
    """States of an outbox message."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


class Lane:
    """Sending lanes: replies to someone who just wrote never wait behind bulk sends."""

    REPLY = "reply"
    BULK = "bulk"


class Participant(Base):
    """A citizen (or staff member) as seen through one chat on one channel."""

    __tablename__ = "participants"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    # The language the participant chose; None means "follow the platform's hint".
    language: Mapped[str | None] = mapped_column(String(8))
    # Where the participant is in a dialogue; the only conversation state there is.
    state: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    # How many inbound events were applied; lets tests and audits prove exactly-once, in order.
    events_applied: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by /stop: no messages the participant did not ask for, until they write again.
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class InboxEvent(Base):
    """One inbound event (a Telegram update, a web-chat message), stored before it is confirmed."""

    __tablename__ = "inbox_events"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_inbox_events_status_id", "status", "id"),
        # A chat's pending events, which a process applies before the chat's next (migration
        # 0010); only pending rows, so it stays small.
        Index(
            "ix_inbox_events_pending_chat",
            "channel",
            "chat_id",
            "id",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # Up to 128: a WhatsApp message id (wamid) can be longer than 64 characters.
    external_id: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str | None] = mapped_column(String(64))
    # The raw event. Cleared once handled: the inbox is a safety net, not an archive of what
    # citizens wrote.
    payload: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    status: Mapped[str] = mapped_column(String(16), default=InboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    # The participant's events_applied after this event: 1, 2, 3… in the order they were applied.
    applied_sequence: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class OutboxMessage(Base):
    """One message to deliver, written in the same transaction as the change that caused it."""

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_status_lane", "status", "lane"),
        Index("ix_outbox_messages_chat", "channel", "chat_id", "id"),
        Index("ix_outbox_messages_post", "post_id", "status"),
        # Status notifications (WhatsApp) name a message by the platform's id only.
        Index("ix_outbox_messages_external", "channel", "external_message_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    lane: Mapped[str] = mapped_column(String(16), default=Lane.REPLY)
    inbox_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("inbox_events.id", ondelete="SET NULL")
    )
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    external_message_id: Mapped[str | None] = mapped_column(String(128))
    # What the platform said of it since (WhatsApp: sent, delivered, read, failed).
    platform_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The planned post a bulk message belongs to (one row per recipient of a broadcast).
    post_id: Mapped[int | None] = mapped_column(ForeignKey("planned_posts.id", ondelete="SET NULL"))
    # A bulk sender holds the message until then; a sender killed mid-send lets it go again.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # After a failed attempt the message waits until then (backoff).
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Consultation(Base):
    """A consultation defined by communications staff; texts are {language: text} mappings."""

    __tablename__ = "consultations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    languages: Mapped[list[str]] = mapped_column(JsonDocument)
    title: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    purpose: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    # {"decided": {...}, "influence": {...}, "decides": {...}}
    basis: Mapped[dict[str, dict[str, str]]] = mapped_column(JsonDocument)
    # {"description": {...}, "quotas": [{"question", "option", "minimum"}]}
    target_group: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    citizen_role: Mapped[str] = mapped_column(String(32))
    organiser: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    results: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    # {"personal_data": "hold", ..., "reports_to_hold": 3}: how screening findings are acted on.
    moderation: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    # The ideas phase, when there is one: citizens write statements and vote on each other's.
    ideas_opens_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ideas_closes_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # {"prompt": {...}, "max_length": 280, "premoderation": false}
    ideas: Mapped[dict[str, Any]] = mapped_column(JsonDocument, default=dict)
    # The last participant and statement numbers handed out: the small, stable, pseudonymous
    # ids of the Pol.is format, counted per consultation.
    participant_counter: Mapped[int] = mapped_column(Integer, default=0)
    statement_counter: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsultationFile(Base):
    """A consultation file as it was imported: the text staff wrote, comments and all.

    The definition tables hold what the file means, not the file; to change a consultation,
    staff edit its file and import it again, so the newest one is kept to start from, and the
    earlier ones to see what it said before. A text is kept only when it differs from the one
    before it.
    """

    __tablename__ = "consultation_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE"), index=True
    )
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(Text)


class Round(Base):
    """A period in which a consultation accepts answers."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("consultation_id", "position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime())
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Question(Base):
    """One question of a consultation, identified across re-imports by its key."""

    __tablename__ = "questions"
    __table_args__ = (UniqueConstraint("consultation_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    # [{"key": "nord", "label": {"da": "Nord"}}]
    options: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument)
    # Kind-specific settings: min/max, max_length, scale end labels.
    settings: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    optional: Mapped[bool] = mapped_column(default=False)
    # {"question": key, "in": [option keys]}: asked only when an earlier answer matches.
    condition: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ParticipationStatus:
    """Where a participant stands in one consultation."""

    INVITED = "invited"
    DECLINED = "declined"
    ANSWERING = "answering"
    COMPLETED = "completed"


# The states in which a participant has said yes to taking part (and may have answered).
CONSENTED_STATUSES = (ParticipationStatus.ANSWERING, ParticipationStatus.COMPLETED)


class Participation(Base):
    """One participant's part in one consultation; the export's pseudonymous row."""

    __tablename__ = "participations"
    __table_args__ = (
        UniqueConstraint("consultation_id", "participant_id"),
        UniqueConstraint("consultation_id", "number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    pseudonym: Mapped[str] = mapped_column(String(16), unique=True)
    # The participant's number within the consultation (Pol.is's voter-id and author-id).
    number: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    current_question_id: Mapped[int | None] = mapped_column(
        ForeignKey("questions.id", ondelete="SET NULL")
    )
    # The outbox message that asked the current question, so its buttons can be removed later.
    question_message_id: Mapped[int | None] = mapped_column(Integer)
    # Options ticked on a multiple-choice question before "done".
    pending_selection: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    hear_back: Mapped[bool | None] = mapped_column()
    consent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    declined_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set by a moderator: the participant can no longer contribute to this consultation.
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The participant asked to be told when statements they have not voted on arrive.
    notify_statements_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Visibility:
    """Whether a free-text answer may be used and shown, as screening and moderators decide."""

    VISIBLE = "visible"
    HELD = "held"  # waits for a moderator
    HIDDEN = "hidden"


class Answer(Base):
    """An answer; a skipped optional question is an answer with no value."""

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("participation_id", "question_id"),
        Index("ix_answers_fingerprint", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None once the author used /forget: an idea stays, anonymised, as the forget text says.
    participation_id: Mapped[int | None] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE")
    )
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id", ondelete="CASCADE"))
    # Option keys (list), a number, or text; None when skipped.
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    skipped: Mapped[bool] = mapped_column(default=False)
    # The detected language of a free-text answer.
    language: Mapped[str | None] = mapped_column(String(8))
    visibility: Mapped[str] = mapped_column(String(8), default=Visibility.VISIBLE)
    # A hash of a free text's letters, to find copies (handlers.screening.rules.fingerprint).
    fingerprint: Mapped[str | None] = mapped_column(String(32))
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ItemStatus:
    """Where a contribution stands in moderation."""

    WAITING = "waiting"
    APPROVED = "approved"
    HIDDEN = "hidden"
    REPHRASE = "rephrase"  # the author was asked to rephrase
    BLOCKED = "blocked"  # hidden, and its author blocked
    RESUBMITTED = "resubmitted"  # the author wrote a new text; a new item may follow


class ModerationItem(Base):
    """A contribution screening flagged (or citizens reported), for a moderator to decide."""

    __tablename__ = "moderation_items"
    __table_args__ = (Index("ix_moderation_items_status_created", "status", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    # The contribution: a free-text answer or a statement.
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="SET NULL"))
    statement_id: Mapped[int | None] = mapped_column(
        ForeignKey("statements.id", ondelete="SET NULL")
    )
    participation_id: Mapped[int | None] = mapped_column(
        ForeignKey("participations.id", ondelete="SET NULL")
    )
    # The author's pseudonym, kept for the audit trail after /forget removes the participation.
    pseudonym: Mapped[str] = mapped_column(String(16))
    # [{"kind", "start", "end", "detail"}] as screening found them.
    flags: Mapped[list[dict[str, Any]]] = mapped_column(JsonDocument, default=list)
    # What screening did: review (shown), hold or hide.
    action: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.WAITING)
    reports: Mapped[int] = mapped_column(Integer, default=0)
    # The outbox message that showed the item in the moderator chat, to edit it on decision.
    card_message_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str | None] = mapped_column(String(64))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When a digest last mentioned the item, so a long wait is reminded of, not repeated.
    digested_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModerationReport(Base):
    """A citizen's report of someone else's contribution; one per reporter and contribution."""

    __tablename__ = "moderation_reports"
    __table_args__ = (
        UniqueConstraint("answer_id", "participation_id"),
        UniqueConstraint("statement_id", "participation_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The reported contribution: an answer or a statement.
    answer_id: Mapped[int | None] = mapped_column(ForeignKey("answers.id", ondelete="CASCADE"))
    statement_id: Mapped[int | None] = mapped_column(
        ForeignKey("statements.id", ondelete="CASCADE")
    )
    # The reporter.
    participation_id: Mapped[int] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE")
    )
    reason: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StatementOrigin:
    """Who wrote a statement."""

    CITIZEN = "citizen"
    STAFF = "staff"  # seeded from the consultation file
    IMPORTED = "imported"  # from a Pol.is conversation


class Decision:
    """What staff decided about a statement, told to its author and the voters who asked."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    CONSIDERING = "considering"
    MERGED = "merged"
    ALL = (ACCEPTED, REJECTED, CONSIDERING, MERGED)


class Statement(Base):
    """A short statement in a consultation's ideas phase, for others to vote on."""

    __tablename__ = "statements"
    __table_args__ = (
        UniqueConstraint("consultation_id", "number"),
        Index("ix_statements_consultation_visibility", "consultation_id", "visibility"),
        Index("ix_statements_fingerprint", "fingerprint"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    consultation_id: Mapped[int] = mapped_column(ForeignKey("consultations.id", ondelete="CASCADE"))
    # The statement's number within the consultation (Pol.is's comment-id).
    number: Mapped[int] = mapped_column(Integer)
    # None for staff statements, and once the author used /forget (the statement stays).
    participation_id: Mapped[int | None] = mapped_column(
        ForeignKey("participations.id", ondelete="SET NULL")
    )
    origin: Mapped[str] = mapped_column(String(16))
    # {language: text}: a citizen's statement has one language, staff may give both.
    text: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    language: Mapped[str] = mapped_column(String(8))
    fingerprint: Mapped[str | None] = mapped_column(String(32))
    visibility: Mapped[str] = mapped_column(String(8), default=Visibility.VISIBLE)
    # Staff look for citizens to help carry this out (co-implementation).
    wants_volunteers: Mapped[bool] = mapped_column(default=False)
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    merged_into_id: Mapped[int | None] = mapped_column(
        ForeignKey("statements.id", ondelete="SET NULL")
    )
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VoteValue:
    """Votes as Pol.is writes them."""

    AGREE = 1
    DISAGREE = -1
    PASS = 0


class Vote(Base):
    """A participant's current vote on a statement."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("statement_id", "participation_id"),
        Index("ix_votes_participation", "participation_id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"))
    participation_id: Mapped[int] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE")
    )
    value: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VoteEvent(Base):
    """Every vote as cast, changes included: the history Pol.is's votes.csv holds."""

    __tablename__ = "vote_events"
    __table_args__ = (Index("ix_vote_events_statement", "statement_id", "id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"))
    participation_id: Mapped[int] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE")
    )
    value: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class Volunteer(Base):
    """A citizen who wants to help carry out a statement and agreed to be contacted."""

    __tablename__ = "volunteers"
    __table_args__ = (UniqueConstraint("statement_id", "participation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    statement_id: Mapped[int] = mapped_column(ForeignKey("statements.id", ondelete="CASCADE"))
    participation_id: Mapped[int] = mapped_column(
        ForeignKey("participations.id", ondelete="CASCADE")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class OpinionGroups(Base):
    """The latest opinion groups of a consultation, computed from its votes."""

    __tablename__ = "opinion_groups"

    consultation_id: Mapped[int] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE"), primary_key=True
    )
    # How many vote events there were when computed: nothing new, nothing to compute.
    vote_events_seen: Mapped[int] = mapped_column(Integer)
    # handlers.ideas.groups.GroupModel as a document.
    model: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PostState:
    """Where a planned post stands."""

    PLANNED = "planned"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    # Missed by more than the late window (the bot was down): reported, never sent.
    SKIPPED = "skipped"
    OPEN = (PLANNED, SENDING)


class PostKind:
    """What a planned post is; the automatic kinds write their text when they go out."""

    MESSAGE = "message"  # staff wrote the text
    ANNOUNCEMENT = "announcement"  # a round opens
    REMINDER = "reminder"  # a round closes soon: to those who started and did not finish
    RESULTS = "results"  # a round closed: thanks, numbers and a chart
    AUTOMATIC = (ANNOUNCEMENT, REMINDER, RESULTS)


class PlannedPost(Base):
    """One entry of the content plan: what goes out, to whom, when; and how it went."""

    __tablename__ = "planned_posts"
    __table_args__ = (Index("ix_planned_posts_state_due", "state", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The sheet's own id for the row (or "auto:…" for automatic posts), so importing the sheet
    # again updates a post instead of adding it twice.
    key: Mapped[str | None] = mapped_column(String(80), unique=True)
    consultation_id: Mapped[int | None] = mapped_column(
        ForeignKey("consultations.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16), default=PostKind.MESSAGE)
    # {language: text}; automatic posts fill it in when they go out.
    texts: Mapped[dict[str, str]] = mapped_column(JsonDocument, default=dict)
    image: Mapped[bytes | None] = mapped_column(LargeBinary)
    # Telegram's id of the uploaded image, so 5,000 recipients do not mean 5,000 uploads.
    image_file_id: Mapped[str | None] = mapped_column(String(200))
    # {"label": {language: text}, "url": "https://…"} or {"label": …, "consultation": slug}.
    button: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    # The approved WhatsApp template it goes as to citizens outside the 24-hour window; None:
    # they are skipped (WhatsApp refuses free-form messages there).
    whatsapp_template: Mapped[str | None] = mapped_column(String(512))
    # {"chats": [chat ids], "subscribers": "all"|"hear_back"|"unfinished"|"segment"|"decision",
    #  "segment": {"question": key, "options": [keys]}, "statement": number}
    audience: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    # Tied to a phase instead of a clock time: {"event": "opens"|"closes"|"ideas_opens"|
    # "ideas_closes", "round": n, "offset_minutes": m}; moving the phase moves the post.
    anchor: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    # {"every_days": n, "times": n}: repeats at the same local time of day.
    repeat: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    occurrence: Mapped[int] = mapped_column(Integer, default=1)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default=PostState.PLANNED)
    # How late it went out (the bot was down at its time), in seconds.
    late_seconds: Mapped[int | None] = mapped_column(Integer)
    # Why it was skipped, cancelled or partly failed: in English (the command line, the logs),
    # and as phrases (handlers.events.Phrase documents) that staff read in their language.
    error: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[list[dict[str, Any]] | None] = mapped_column(JsonDocument)
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    # The staff chat's progress message (an outbox message), edited while the post goes out.
    progress_message_id: Mapped[int | None] = mapped_column(Integer)
    progress_shown_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # "sheet", "staff <pseudonym>", "auto", "cli".
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ModerationLogEntry(Base):
    """The audit trail: every screening result and decision; pseudonyms only, never text."""

    __tablename__ = "moderation_log"
    __table_args__ = (Index("ix_moderation_log_at", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # No foreign keys: the trail outlives the items and consultations it tells about.
    item_id: Mapped[int | None] = mapped_column(Integer)
    consultation: Mapped[str] = mapped_column(String(40))
    event: Mapped[str] = mapped_column(String(24))
    # "screening", "citizen <pseudonym>" or "moderator <pseudonym>".
    actor: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(16))
    before: Mapped[str | None] = mapped_column(String(16))
    after: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[list[str]] = mapped_column(JsonDocument, default=list)
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class DefinitionVersion(Base):
    """One row: moved by every change of a consultation definition (consultation, rounds,
    questions), so each process knows when the definitions it cached are out of date."""

    __tablename__ = "definition_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger)


class HealthProbe(Base):
    """One row per process, rewritten by each health check: proof that writes still commit."""

    __tablename__ = "health_probes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime())


class WebMessage(Base):
    """A bot message in a web-chat conversation, kept so reconnects and other tabs can show it.

    Telegram keeps the chat history for its users; in the web chat this table does.
    """

    __tablename__ = "web_messages"
    # Ids never come back after /forget deletes rows: a tab updates messages by id.
    __table_args__ = (
        Index("ix_web_messages_chat", "chat_id", "id"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chat_id: Mapped[str] = mapped_column(String(64))
    # "bot" for the bot's messages, "citizen" for what the participant wrote.
    author: Mapped[str] = mapped_column(String(8))
    text: Mapped[str] = mapped_column(String(4096))
    buttons: Mapped[list[list[dict[str, str]]]] = mapped_column(JsonDocument, default=list)
    # The participant answers this one by typing, so the page focuses the text field.
    expects_text: Mapped[bool] = mapped_column(default=False)
    # A file for the participant (their data as JSON): {"filename", "content"} in base64.
    attachment: Mapped[dict[str, str] | None] = mapped_column(JsonDocument)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EmailAddress(Base):
    """A web participant's e-mail address for hearing back, used only once they confirmed it.

    Erased at unsubscribe and at /forget. Ids never come back: an unsubscribe link names one.
    """

    __tablename__ = "email_addresses"
    __table_args__ = ({"sqlite_autoincrement": True},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # One address per participant; a new one replaces the old.
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="CASCADE"), unique=True
    )
    address: Mapped[str] = mapped_column(String(254))
    # SHA-256 of the confirmation link's token (the token itself is only in the e-mail);
    # cleared once used, so a link works once.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    token_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StaffRole:
    ADMIN = "admin"
    STAFF = "staff"
    MODERATOR = "moderator"
    ALL = (ADMIN, STAFF, MODERATOR)


class StaffAccount(Base):
    """A person who logs in to the dashboard: staff, a moderator or an admin."""

    __tablename__ = "staff_accounts"
    __table_args__ = ({"sqlite_autoincrement": True},)

    # Ids never come back: the audit trail's pseudonym of an account is made from its id.
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased, so one person cannot get two accounts by the case of a letter.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # An argon2id hash in its PHC string form (parameters and salt included).
    password_hash: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StaffSession(Base):
    """A logged-in browser; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("staff_accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())


class StaffLoginAttempt(Base):
    """One login attempt from an address, kept for the per-address limit (in the database, so
    every process counts the same attempts)."""

    __tablename__ = "staff_login_attempts"
    __table_args__ = (Index("ix_staff_login_attempts_address_at", "address_hash", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A keyed hash of the IP address: enough to count, not enough to tell who it was.
    address_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())

"""The citizen's consultation: intro, consent, one question at a time, summary, hearing back.

- ``entry``: /start, the list of open consultations, the intro and consent;
- ``asking``: one question per message, taps and typed answers, back, skip, changing answers;
- ``summary``: thanks, the summary of answers, hearing back;
- ``sheet``: what they share (the participant's sheet, showing answers and times).
"""

from handlers.consultation.asking import edit_answer, press, review, typed
from handlers.consultation.entry import choose, consent, start
from handlers.consultation.sheet import active_participation, own_participation, show_answer
from handlers.consultation.summary import hear_back

__all__ = [
    "active_participation",
    "choose",
    "consent",
    "edit_answer",
    "hear_back",
    "own_participation",
    "press",
    "review",
    "show_answer",
    "start",
    "typed",
]

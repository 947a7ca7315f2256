"""The citizen's consultation: intro, consent, one question at a time, summary, hearing back.

- ``entry``: /start, the list of open consultations, the intro and consent;
- ``asking``: one question per message, taps and typed answers, back, skip, changing answers;
- ``summary``: thanks, the summary of answers, hearing back;
- ``sheet``: what they share (the participant's sheet, showing answers and times).

The package imports nothing itself: the ideas flows use ``sheet`` and are used by ``summary``,
so importing every module here would make the two packages import each other.
"""

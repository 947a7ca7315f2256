"""E-mail: the messages web citizens asked to hear back by, and the pages its links open.

- ``sender``: the channel sender the outbox and the bulk lane deliver ``email`` messages through
  (plain text over SMTP, with an unsubscribe link in every message);
- ``pages``: the confirmation and unsubscribe pages on the bot's own web server;
- ``links``: the unsubscribe link, signed with this installation's secret.
"""

"""What Meta's two channels (WhatsApp, Messenger) share: not a channel itself.

Both platforms deliver to a webhook Meta verifies with the same handshake and signs with the
same HMAC, answer from the same Graph API with the same error shape, and take shorter buttons and
texts than the flows write. Each channel package imports what it needs from here; this package
imports no channel (``tests/test_architecture.py``).
"""

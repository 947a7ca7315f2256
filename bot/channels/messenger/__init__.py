"""The Facebook Messenger channel: Meta's signed webhook in, the Send API out."""

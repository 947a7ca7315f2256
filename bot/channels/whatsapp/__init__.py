"""The WhatsApp Cloud API channel: Meta's signed webhook in, the Graph API out."""

"""borgerdialog: a chat bot for digital citizen dialogue."""

__version__ = "0.1.0"

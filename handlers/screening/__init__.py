"""Screening of citizens' texts: personal data, offensive language, spam and off-language."""

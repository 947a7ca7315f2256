"""Dialogue flows. Channel-neutral: nothing here imports telegram, aiohttp or sqlalchemy."""

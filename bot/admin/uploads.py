"""Forms that carry a file (``enctype="multipart/form-data"``), read within a limit of our own.

The web application reads at most 64 KiB of any request body (``client_max_size`` in bot/web.py:
the web chat's and webhooks' forms are small, and a big body from anyone is only a load). A
dashboard form that uploads a file reads its parts here instead, one at a time and each within
the limit the caller gives, so a file over the limit becomes a polite message on the page and
the fields sent before it (a pasted text) come back filled in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import BodyPartReader, web

# A form has a handful of fields; a body of thousands of tiny parts is no form of ours.
MAX_PARTS = 20
CHUNK = 64 * 1024


@dataclass
class UploadForm:
    """What a form with a file sent: its text fields, its files (by field name; an empty file
    field left out), and the field that was over the limit, if one was (reading stops there)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    too_large: str | None = None


async def read_upload_form(request: web.Request, limit: int) -> UploadForm:
    """Read a posted multipart form, each field at most ``limit`` bytes (a form sent without a
    file, url-encoded, is read as the application reads any form)."""
    form = UploadForm()
    if not request.content_type.startswith("multipart/"):
        try:
            posted = await request.post()
        except web.HTTPRequestEntityTooLarge:
            form.too_large = "(form)"
            return form
        except (UnicodeDecodeError, ValueError, LookupError):
            # Not UTF-8, or an unknown charset (no browser sends either): no CSRF token is
            # found, so it is refused.
            return form
        form.fields = {name: value for name, value in posted.items() if isinstance(value, str)}
        return form
    try:
        reader = await request.multipart()
        for _ in range(MAX_PARTS):
            part = await reader.next()
            if part is None:
                break
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue  # a nested multipart or a nameless part: no field of ours
            data = bytearray()
            while chunk := await part.read_chunk(CHUNK):
                data += chunk
                if len(data) > limit:
                    form.too_large = part.name
                    # Not read on: whatever the browser sends after it is not waited for.
                    return form
            if part.filename is not None:
                if part.filename or data:
                    form.files[part.name] = bytes(data)
            else:
                form.fields[part.name] = data.decode("utf-8", errors="replace")
    except ValueError:
        # A body that is no readable multipart form: no CSRF token is found, so it is refused.
        return UploadForm()
    return form

"""Uploaded files: the multi-file form field, limits, safe names and clean-up on failure.

Files are stored under random names in ``UPLOAD_DIR`` (outside ``static/``), or in object
storage with ``S3_BUCKET`` (``disclosure.storage``), and are only
ever served as downloads (``Content-Disposition: attachment``, ``application/octet-stream``,
``nosniff``) by access-checked views; see ``disclosure.views._download``.
"""

import os
import unicodedata
from contextlib import contextmanager

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

MAX_NAME_LENGTH = 150


def safe_filename(name: str) -> str:
    """A display name that cannot traverse paths or disguise its extension.

    Keeps the last path component, drops control and format characters (which include the
    right-to-left override used to disguise ``exe.pdf`` as ``fdp.exe``), trims leading dots
    and bounds the length while keeping the extension.
    """
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").split("/")[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp"))
    name = name.strip().lstrip(". ")
    if len(name) > MAX_NAME_LENGTH:
        stem, ext = os.path.splitext(name)
        ext = ext[:20]
        name = stem[: MAX_NAME_LENGTH - len(ext)] + ext
    return name or "attachment"


@contextmanager
def removed_on_failure():
    """Collect stored attachments; delete their files if the surrounding work fails.

    Use it outside ``transaction.atomic()`` so a rolled-back transaction leaves no files
    behind: ``with removed_on_failure() as stored, transaction.atomic(): ...``.
    """
    from disclosure import storage

    stored = []
    try:
        yield stored
    except BaseException:
        for attachment in stored:
            storage.discard(attachment.file.name)
        raise


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """Several files under one field name, checked against the configured limits."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        kwargs.setdefault("required", False)
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        files = [f for f in (data if isinstance(data, (list, tuple)) else [data]) if f]
        if len(files) > settings.MAX_ATTACHMENTS:
            raise ValidationError(
                f"Attach at most {settings.MAX_ATTACHMENTS} files (you sent {len(files)}).",
                code="too_many_files",
            )
        cleaned = [super(MultipleFileField, self).clean(f, initial) for f in files]
        limit, total_limit = settings.MAX_ATTACHMENT_BYTES, settings.MAX_ATTACHMENTS_TOTAL_BYTES
        for f in cleaned:
            if f.size > limit:
                raise ValidationError(
                    f"{safe_filename(f.name)} is {filesizeformat(f.size)}; each file may be at most "
                    f"{filesizeformat(limit)}.",
                    code="file_too_large",
                )
        total = sum(f.size for f in cleaned)
        if total > total_limit:
            raise ValidationError(
                f"The files add up to {filesizeformat(total)}; together they may be at most "
                f"{filesizeformat(total_limit)}.",
                code="files_too_large",
            )
        return cleaned

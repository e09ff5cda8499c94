"""Public forms. Field names of ``ReportForm`` are a public contract: researchers script
submissions against them (``title``, ``description``, ``asset``, ``reporter_name``,
``reporter_email``, ``attachments``, ...)."""

import secrets
import unicodedata

from django import forms
from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator

from disclosure import pgp
from disclosure.models import Credit, Report
from disclosure.uploads import MultipleFileField

REPLACEMENT_CHAR = "\ufffd"
SUBMISSION_ID_SALT = "disclosure.report-form.submission-id"


def new_submission_id() -> str:
    return signing.Signer(salt=SUBMISSION_ID_SALT).sign(secrets.token_urlsafe(24))


def verified_submission_id(value: str) -> str:
    try:
        return signing.Signer(salt=SUBMISSION_ID_SALT).unsign(value) if value else ""
    except signing.BadSignature:
        return ""
SHOWN_AT_SALT = "disclosure.report-form.shown-at"


def _check_text(value: str, *, single_line: bool) -> str:
    if REPLACEMENT_CHAR in value:
        raise ValidationError(
            "This contains bytes that are not valid UTF-8 text. Please send it as UTF-8.", code="invalid_utf8"
        )
    allowed = "" if single_line else "\t\n\r"
    if any(unicodedata.category(ch) == "Cc" and ch not in allowed for ch in value):
        raise ValidationError("This contains control characters; please remove them.", code="control_chars")
    return value


def check_encrypted(text: str, *, max_output: int = pgp.TEXT_MAX_OUTPUT) -> "pgp.Plaintext | None":
    """A pasted PGP message must be one complete block, encrypted to the team key. Returns
    what the message holds (size, SHA-256) when the team key could decrypt it here."""
    if not pgp.team_fingerprint():
        raise ValidationError("This looks like a PGP message, but this portal has no team key yet. Send the text "
                              "unencrypted, or email us to agree on a key.", code="no_team_key")
    # Reading our keyring first: when gpg itself cannot run, that is our fault, not the
    # message's, and its PGPError reaches the view (the form comes back with a 503).
    pgp.team_key()
    try:
        return pgp.check_encrypted_to_team(text, max_output=max_output)
    except pgp.PGPError as error:
        raise ValidationError(str(error), code="pgp") from None


def check_encrypted_upload(upload) -> None:
    """An attached ASCII-armored PGP message is checked like a pasted one; what it holds
    (the original file's size and SHA-256) is kept on the upload as ``plaintext``."""
    data = upload.read()
    upload.seek(0)
    if pgp.is_armored_message_file(data):
        text = data.decode("ascii", "replace")
        try:
            upload.plaintext = check_encrypted(text, max_output=pgp.file_max_output())
        except ValidationError as error:
            raise ValidationError(f"{upload.name}: {error.messages[0]}", code="pgp") from None


def parse_reporter_key(armored: str):
    if not armored.strip():
        return None
    try:
        return pgp.inspect_reporter_key(armored)
    except pgp.PGPError as error:
        raise ValidationError(str(error), code="reporter_key") from None


class TextCheckedForm(forms.Form):
    """Rejects invalid UTF-8 (decoded as U+FFFD) and control characters in text fields."""

    single_line_fields: tuple = ()

    def clean(self):
        cleaned = super().clean()
        for name, value in list(cleaned.items()):
            if isinstance(value, str) and value:
                try:
                    _check_text(value, single_line=name in self.single_line_fields)
                except ValidationError as error:
                    self.add_error(name, error)
        return cleaned


class ReportForm(TextCheckedForm, forms.ModelForm):
    single_line_fields = ("title", "asset", "vulnerability_type", "reporter_name", "credit_name")

    attachments = MultipleFileField(
        label="Attachments",
        help_text="Screenshots, proof-of-concept code or logs. They are stored privately and only ever downloaded.",
    )
    # A one-time nonce rendered into the form: a reload or a double click of the same form
    # finds the first report instead of creating a second one. Scripts may leave it out.
    submission_id = forms.CharField(widget=forms.HiddenInput, required=False, max_length=100)
    reporter_public_key = forms.CharField(
        label="Your PGP public key", required=False, max_length=200_000,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false", "class": "mono"}),
        help_text="Optional. Paste your ASCII-armored public key and every email we send you is encrypted to it "
                  "(and signed by us).")
    # Spam controls: a field people never see (bots fill it in) and the signed time the
    # form was shown (a browser that submits faster than a person can is refused).
    website = forms.CharField(required=False, label="Leave this field empty", max_length=200,
                              widget=forms.TextInput(attrs={"autocomplete": "off", "tabindex": "-1"}))
    shown_at = forms.CharField(widget=forms.HiddenInput, required=False, max_length=200)

    class Meta:
        model = Report
        fields = [
            "title", "description", "asset", "vulnerability_type", "steps_to_reproduce", "impact",
            "reporter_name", "reporter_email", "credit", "credit_name",
        ]
        labels = {
            "title": "Title",
            "description": "Description",
            "asset": "Affected URL or product",
            "vulnerability_type": "Vulnerability type or CWE",
            "reporter_name": "Your name",
            "reporter_email": "Your email address",
            "credit": "Public credit",
            "credit_name": "Name or handle to credit",
        }
        help_texts = {
            "title": "A one-line summary, for example “Stored XSS in the profile page”.",
            "description": "What you found. Markdown is allowed.",
            "asset": "Where the vulnerability is: a URL, product name or version.",
            "vulnerability_type": "For example “CWE-79: Cross-site scripting” or “SQL injection”.",
            "steps_to_reproduce": "Numbered steps we can follow to see the problem.",
            "impact": "What an attacker could achieve.",
            "reporter_name": "Optional. Leave empty to stay anonymous.",
            "reporter_email": "Optional, but without it we cannot email you: keep your status link safe.",
            "credit": "Whether you want to be thanked publicly once the report is resolved.",
            "credit_name": "The name or handle we thank publicly, if you ask for credit.",
        }
        widgets = {
            "description": forms.Textarea(attrs={"rows": 10}),
            "steps_to_reproduce": forms.Textarea(attrs={"rows": 6}),
            "impact": forms.Textarea(attrs={"rows": 4}),
            "credit": forms.RadioSelect,
        }

    MAX_TEXT = 50_000

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("description", "steps_to_reproduce", "impact"):
            self.fields[name].validators.append(MaxLengthValidator(self.MAX_TEXT))
            self.fields[name].widget.attrs["maxlength"] = self.MAX_TEXT
        # Only title and description are required: scripts may leave out everything else.
        # (The model allows an empty description: it is emptied when sealed with the others.)
        self.fields["description"].required = True
        self.fields["credit"].required = False
        if not self.is_bound:
            self.initial.setdefault("submission_id", new_submission_id())
            self.initial.setdefault("shown_at", signing.TimestampSigner(salt=SHOWN_AT_SALT).sign("report-form"))
        self.fields["reporter_email"].widget.attrs["autocomplete"] = "email"
        self.fields["reporter_name"].widget.attrs["autocomplete"] = "name"

    def clean_submission_id(self):
        """Only nonces this server issued count: a made-up or reused value from a script is
        ignored (no de-duplication), so nobody can reach someone else's report through it."""
        return verified_submission_id(self.cleaned_data.get("submission_id", ""))

    def clean_website(self):
        if self.cleaned_data.get("website"):
            raise ValidationError("This field must stay empty. If a password manager filled it in, clear it.",
                                  code="honeypot")
        return ""

    def clean_shown_at(self):
        value = self.cleaned_data.get("shown_at")
        if value:  # absent for scripted submissions
            signer = signing.TimestampSigner(salt=SHOWN_AT_SALT)
            try:
                signer.unsign(value)
            except signing.BadSignature:
                self.add_error(None, ValidationError("The form was damaged; please reload the page.", code="shown_at"))
                return ""
            try:
                signer.unsign(value, max_age=settings.MIN_FORM_SECONDS)
            except signing.SignatureExpired:
                return value
            # Not the hidden field's error (the reader could not see or fix it): the form's.
            self.add_error(None, forms.ValidationError(
                "That was faster than anyone can fill in a report. Please check your report and send it again.",
                code="too_fast"))
        return value

    def clean(self):
        cleaned = super().clean()
        cleaned["credit"] = cleaned.get("credit") or Credit.NONE
        if cleaned.get("credit") == Credit.NAME and not (cleaned.get("credit_name") or cleaned.get("reporter_name")):
            self.add_error("credit_name", "Tell us the name or handle to credit, or choose not to be credited.")
        elif cleaned.get("credit") == Credit.NAME and not cleaned.get("credit_name"):
            cleaned["credit_name"] = cleaned.get("reporter_name", "")
        return cleaned

    @property
    def encrypted_fields(self) -> list[str]:
        """Text fields that arrived as PGP messages (shown again as such after an error)."""
        return [self.fields[name].label.lower() for name in ("description", "steps_to_reproduce", "impact")
                if pgp.looks_encrypted(self.data.get(name, ""))] if self.is_bound else []

    @property
    def had_attachments(self) -> bool:
        return self.is_bound and bool(self.files.getlist("attachments"))

    def report_fields(self) -> dict:
        fields = {name: self.cleaned_data[name] for name in self.Meta.fields}
        key = self.cleaned_data.get("reporter_public_key")
        if key:
            fields.update(reporter_key=key.armored, reporter_key_fingerprint=key.fingerprint)
        return fields

    def _check_encrypted_text(self, name):
        value = self.cleaned_data.get(name, "")
        if pgp.looks_like_pgp(value):
            check_encrypted(value)
        return value

    def clean_description(self):
        return self._check_encrypted_text("description")

    def clean_steps_to_reproduce(self):
        return self._check_encrypted_text("steps_to_reproduce")

    def clean_impact(self):
        return self._check_encrypted_text("impact")

    def clean_attachments(self):
        files = self.cleaned_data.get("attachments") or []
        for upload in files:
            check_encrypted_upload(upload)
        return files

    def clean_reporter_public_key(self):
        return parse_reporter_key(self.cleaned_data.get("reporter_public_key", ""))


class FollowUpForm(TextCheckedForm):
    body = forms.CharField(label="Your message", max_length=ReportForm.MAX_TEXT,
                           widget=forms.Textarea(attrs={"rows": 6}),
                           help_text="Markdown allowed. You may paste a message encrypted to our PGP key.")
    attachments = MultipleFileField(label="Attachments")

    def clean_body(self):
        body = self.cleaned_data.get("body", "")
        if pgp.looks_like_pgp(body):
            check_encrypted(body)
        return body

    def clean_attachments(self):
        files = self.cleaned_data.get("attachments") or []
        for upload in files:
            check_encrypted_upload(upload)
        return files


class ReporterKeyForm(forms.Form):
    """Replace or remove the reporter's public key from the status page."""

    reporter_public_key = forms.CharField(label="Your PGP public key", required=False, max_length=200_000,
                                          widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false",
                                                                       "class": "mono"}))
    remove = forms.BooleanField(required=False, label="Remove my key (emails are then sent unencrypted)")

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("remove") and not cleaned.get("reporter_public_key") \
                and "reporter_public_key" not in self.errors:  # a key that was pasted has its own error
            self.add_error("reporter_public_key", "Paste your PGP public key.")
        return cleaned

    def clean_reporter_public_key(self):
        return parse_reporter_key(self.cleaned_data.get("reporter_public_key", ""))


class CreditForm(TextCheckedForm):
    """The reporter's choice of public credit, changeable from the status page."""

    single_line_fields = ("credit_name",)
    credit = forms.ChoiceField(label="Public credit", choices=Credit.choices, widget=forms.RadioSelect)
    credit_name = forms.CharField(label="Name or handle to credit", max_length=200, required=False)

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("credit") == Credit.NAME and not cleaned.get("credit_name", "").strip():
            self.add_error("credit_name", "Tell us the name or handle to credit.")
        return cleaned


class LostLinkForm(TextCheckedForm):
    email = forms.EmailField(label="The email address you gave with your report", max_length=254)

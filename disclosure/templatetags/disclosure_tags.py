from django import template

from disclosure import markdown as md
from disclosure import pgp
from disclosure.pgp import sealing

register = template.Library()


@register.filter
def markdown(text):
    """Render reporter Markdown through the sanitiser (see disclosure.markdown)."""
    return md.render(text)


@register.filter
def revealed(value):
    """Reporter content (a stored value, or a ``sealing.Revealed``): decrypted when sealed
    and the team key can decrypt here, then sanitised Markdown. Runs gpg for sealed text."""
    return sealing.as_html(value)


@register.filter
def sealed(text) -> bool:
    """Whether a stored value is an encrypted message (shown without decrypting it)."""
    return pgp.looks_encrypted(text)


@register.filter
def duration(value):
    """A timedelta as people say it: "2 days 4 h", "4 h 12 min", "26 s"."""
    if value is None:
        return "–"
    seconds = int(value.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days} day{'s' if days != 1 else ''}" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    if minutes:
        return f"{minutes} min"
    return f"{seconds} s"


@register.filter
def iso_moment(value):
    """An ISO 8601 string stored in an event's data, as a datetime for the ``date`` filter."""
    from datetime import datetime

    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None

"""Reporter-written Markdown, rendered safely: raw HTML is never passed through, and the
result is sanitised with nh3 (an allow-list) before it reaches a page."""

import nh3
from django.utils.safestring import mark_safe
from markdown_it import MarkdownIt

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table").enable("strikethrough")

ALLOWED_TAGS = {
    "p", "br", "hr", "pre", "code", "blockquote", "em", "strong", "del", "s", "a",
    "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6",
    "table", "thead", "tbody", "tr", "th", "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}


def render(text: str) -> str:
    html = _md.render(text or "")
    return mark_safe(  # noqa: S308  # nosec B308 B703 - reviewed: the output of nh3's allow-list sanitiser
        nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                  url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow")
    )

from django import template

from disclosure import markdown as md

register = template.Library()


@register.filter
def markdown(text):
    """Render reporter Markdown through the sanitiser (see disclosure.markdown)."""
    return md.render(text)

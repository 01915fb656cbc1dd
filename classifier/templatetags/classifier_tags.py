from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from ..ml import labels

register = template.Library()


@register.filter
def label_display(label):
    """ "usd_20" -> "$20", "unknown" -> "Can't identify this"."""
    return labels.display(label)


@register.filter
def percent(value, digits=0):
    """0.973 -> "97%"."""
    try:
        return f"{float(value):.{int(digits)}%}"
    except (TypeError, ValueError):
        return ""


@register.filter
def bar_width(value):
    """A probability as a CSS percentage, for the width of a bar."""
    try:
        return f"{max(0.0, min(1.0, float(value))) * 100:.1f}%"
    except (TypeError, ValueError):
        return "0%"


@register.filter
def code_spans(text):
    """Escape text and set `backticked` words as <code>, as the schema's Markdown means."""
    parts = escape(str(text)).split("`")
    # Odd parts were between backticks; an unpaired backtick stays as it is.
    if len(parts) % 2 == 0:
        last = parts.pop()
        parts[-1] += "`" + last
    html = "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))
    return mark_safe(html)  # noqa: S308  (every part was escaped above)


@register.simple_tag
def review_queue_count():
    """How many photos wait on the review screen."""
    from .. import selectors  # the tags module is imported before the app's models

    return selectors.prediction_review_queue().count()

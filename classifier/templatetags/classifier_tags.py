from django import template

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

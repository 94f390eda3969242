"""The words core returns, set in type: Markdown for the app's pages, HTML for the offline
report. One place, so a badge reads the same on a page and in a report; and the small helpers
that put a data set's noun at the start of a sentence or in a possessive."""

from __future__ import annotations

from html import escape

from core.explanation_checks import Verdict


def capital(text: str) -> str:
    """``text`` with its first letter upper case, the rest as it is: a sentence that starts with a
    data set's noun ("digit" → "Digit", "item" → "Item")."""
    return text[:1].upper() + text[1:]


def possessive(plural: str) -> str:
    """A plural's possessive: "digits'", "items'", "mice's"."""
    return f"{plural}'" if plural.endswith("s") else f"{plural}'s"


def _headline(verdict: Verdict) -> str:
    return f"{verdict.word.capitalize()}: {verdict.text}."


def verdict_markdown(verdict: Verdict, headline: bool = True) -> str:
    """The badge's numbers as Markdown paragraphs, after the verdict in a bold line (``headline``)."""
    paragraphs = [f"**{name}** {sentence}" if name else sentence for name, sentence in verdict.reasons]
    return "\n\n".join([f"**{_headline(verdict)}**", *paragraphs] if headline else paragraphs)


def verdict_html(verdict: Verdict) -> str:
    """The same paragraphs as HTML, every word escaped."""
    paragraphs = [f"<strong>{escape(_headline(verdict))}</strong>"] + [
        (f"<strong>{escape(name)}</strong> " if name else "") + escape(sentence) for name, sentence in verdict.reasons
    ]
    return "".join(f"<p>{p}</p>" for p in paragraphs)

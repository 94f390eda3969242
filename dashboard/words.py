"""The words core returns, set in type: Markdown for the app's pages, HTML for the offline
report. One place, so a badge reads the same on a page and in a report."""

from __future__ import annotations

from html import escape

from core.explanation_checks import Verdict


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

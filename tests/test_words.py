"""dashboard/words.py: the badge's words as the app (Markdown) and the report (HTML) set them."""

import re
from html import unescape

from dashboard import words
from tests.test_explanation_checks import verdict


def test_the_hover_says_which_way_is_better():
    paragraphs = words.verdict_markdown(verdict(), headline=False).split("\n\n")
    assert paragraphs[0].startswith("**Randomisation** (lower is better)")
    assert "0.30" in paragraphs[0] and "0.25" in paragraphs[0]
    assert paragraphs[1].startswith("**Deletion**") and "lower is better" in paragraphs[1]
    assert all(f"{v:.2f}" in paragraphs[1] for v in (0.2, 0.5, 0.3, 0.45))
    assert paragraphs[2].startswith("**Insertion**") and "higher is better" in paragraphs[2]
    assert "0.70" in paragraphs[2] and "0.40" in paragraphs[2]
    assert "0.60" in paragraphs[3]


def test_a_page_and_a_report_say_the_same():
    for one in (verdict(), verdict(informative=False), verdict(similarity_top=0.9)):
        markdown = words.verdict_markdown(one)
        assert markdown.startswith(f"**{one.word.capitalize()}: {one.text}.**")
        page = markdown.replace("**", "").split("\n\n")
        report = [unescape(re.sub("</?strong>", "", p)) for p in words.verdict_html(one)[3:-4].split("</p><p>")]
        assert report == page
        assert markdown.count("**") == 2 * words.verdict_html(one).count("<strong>")
    blank = words.verdict_markdown(verdict(informative=False), headline=False)
    assert blank.startswith("The map has one value everywhere") and "**" not in blank


def test_the_report_escapes_what_it_sets():
    html = words.verdict_html(verdict())
    assert "<strong>Randomisation</strong> (lower is better)" in html
    assert "|map|" in html and "<script" not in html

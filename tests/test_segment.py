from index.segment import Span, make_passages, split_sentences
import pytest

from conftest import DOCUMENTS


def _sentences(text):
    return [text[s.start:s.end] for s in split_sentences(text)]


def test_glued_sentence_end_is_split():
    text = 'he said "we will not attack you [China].If we [the US] are going to attack, I will call you."'
    out = _sentences(text)
    assert out[0].endswith("[China].")
    assert out[1].startswith("If we [the US]")


def test_abbreviated_title_does_not_split():
    text = "Calls went to the People’s Liberation Army’s Gen. Li Zuocheng. He listened."
    assert _sentences(text) == ["Calls went to the People’s Liberation Army’s Gen. Li Zuocheng.", "He listened."]


def test_sentence_ending_in_proper_noun_and_curly_quotes():
    text = "Demonstrators stormed Capitol Hill. “What I can tell you is this.” Then he left."
    assert _sentences(text) == ["Demonstrators stormed Capitol Hill.", "“What I can tell you is this.”", "Then he left."]


def test_lone_closing_quote_joins_previous_sentence():
    text = '"There is no reason to undermine it. "\n\nNext paragraph.'
    assert _sentences(text) == ['"There is no reason to undermine it. "', "Next paragraph."]


def test_copyright_sign_in_letters_does_not_end_a_sentence():
    text = "Copyright (c) The Regents of the Acme Institute.\nAll rights reserved. Item (a) is fine. (b) The other one."
    assert _sentences(text) == ["Copyright (c) The Regents of the Acme Institute.", "All rights reserved.",
                                "Item (a) is fine.", "(b) The other one."]
    # Only within a block: a heading line that ends on "(c)" stays its own sentence.
    assert _sentences("Part (c)\n\nThe rest follows.") == ["Part (c)", "The rest follows."]


def test_title_lines_are_their_own_sentences():
    text = (DOCUMENTS / "000_d638d58df6cf935f.txt").read_text(encoding="utf-8")
    out = _sentences(text)
    assert out[1] == "Published: Sep 15, 2021 11:48 PM"
    assert out[2] == "China US Photo:GT"


def test_hard_wrapped_prose_is_one_block():
    text = "This sentence is wrapped\nacross two lines. And a second one."
    assert _sentences(text) == ["This sentence is wrapped\nacross two lines.", "And a second one."]


def test_wrapped_numbered_clause_is_one_sentence_and_items_stay_apart():
    text = ("  3. You may opt to apply the terms of the ordinary GNU General Public\n"
            "License instead of this License to a given copy of the Library.\n"
            "  4. You may copy the Library (or a portion or\nderivative of it) in object code.\n"
            "# Heading\nText after it.\n- an item that wraps\n  onto a second line\n- another item")
    assert _sentences(text) == [
        "3. You may opt to apply the terms of the ordinary GNU General Public\n"
        "License instead of this License to a given copy of the Library.",
        "4. You may copy the Library (or a portion or\nderivative of it) in object code.",
        "# Heading", "Text after it.", "- an item that wraps\n  onto a second line", "- another item",
    ]


@pytest.mark.parametrize("path", sorted(DOCUMENTS.glob("*.txt")))
def test_offsets_are_exact_and_trimmed(path):
    text = path.read_text(encoding="utf-8")
    spans = split_sentences(text)
    assert spans
    for a, b in zip(spans, spans[1:]):
        assert a.end <= b.start
    for s in spans:
        piece = text[s.start:s.end]
        assert piece == piece.strip() and piece


def test_passages_overlap_and_cover_every_sentence():
    sents = [Span(i * 10, i * 10 + 9) for i in range(8)]
    ps = make_passages(sents, size=3, stride=2)
    covered = {i for p in ps for i in range(p.first, p.last + 1)}
    assert covered == set(range(8))
    assert [(p.first, p.last) for p in ps] == [(0, 2), (2, 4), (4, 6), (5, 7)]
    assert ps[0].start == 0 and ps[-1].end == sents[-1].end


def test_passage_params_validated():
    with pytest.raises(ValueError, match="stride"):
        make_passages([Span(0, 1)], size=2, stride=3)
    assert make_passages([], 3, 2) == []


def test_markdown_table_rows_are_their_own_sentences():
    text = "| Option | Default |\n|---|---|\n| jobs | 4 workers. |\n| timeout | 2.5 seconds. |"
    assert _sentences(text) == ["| Option | Default |\n|---|---|", "| jobs | 4 workers. |", "| timeout | 2.5 seconds. |"]


def test_sentence_ending_on_a_version_file_or_url_is_split():
    text = ("Fixed in v2.1.3. Upgrade now. Edit config.toml. Restart it. See https://example.org/a.html. "
            "Then go. Call os.path.join. Done. The U.S. and Washington, D.C. Both stay. Ask for e.g. Tea.\n"
            "3.2. Licensee may copy it. Section 4.1. Termination applies.")
    assert _sentences(text) == [
        "Fixed in v2.1.3.", "Upgrade now.", "Edit config.toml.", "Restart it.", "See https://example.org/a.html.",
        "Then go.", "Call os.path.join.", "Done.", "The U.S. and Washington, D.C. Both stay.", "Ask for e.g. Tea.",
        "3.2. Licensee may copy it.", "Section 4.1. Termination applies.",
    ]


def test_title_before_an_initial_does_not_end_a_sentence():
    text = "We met Prof. A. B. Clark and Dr. A. Smith. Mr. A. Lee left.\nAsk the Dr.\nA. Next item."
    assert _sentences(text) == ["We met Prof. A. B. Clark and Dr. A. Smith.", "Mr. A. Lee left.", "Ask the Dr.", "A. Next item."]


def test_wrapped_line_starting_with_a_year_continues_the_sentence():
    # "1901." at a wrapped line's start is a year ending the sentence, not a numbered list item.
    text = "The harbour lighthouse was built by Anna Smith in\n1901. It is tall.\n1. An item\n2. Another"
    assert _sentences(text) == ["The harbour lighthouse was built by Anna Smith in\n1901.", "It is tall.",
                                "1. An item", "2. Another"]


def test_lone_cr_line_ends_and_blocks_without_words():
    # Classic Mac files end lines with a lone CR: the whole file was one sentence.
    text = "Old Mac notes\r\rThe lighthouse was painted red in 1954\rby the harbour crew.\r\rIt is tall"
    assert _sentences(text) == ["Old Mac notes", "The lighthouse was painted red in 1954\rby the harbour crew.", "It is tall"]
    # A thematic break or a lone code fence was glued across the blank line to the sentence before.
    text = "Intro text.\n\n***\n\nMore text\n\n---\n\nEnd.\n\n```\n\n* * *"
    assert _sentences(text) == ["Intro text.", "More text", "End."]


def test_setext_heading_and_code_fence_end_their_block():
    # Without blank lines, the heading and the code were glued to the prose after them.
    text = "Usage\n-----\nRun falcon start\n\nInstall it with pip:\n```sh\npip install falcon\n```\nThen restart the server"
    assert _sentences(text) == ["Usage\n-----", "Run falcon start", "Install it with pip:", "```sh\npip install falcon\n```",
                                "Then restart the server"]


def test_windows_and_mac_line_ends_are_cut_as_unix_ones():
    """Windows files (CR LF) were cut differently from the same text with LF: a blank line was
    no paragraph break, so "It" of a wrapped line became a sentence; and a code block over a
    blank line lost its closing fence to the prose after it."""
    text = ("Intro text.\n\n***\n\nThe volume keeps every version of a file as a set of chunks, so\n"
            "a file that changes a little costs little.\n\n# Usage\nRun this:\n```\nmake all\n\nmake install\n```\n"
            "Then it works.\n")
    unix = [text[s.start:s.end] for s in split_sentences(text)]
    assert unix[-2:] == ["make install\n```", "Then it works."] and "***" not in "".join(unix)
    for ends in ("\r\n", "\r"):
        other = text.replace("\n", ends)
        spans = split_sentences(other)
        assert [other[s.start:s.end].replace(ends, "\n") for s in spans] == unix


def test_text_without_sentence_ends_is_cut_into_pieces_of_bounded_length():
    """A 2 MB line without punctuation was one sentence: `qa ask` took 10 s to read it and quoted
    all of it as the citation."""
    from index.segment import MAX_SENTENCE_CHARS

    words = " ".join(f"item{i}" for i in range(6000))
    for text in (f"First sentence here.\n\n{words}\n\nLast one.", words.replace(" ", "\t"), words.replace(" ", "\u00a0"),
                 "x" * (2 * MAX_SENTENCE_CHARS + 5)):
        pieces = [text[s.start:s.end] for s in split_sentences(text)]
        assert all(0 < len(p) <= MAX_SENTENCE_CHARS and p == p.strip() for p in pieces)
        assert len(pieces) >= len(text) // MAX_SENTENCE_CHARS + 1
        assert [w for p in pieces for w in p.split()] == text.split() or "".join(pieces) == text  # no word cut
    assert pieces == ["x" * MAX_SENTENCE_CHARS] * 2 + ["x" * 5]
    lf, crlf = words.replace(" ", "\n"), words.replace(" ", "\r\n")  # cut as the same text with LF ends
    assert [crlf[s.start:s.end].replace("\r\n", "\n") for s in split_sentences(crlf)] == [lf[s.start:s.end] for s in split_sentences(lf)]


def test_joined_enumeration_markers_segment_in_linear_time():
    """Each "(a)" joins the next sentence to the last, and that growing sentence was searched whole
    for a marker every time: "(a) " * 40,000 (160 KB) took 57 s, 5 MB would take hours."""
    import time

    text = "(a) " * 40_000
    t = time.perf_counter()
    spans = split_sentences(text)
    assert time.perf_counter() - t < 15
    assert spans[0].start == 0 and spans[-1].end == len(text) - 1
    assert _sentences("Copyright (c) The Regents of it.  (b)\tHe agreed.") == ["Copyright (c) The Regents of it.", "(b)\tHe agreed."]

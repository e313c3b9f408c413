"""Dates placed in time, short answers compared across documents, and the corroboration the bot
adds to an answer (issue 26), with the real model and reader."""

from __future__ import annotations

import pytest

from conftest import ROOT

from eval import agreement as agreement_eval
from qa.agreement import SAME_MATTER, agrees, longest_name, may_disagree, normalise, number
from qa.bot import Bot
from qa.cli import format_answer
from qa.dates import answer_date, same_date

PAIRS = ROOT / "eval" / "agreement"


# ----- dates -----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, doc_date, iso", [
    ("January 8", "2021-09-15", "2021-01-08"),           # the document's year
    ("on January 8", "2021-09-15", "2021-01-08"),
    ("April 14", "2023-03-02", "2023-04-14"),            # later in the year: still that year
    ("on Tuesday", "2021-09-15", "2021-09-14"),          # the Tuesday before a Wednesday's paper
    ("yesterday", "2021-09-15", "2021-09-14"),
    ("October 30, 2020", "2021-09-15", "2020-10-30"),    # a full date stays as written
    ("October 2020", None, "2020-10"),                   # as precise as the text
    ("in 1999", None, "1999"),
    ("January 8", None, "--01-08"),                      # no year anywhere: a day of some year
])
def test_dates_are_placed_in_time(text, doc_date, iso):
    assert answer_date(text, doc_date) == iso


@pytest.mark.parametrize("text, doc_date", [
    ("two days after the riot", "2021-09-15"),  # relative to an event: left as text
    ("on Tuesday", None),                      # nothing to place it against
    ("two", "2021-09-15"),                     # a number, not a month
    ("12", "2021-09-15"),
    ("Li Zuocheng", "2021-09-15"),
])
def test_what_is_not_a_date_gets_none(text, doc_date):
    assert answer_date(text, doc_date) is None


def test_partial_dates_agree_on_the_parts_both_give():
    assert same_date("2021-01-08", "--01-08") and same_date("2021", "2021-05-06")
    assert not same_date("2021-01", "2021-02-03") and not same_date("2020-10-30", "2021-01-08")


# ----- normalised answers ------------------------------------------------------------------------
def test_numbers_are_read_with_their_scale_and_unit():
    assert number("1.5 million people") == (1.5e6, "people")
    assert number("twice") == (2.0, "")
    assert number("about 800 people")[0] == 800.0
    assert agrees(normalise("two calls"), normalise("twice"))
    assert agrees(normalise("1,500,000"), normalise("1.5 million"))
    assert not agrees(normalise("3 km"), normalise("three miles"))
    assert not agrees(normalise("1,200"), normalise("about 800 people"))


def test_names_are_compared_by_their_longest_form_in_the_document():
    doc = "General Mark A. Milley spoke first. Later, Milley said he had called."
    assert longest_name("Milley", doc) == "General Mark A. Milley"
    assert agrees(normalise("Milley", doc), normalise("Mark Milley"))
    assert not agrees(normalise("Milley", doc), normalise("Obama"))


def test_dates_agree_across_documents_of_different_days():
    a = normalise("January 8", "", "2021-09-15")
    b = normalise("on January 8", "", "2021-09-17")
    assert a.kind == b.kind == "date" and agrees(a, b)
    assert not agrees(a, normalise("October 30, 2020", "", "2021-09-17"))


def test_only_dates_numbers_and_names_of_the_same_matter_disagree():
    on_topic = SAME_MATTER + 0.05
    assert may_disagree(normalise("1,200"), normalise("about 800 people"), on_topic)
    assert not may_disagree(normalise("1,200"), normalise("about 800 people"), SAME_MATTER - 0.05)
    assert not may_disagree(normalise("the Capitol siege"), normalise("a warm summer"), 0.99)  # free text
    assert not may_disagree(normalise("Obama"), normalise("1,200"), 0.99)  # a name against a number


def test_text_answers_agree_when_most_words_are_shared():
    assert agrees(normalise("the Capitol siege"), normalise("siege of the Capitol"))
    assert not agrees(normalise("the Capitol siege"), normalise("a warm summer"))


# ----- the bot's corroboration -----------------------------------------------------------------
@pytest.fixture(scope="module")
def pairs_bot(embedder, tmp_path_factory):
    bot = Bot(PAIRS, index_dir=tmp_path_factory.mktemp("pairs-index"), embedder=embedder)
    bot.sync()
    return bot


def test_a_disagreeing_document_is_quoted_beside_the_answer(pairs_bot):
    docs = ["factory-a.txt", "factory-b.txt"]
    a = pairs_bot.ask("How many jobs will the Kestrel Energy battery plant create?", docs=docs)
    assert not a.abstained and a.answer == "1,200" and a.citations[0].doc == "factory-a.txt"
    (other,) = a.corroboration
    assert other.doc == "factory-b.txt" and not other.agrees and "800" in other.answer
    text = pairs_bot.index.entries[pairs_bot.index.doc_pos[other.doc]].text
    assert text[other.start:other.end] == other.text  # verbatim, like a citation
    assert other.text[other.answer_start:other.answer_end] == other.answer
    assert other.date == "2024-05-15"
    shown = format_answer(a, date_of=lambda d: pairs_bot.index.entries[pairs_bot.index.doc_pos[d]].meta.get("date"))
    assert "The documents disagree:" in shown and "Also stated in" not in shown
    assert "Battery plant to create jobs, 2024-05-11" in shown and f"**{other.answer}**" in shown


def test_an_agreeing_document_is_listed_as_also_stating_it(pairs_bot):
    a = pairs_bot.ask("How many patients did the Lindqvist Street clinic treat last year?",
                      docs=["vaccine-a.txt", "vaccine-b.txt"])
    assert not a.abstained and "42,000" in a.answer
    assert [(c.agrees, "42,000" in c.answer) for c in a.corroboration] == [(True, True)]
    assert "Also stated in:" in format_answer(a)


def test_the_documents_filter_bounds_corroboration_and_it_can_be_switched_off(pairs_bot):
    q = "How many patients did the Lindqvist Street clinic treat last year?"
    alone = pairs_bot.ask(q, docs=["vaccine-b.txt"])
    assert not alone.abstained and alone.corroboration == ()
    pairs_bot.corroborate = False
    try:
        off = pairs_bot.ask(q, docs=["vaccine-a.txt", "vaccine-b.txt"])
    finally:
        pairs_bot.corroborate = True
    assert not off.abstained and off.corroboration == () and "corroborate" not in off.timings_ms


def test_a_date_answer_carries_its_iso_date(pairs_bot):
    a = pairs_bot.ask("When will the Greystone Central Library close?", docs=["library-a.txt", "library-b.txt"])
    assert a.answer == "September 30" and a.answer_date == "2024-09-30"
    (other,) = a.corroboration
    assert not other.agrees and other.answer == "October 15" and other.answer_date == "2024-10-15"
    assert a.to_dict()["answer_date"] == "2024-09-30"


def test_agreement_set_verdicts(pairs_bot):
    # The target is 0.9; the shipped bot measures 0.733 (11 of 15): this gate catches
    # regressions below that.
    report = agreement_eval.score(bot=pairs_bot)
    assert report["n"] == 15
    assert report["verdict_accuracy"] >= 0.6, [r for r in report["items"] if not r["right"]]


def test_corroboration_survives_the_answer_json_round_trip(pairs_bot):
    from qa.types import Answer

    a = pairs_bot.ask("How many jobs will the Kestrel Energy battery plant create?", docs=["factory-a.txt", "factory-b.txt"])
    back = Answer.from_dict(a.to_dict())
    assert back.corroboration and [c.to_dict() for c in back.corroboration] == [c.to_dict() for c in a.corroboration]


@pytest.mark.xfail(strict=True, reason="issue 26, missed: the reader's short answer is the sentence's first date "
                   "('October 30, 2020'), so the answer_date is 2020-10-30 (the issue 21 miss)")
def test_second_call_is_dated_and_corroborated(seeds_bot):
    a = seeds_bot.ask("When was the second call?")
    assert a.answer_date == "2021-01-08"
    assert any(c.agrees for c in a.corroboration)


@pytest.mark.xfail(strict=True, reason="issue 26, missed: the other article's quote ('I am going to call you ahead "
                   "of time') is judged not to answer (its confidence is below the answer threshold)")
def test_advance_notice_shows_the_articles_disagreeing(seeds_bot):
    a = seeds_bot.ask("Who would give China advance notice of a strike?")
    assert not a.abstained and any(not c.agrees for c in a.corroboration)


def test_dates_at_the_ends_of_the_calendar_neither_crash_nor_lose_their_iso_form():
    assert answer_date("Monday", "0001-01-01") is None  # no Monday before it
    assert answer_date("next Tuesday", "9999-12-31") is None  # nor a Tuesday after it
    assert answer_date("January 1, 0001") == "0001-01-01"
    assert answer_date("March", "0001-06-01") == "0001-03"


def test_numbers_keep_their_sign_and_equal_huge_numbers_agree():
    assert not agrees(normalise("-5 degrees"), normalise("5 degrees"))
    assert agrees(normalise("\u22125 degrees"), normalise("-5 degrees"))
    assert number("COVID-19 cases") == (19.0, "case")
    huge = normalise("9" * 400 + " people")
    assert agrees(huge, huge)


def test_a_document_date_keeps_only_the_parts_its_date_line_gives():
    from qa.ingest import parse_document

    def dated(line: str) -> str | None:
        return parse_document(f"Headline\n{line}\n\nThe plant opened on January 8.\n".encode(), "x.txt").date

    # dateutil fills a missing day, month or year from today: the date then changed with the day indexed
    assert dated("Published: May 2020") == "2020-05" and dated("Date: 1999") == "1999"
    assert dated("Published: 5 May") is None and dated("Published 2 days ago") is None
    assert dated("Published: 3 May 2020") == "2020-05-03"
    assert answer_date("January 8", "2020-05") == "2020-01-08" and answer_date("on Tuesday", "2020-05") is None


def test_a_unit_written_another_way_or_a_minus_in_words_is_the_same_number():
    assert agrees(normalise("5 km long"), normalise("5 kilometres long"))
    assert agrees(normalise("5 km"), normalise("5,000 metres")) and agrees(normalise("450 kg"), normalise("450 kilograms"))
    assert agrees(normalise("minus 12 degrees"), normalise("-12 degrees"))
    assert not agrees(normalise("5 km"), normalise("5 miles")) and not agrees(normalise("minus 12 degrees"), normalise("12 degrees"))


def test_the_same_weight_in_other_units_is_also_stated_not_a_disagreement(embedder, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bell-a.txt").write_text("Bell tower restored\nPublished: April 2, 2024\n\nThe restored bell of St Anne "
                                     "weighs 450 kg and was cast in 1842. Workers lifted it back into the tower on Monday.\n")
    (docs / "bell-b.txt").write_text("The bell returns\nPublished: April 3, 2024\n\nThe restored bell of St Anne weighs "
                                     "450 kilograms and was cast in 1842. Crowds watched as it rose into the tower.\n")
    bot = Bot(docs, index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    a = bot.ask("How much does the bell of St Anne weigh?")
    assert not a.abstained and "450" in a.answer
    (other,) = a.corroboration
    assert other.agrees and "450" in other.answer
    assert "Also stated in" in format_answer(a) and "The documents disagree:" not in format_answer(a)


def test_a_currency_symbol_is_a_unit_and_a_time_of_day_is_read_either_way():
    assert not agrees(normalise("$25"), normalise("25 euros"))  # the symbol was dropped: listed as agreeing
    assert agrees(normalise("$1.2 million"), normalise("1,200,000 dollars"))
    assert agrees(normalise("US$1.2 million"), normalise("1.2 million US dollars"))
    assert agrees(normalise("2 p.m. on Sunday"), normalise("14:00 on Sunday"))
    assert not agrees(normalise("2 p.m."), normalise("2 a.m."))


def test_a_document_dated_to_its_month_or_year_is_kept_by_a_range_that_overlaps_it(embedder, tmp_path):
    from ui.render import pretty_date

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "may.txt").write_text("Harbour works\nPublished: May 2020\n\nThe quay was rebuilt.\n")
    (docs / "year.txt").write_text("Annual note\nDate: 2019\n\nThe ferry ran all year.\n")
    bot = Bot(docs, index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    assert bot.dated("2020-05-10", "2020-06-01") == ["may.txt"]  # "2020-05" < "2020-05-10" as strings
    assert bot.dated("2020-06-01") == [] and sorted(bot.dated(before="2019-06-30")) == ["year.txt"]
    assert (pretty_date("2020-05"), pretty_date("2019"), pretty_date("2020-05-03")) == ("May 2020", "2019", "May 3, 2020")


def test_a_time_without_am_or_pm_agrees_with_either_and_only_a_leading_time_is_read():
    assert agrees(normalise("10:30"), normalise("10:30 pm")) and agrees(normalise("10:30"), normalise("22:30"))
    assert not agrees(normalise("10:30"), normalise("11:30")) and not agrees(normalise("2 p.m."), normalise("2 a.m."))
    assert agrees(normalise("250 people by 10:30"), normalise("250 people"))  # a count, not a time
    assert agrees(normalise("2 grams"), normalise("2 g")) and agrees(normalise("5000 g"), normalise("5 kg"))


def test_agreement_commands_name_a_missing_or_malformed_set(tmp_path, capsys):
    """A missing set was a FileNotFoundError traceback; a line without 'docs' said only "'docs'"."""
    missing = tmp_path / "none.jsonl"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "question": "q", "answers": {}, "agrees": true}\n', encoding="utf-8")
    for argv, said in ((["score", str(missing)], "none.jsonl: no such file"),
                       (["latency", str(missing)], "none.jsonl: no such file"),
                       (["score", str(bad)], "bad.jsonl:1: no 'docs' field"),
                       (["score", "--min-accuracy", "nan"], "nan is not a finite number")):  # no score is below NaN
        with pytest.raises(SystemExit) as exit_:
            agreement_eval.main(argv)
        assert exit_.value.code == 2 and said in capsys.readouterr().err

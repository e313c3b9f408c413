"""End to end over documents/: answers, abstention, and the verbatim property."""

from hypothesis import HealthCheck, given, settings, strategies as st

from conftest import DOCUMENTS
from qa.bot import QuestionError
import pytest

TEXTS = {p.name: p.read_text(encoding="utf-8") for p in DOCUMENTS.glob("*.txt")}


def test_second_call(seeds_bot):
    a = seeds_bot.ask("When was the second call?")
    assert not a.abstained
    top = a.citations[0]
    assert "the other on January 8" in top.text
    assert a.answer == top.text[top.answer_start:top.answer_end]


@pytest.mark.xfail(strict=True, reason="issue 21, missed: the reader's span head picks the sentence's first date "
                   "('October 30, 2020'); it does not read 'second' as 'the other' (docs/reader.md)")
def test_second_call_short_answer_is_the_second_date(seeds_bot):
    assert seeds_bot.ask("When was the second call?").answer == "January 8"


@pytest.mark.xfail(strict=True, reason="issue 21, missed: among 300 Wikipedia paragraphs the right sentence is cited "
                   "first but at confidence 0.21, under the 0.27 threshold, and its short answer would be "
                   "the first date (docs/reader.md)")
def test_card_question_holds_among_300_unrelated_paragraphs(embedder, tmp_path):
    """The seed articles beside 300 Wikipedia paragraphs (SQuAD dev, CC BY-SA; see
    tests/data/README.md): the card's question is still answered, with the same short answer."""
    import gzip
    import json
    import shutil

    from conftest import DATA
    from qa.bot import Bot

    folder = tmp_path / "docs"
    folder.mkdir()
    for name in TEXTS:
        shutil.copyfile(DOCUMENTS / name, folder / name)
    with gzip.open(DATA / "squad-300.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            row = json.loads(line)
            (folder / f"wiki-{i:03d}.txt").write_text(f"{row['title']}\n\n{row['text']}\n", encoding="utf-8")
    bot = Bot(folder, index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    assert len(bot.index.entries) == 302
    a = bot.ask("When was the second call?")
    assert not a.abstained and a.answer == "January 8"
    assert a.citations[0].doc in TEXTS


def test_off_topic_abstains(seeds_bot):
    a = seeds_bot.ask("What is the capital of France?")
    assert a.abstained and a.answer is None
    assert a.to_dict()["abstained"] is True


def test_a_year_no_document_mentions_abstains(seeds_bot):
    # The midterms are in the documents; the 2022 ones are not.
    a = seeds_bot.ask("Who won the 2022 midterm elections?")
    assert a.abstained and a.answer is None


# Two made-up licences: one whose file name and title name it, one whose file name alone does.
LICENCES = {
    "Zephyr-2.0.txt": "Zephyr Public License, version 2.0\n\n"
    "1. Grant. Each contributor grants you a worldwide, royalty-free license to copy, modify and share the work.\n\n"
    "2. Disputes. Any dispute under this license is heard only by the courts of the place where the defendant "
    "keeps its main office.\n\n"
    "3. Steward. The Northport Software Guild is the license steward and alone may publish new versions of this "
    "license.\n",
    "Harbor.txt": "Permission notice\n\nCopyright (c) The Trustees of the Lakeside Institute.\n\n"
    "Redistributions in binary form must keep the copyright notice above and this list of conditions.\n\n"
    "The name of the Institute may not be used to promote products made from this software without written "
    "permission.\n",
}

# A rival licence that repeats the Zephyr licence's name.
OSPREY = ("Osprey License\n\nThe Osprey License replaces the Zephyr Public License for new projects.\n\n"
          "Unlike the Zephyr Public License, any dispute under the Osprey License is heard by an arbitrator "
          "the parties choose.\n")


@pytest.fixture(scope="module")
def licences_bot(seeds_bot, tmp_path_factory):
    from qa.bot import Bot

    folder = tmp_path_factory.mktemp("licences")
    for name, text in LICENCES.items():
        (folder / name).write_text(text, encoding="utf-8")
    bot = Bot(folder, index_dir=tmp_path_factory.mktemp("licences-index"), embedder=seeds_bot.embedder,
              answerer=seeds_bot.answerer)
    bot.sync()
    return bot


def _rows(index, *docs):
    """The sentence rows of the documents named ``docs``."""
    return [r for d in docs for r in range(*index.doc_sentences(index.doc_pos[d]))]


def _row(index, doc, opening):
    return next(r for r in _rows(index, doc) if index.sentence_text(r).startswith(opening))


@pytest.mark.parametrize("question, where, lacks", [
    # No text says "Harbor": its file name does, when that document is a candidate.
    ("Who holds the copyright in the Harbor license?", ("Harbor.txt",), False),
    ("Who holds the copyright in the Harbor license?", ("Zephyr-2.0.txt",), True),
    # Initials of capitalised words in a candidate sentence, connecting words skipped.
    ("Which courts hear disputes under the ZPL?", ("Zephyr-2.0.txt",), False),
    ("Which courts hear disputes under the ZPL?", ("Harbor.txt",), True),
    ("Who owns the copyright of the TLI?", ("Harbor.txt",), False),
    # A version-suffixed name is known when its parts are.
    ("Who may publish new versions of the ZPLv2?", ("Zephyr-2.0.txt",), False),
    ("Who may publish new versions of the ZPLv7?", ("Zephyr-2.0.txt",), True),
    # Two letters spell too many things by chance; a name nothing holds stays unknown.
    ("Who is the license steward of the LI?", ("Zephyr-2.0.txt", "Harbor.txt"), True),
    ("Which law governs the Eclipse license?", ("Zephyr-2.0.txt", "Harbor.txt"), True),
])
def test_a_specific_known_by_a_file_name_initials_or_parts(licences_bot, question, where, lacks):
    from qa.answerer import Question

    index = licences_bot.index
    q = Question(question, index)
    assert q.unknown_specifics, "the corpus's words alone lack a specific of the question"
    assert q.lacks_specifics(index, _rows(index, *where)) is lacks


def test_a_question_naming_another_document_by_its_file_name(licences_bot):
    from qa.answerer import Question

    index = licences_bot.index
    rows = _rows(index, "Zephyr-2.0.txt", "Harbor.txt")
    steward, binary = _row(index, "Zephyr-2.0.txt", "The Northport"), _row(index, "Harbor.txt", "Redistributions")
    of_harbor = Question("Who is the license steward of the Harbor license?", index)
    assert of_harbor.names_another_document(index, rows, steward)
    assert not of_harbor.names_another_document(index, rows, binary)
    # The document named is the cited one, or none is named.
    assert not Question("Who is the license steward of the Zephyr license?", index).names_another_document(index, rows, steward)
    assert not Question("Who is the license steward?", index).names_another_document(index, rows, steward)


def test_licences_named_by_file_name_or_acronym_are_answered_and_another_is_declined(licences_bot):
    # "ZPL" spells the title's initials, so the licence is searched alone and read without them.
    a = licences_bot.ask("Which courts hear disputes under the ZPL?")
    assert not a.abstained and all(c.doc == "Zephyr-2.0.txt" for c in a.citations)
    assert a.citations[0].text.startswith("Any dispute under this license") and a.answer in a.citations[0].text
    a = licences_bot.ask("Who holds the copyright in the Harbor license?")
    assert not a.abstained and a.citations[0].doc == "Harbor.txt"
    assert "Lakeside Institute" in a.answer
    # Only the Zephyr licence has a steward: asked of the Harbor licence, the bot declines.
    a = licences_bot.ask("Who is the license steward of the Harbor license?")
    assert a.abstained and a.answer is None


def test_answer_json_shape(seeds_bot):
    d = seeds_bot.ask("Who did Milley call?").to_dict()
    base = {"question", "searched_for", "abstained", "answer", "confidence", "citations", "timings_ms"}
    assert base <= set(d) <= base | {"answer_date", "corroboration"}
    # A short answer is compared with the other documents' (the corroboration step is timed).
    assert d["citations"][0]["answer_start"] is not None
    assert set(d["timings_ms"]) == {"retrieve", "answer", "corroborate", "total"}
    assert 1 <= len(d["citations"]) <= 3
    c = d["citations"][0]
    assert {"doc", "title", "text", "start", "end", "score"} <= set(c)


def test_passages_are_the_searched_ones_led_by_the_top_citations(seeds_bot):
    q = "When was the second call?"
    a = seeds_bot.ask(q)
    searched = seeds_bot.index.search(q, seeds_bot.embedder.embed([q])[0], k=10)
    key = lambda p: (p.doc, p.start, p.end)  # noqa: E731
    assert sorted(map(key, a.passages)) == sorted(map(key, searched))
    top = a.citations[0]
    first = a.passages[0]
    assert first.doc == top.doc and first.start <= top.start and top.end <= first.end


def test_bad_questions(seeds_bot):
    with pytest.raises(QuestionError, match="empty"):
        seeds_bot.ask("   ")
    with pytest.raises(QuestionError, match="limit"):
        seeds_bot.ask("why " * 600)
    with pytest.raises(QuestionError, match="unknown document"):
        seeds_bot.ask("When?", docs=["nope.txt"])


def test_docs_limit(seeds_bot):
    a = seeds_bot.ask("When was the second call?", docs=["002_4345dc4e47c11390.txt"])
    assert all(c.doc == "002_4345dc4e47c11390.txt" for c in a.citations)


WORDS = sorted({w.strip(".,\"“”’'()[]") for t in TEXTS.values() for w in t.split() if len(w) > 3})
QUESTION = st.builds(
    lambda lead, ws: f"{lead} {' '.join(ws)}?",
    st.sampled_from(["When did", "Who", "What did", "How many", "Where did", "Why did", "Which"]),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=QUESTION)
def test_every_citation_is_verbatim(seeds_bot, question):
    a = seeds_bot.ask(question)
    assert a.citations
    for c in a.citations:
        assert TEXTS[c.doc][c.start:c.end] == c.text
    top = a.citations[0]
    if not a.abstained:
        if top.answer_start is not None:
            assert top.text[top.answer_start:top.answer_end] == a.answer
        else:
            assert a.answer == top.text
    else:
        assert a.answer is None


def test_locality_weights_file_is_checked(tmp_path):
    import json

    from qa.answerer import LOCALITY, LOCALITY_FILE, Model

    shipped = Model.load()
    assert shipped.locality.shape == (2, len(LOCALITY)) and shipped.locality.any()
    assert not Model.load(locality_path=None).locality.any()
    stale = json.loads(LOCALITY_FILE.read_text(encoding="utf-8"))
    stale["by_confidence"].pop("nearby")
    bad = tmp_path / "locality.json"
    bad.write_text(json.dumps(stale), encoding="utf-8")
    with pytest.raises(ValueError, match="eval.train_locality"):
        Model.load(locality_path=bad)


def test_a_polar_question_gets_a_verdict_on_the_cited_sentence(corpus, embedder, tmp_path):
    """"Do …?" is answered "Yes" or "No" about the quoted sentence, which holds no span of it;
    a question asking for a thing still gets its span highlighted."""
    from qa.bot import Bot
    from ui.render import render_reply

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    # A question whose verdict clears its gate well: near the gate int8 noise decides (docs/reader.md).
    polar = bot.ask("Did the garden place three hives on the library roof?")
    top = polar.citations[0]
    assert not polar.abstained and polar.answer == "Yes" and polar.short_answer == "Yes"
    assert "three hives on the library roof" in top.text and top.answer_start is None and top.answer_end is None
    assert polar.to_dict()["answer"] == "Yes" and "answer_start" not in polar.to_dict()["citations"][0]
    assert "<strong>Yes</strong>" in render_reply(polar)
    unsure = bot.ask("Did the team link the rise to volcanic activity?")  # the verdict is unsure: the clause
    assert unsure.answer not in ("Yes", "No") and unsure.citations[0].answer_start is not None
    asked = bot.ask("How many people climb the lighthouse every year?")
    assert asked.short_answer is not None and "12,000" in asked.short_answer and asked.citations[0].answer_start is not None


def test_a_yes_no_verdict_fit_on_another_reader_is_refused(tmp_path):
    import json

    from qa.answerer import WEIGHTS_FILE, Model

    assert Model.load().polar is not None
    weights = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    weights["polar"]["reader_sha256"] = "0" * 64
    stale = tmp_path / "weights.json"
    stale.write_text(json.dumps(weights), encoding="utf-8")
    with pytest.raises(ValueError, match="eval.train_polar"):
        Model.load(stale)


def test_a_settled_rescaling_fit_on_another_confidence_model_is_refused(tmp_path):
    import json

    from qa.answerer import WEIGHTS_FILE, Model, confidence_fingerprint

    weights = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    weights["settled"] = {"scale": 0.5, "shift": 1.0, "confidence_model": confidence_fingerprint(weights)}
    fitted = tmp_path / "weights.json"
    fitted.write_text(json.dumps(weights), encoding="utf-8")
    model = Model.load(fitted)
    assert model.settled == (0.5, 1.0)
    # sigmoid(0.5 * logit(c) + 1): monotonic, 0.5 -> 0.731
    assert model.shown(0.5) == pytest.approx(0.7311, abs=1e-4)
    assert model.shown(0.2) < model.shown(0.3) < model.shown(0.9)
    weights["bias"] += 0.5  # the confidence model refit: the rescaling no longer fits it
    fitted.write_text(json.dumps(weights), encoding="utf-8")
    with pytest.raises(ValueError, match="eval.train_settled"):
        Model.load(fitted)


def test_a_verdict_counts_the_chance_that_its_sentence_is_wrong():
    """On a sentence right with probability c, the verdict is right about c·p + (1 - c)/2 of the time."""
    import dataclasses

    import numpy as np

    from qa.answerer import Model
    from qa.reader import Reading

    weight = np.zeros(384, dtype=np.float32)
    weight[0] = 1.0
    model = dataclasses.replace(Model.load(), polar=(weight, 0.0, 0.8))
    yes, no = (Reading(0.0, None, 0.0, np.eye(384, dtype=np.float32)[0] * x) for x in (2.0, -2.0))  # p = 0.88, 0.12
    assert model.verdict(yes) == "Yes" and model.verdict(no) == "No"
    assert model.verdict(yes, confidence=0.9) == "Yes"  # 0.9 * 0.88 + 0.05 = 0.84
    assert model.verdict(yes, confidence=0.5) is None  # 0.5 * 0.88 + 0.25 = 0.69
    assert dataclasses.replace(model, polar=None).verdict(yes) is None


def test_named_documents_by_file_name_words_and_numbers():
    from qa.answerer import named_documents

    ids = ["Zephyr-2.0.txt", "Zephyr-3.txt", "Harbor.txt", "terms-of-service.md", "000_d638d58df6cf935f.txt", "a000/p001.txt"]
    assert named_documents(ids, "Which courts hear disputes under the Zephyr license?") == ["Zephyr-2.0.txt", "Zephyr-3.txt"]
    # A number the names hold picks among them ("version 3", "Zephyrv2"); one they lack does not.
    assert named_documents(ids, "What does section 4 of Zephyr version 3 say?") == ["Zephyr-3.txt"]
    assert named_documents(ids, "Under the Zephyrv2, who is the steward?") == ["Zephyr-2.0.txt"]
    assert named_documents(ids, "What does section 4 of the Zephyr license say?") == ["Zephyr-2.0.txt", "Zephyr-3.txt"]
    # Every word of a name is needed; hashes and numbered parts are never named.
    assert named_documents(ids, "What do the terms of service say about refunds?") == ["terms-of-service.md"]
    assert named_documents(ids, "What are the terms of the refund?") == []
    assert named_documents(ids, "What is d638d58df6cf935f or a000 or p001?") == []
    # Any text is a question: digits int() refuses ("²") are not numbers of a name.
    assert named_documents(ids + ["Area².txt"], "What is the Zephyr area, in metres ²?") == ["Zephyr-2.0.txt", "Zephyr-3.txt"]


def test_named_documents_by_title_words_and_initials():
    """Hash-named files are named by a title that is a short heading: by every one of its words
    (the most specific such title only) or by its initials, with or without its first word."""
    from qa.answerer import named_documents

    titles = {
        "000_5f2c.txt": "GNU Zephyr Public License", "001_9b7d.txt": "GNU Lesser Zephyr Public License",
        "002_3e44.txt": "Harbor License Version 2.0", "003_77aa.txt": "Harbor License Version 3",
        "004_d638.txt": "Copyright (c) The Trustees of the Lakeside Institute.",
        "005_a1b2.txt": "Introduction", "006_c3d4.txt": "Why the Northport harbour board voted to close the old pier",
    }
    ids = list(titles)
    calls = []

    def named(question):
        return named_documents(ids, question, lambda: calls.append(1) or list(titles.values()))

    assert named("Who hears disputes under the GNU Zephyr Public License?") == ["000_5f2c.txt"]
    assert named("Under the GNU Lesser Zephyr Public License, may I link to it?") == ["001_9b7d.txt"]
    assert named("Is the LZPL like the ZPL?") == ["000_5f2c.txt", "001_9b7d.txt"]
    assert named("What does the GZPL say?") == ["000_5f2c.txt"]
    # "Version" is no word of the name; a number the titles hold picks among them.
    assert named("Under the Harbor License, who is the steward?") == ["002_3e44.txt", "003_77aa.txt"]
    assert named("What does version 3 of the Harbor License add?") == ["003_77aa.txt"]
    # A sentence, one word, a headline, lower-case initials and words of a title in part name nothing.
    assert named("Which trustees of the Lakeside Institute hold the copyright?") == []
    assert named("What does the introduction say?") == []
    assert named("Why did the Northport harbour board vote to close the old pier?") == []
    assert named("Is the zpl like the Zephyr license?") == []
    # A title's words name it only when the question writes one of them as a name, capitalised.
    assert named("Who hears disputes under the gnu zephyr public license?") == []
    assert named("Under the harbor License, who is the steward?") == ["002_3e44.txt", "003_77aa.txt"]
    assert calls == [1]  # the titles are read once per corpus


def test_a_question_naming_a_document_by_title_is_searched_in_it(licences_bot, monkeypatch, tmp_path):
    """As below, with file names that say nothing (hashes): the licence is named by its title."""
    from qa import bot as bot_module
    from qa.bot import Bot

    (tmp_path / "000_5f2c9a1e.txt").write_text(LICENCES["Zephyr-2.0.txt"], encoding="utf-8")
    (tmp_path / "001_9b7d3e44.txt").write_text(OSPREY, encoding="utf-8")
    bot = Bot(tmp_path, index_dir=tmp_path / ".index", embedder=licences_bot.embedder, answerer=licences_bot.answerer)
    bot.sync()
    for question in ("Who hears disputes under the Zephyr Public License?", "Under the ZPL, who hears disputes?"):
        a = bot.ask(question)
        assert a.citations and all(c.doc == "000_5f2c9a1e.txt" for c in a.citations) and a.answer != "arbitrator"
    monkeypatch.setattr(bot_module, "named_documents", lambda doc_ids, text, titles=None: [])
    a = bot.ask("Who hears disputes under the Zephyr Public License?")
    assert not a.abstained and a.citations[0].doc == "001_9b7d3e44.txt" and a.answer == "arbitrator"


def test_the_version_under_a_shared_heading_tells_two_hash_named_texts_apart(licences_bot, tmp_path):
    """Two versions of one licence, hash-named, under the same heading: the line below it gives
    the version, which is part of each title, so "version 1" names only the first."""
    from qa.bot import Bot
    from qa.ingest import parse_text

    for name, number, year, guild in (("000_5f2c9a1e.txt", 1, 2001, "Eastport"), ("001_9b7d3e44.txt", 2, 2011, "Northport")):
        (tmp_path / name).write_text(f"        ZEPHYR PUBLIC LICENSE\n          Version {number}, June {year}\n\n"
                                     f"1. Steward. The {guild} Software Guild is the license steward.\n", encoding="utf-8")
    assert parse_text((tmp_path / "000_5f2c9a1e.txt").read_bytes(), "000_5f2c9a1e.txt").title == "ZEPHYR PUBLIC LICENSE Version 1"
    assert parse_text(b"Release notes\nVersions 2 and 3 differ.\n", "notes.txt").title == "Release notes"
    assert parse_text(b"Harbor License Version 2.0\nVersion 2.0, 2004\n", "h.txt").title == "Harbor License Version 2.0"
    bot = Bot(tmp_path, index_dir=tmp_path / ".index", embedder=licences_bot.embedder, answerer=licences_bot.answerer)
    bot.sync()
    for number, doc in ((1, "000_5f2c9a1e.txt"), (2, "001_9b7d3e44.txt")):
        a = bot.ask(f"Who is the steward of the Zephyr Public License version {number}?")
        assert a.citations and all(c.doc == doc for c in a.citations), (number, a.citations)


def test_a_question_naming_a_document_is_searched_in_it(licences_bot, monkeypatch, tmp_path):
    """A rival licence that repeats the named licence's name: searched everywhere, its sentence is
    cited and confidently answered; searched in the document the question names, only that
    document is cited (here its disputes clause, declined: it names no one to answer "who")."""
    from qa import bot as bot_module
    from qa.bot import Bot

    for name, text in LICENCES.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    (tmp_path / "Osprey.txt").write_text(OSPREY, encoding="utf-8")
    bot = Bot(tmp_path, index_dir=tmp_path / ".index", embedder=licences_bot.embedder, answerer=licences_bot.answerer)
    bot.sync()
    question = "Who hears disputes under the Zephyr license?"
    a = bot.ask(question)
    assert a.citations and all(c.doc == "Zephyr-2.0.txt" for c in a.citations) and a.answer != "arbitrator"
    a = bot.ask("Under the Zephyr license, which courts hear disputes?")
    assert not a.abstained and a.citations[0].doc == "Zephyr-2.0.txt" and "courts of the place" in a.answer
    # The user's own limit still holds: a named document outside it is not searched.
    assert all(c.doc == "Osprey.txt" for c in bot.ask(question, docs=["Osprey.txt"]).citations)
    monkeypatch.setattr(bot_module, "named_documents", lambda doc_ids, text, titles=None: [])
    a = bot.ask(question)
    assert not a.abstained and a.citations[0].doc == "Osprey.txt" and a.answer == "arbitrator"


def test_echoes_question_is_a_fragment_of_the_question_s_own_words():
    from index.text import terms
    from qa.answerer import echoes_question

    asked = set(terms("When does the Artistic License expire?"))

    def echo(sentence):
        return echoes_question(asked, sentence, terms(sentence))

    assert echo('The "Artistic License"') and echo("## Artistic license") and echo("")
    # A sentence, or a fragment with a word of its own, may hold an answer.
    assert not echo("The Artistic License expires.") and not echo('The "Artistic License."')
    assert not echo("Artistic License, version 2") and not echo("Preamble")


def test_a_title_that_repeats_the_question_is_not_cited(licences_bot, monkeypatch):
    """Asked what a licence does not say, its title, which holds nothing but words of the
    question, is no candidate; without the rule it is cited and answered."""
    from qa import answerer

    title = "Zephyr Public License, version 2.0"
    expire, author = f"When does the {title} expire?", f"Who wrote the {title}?"
    assert all(c.text != title for q in (expire, author) for c in licences_bot.ask(q).citations)
    assert licences_bot.ask(author).abstained
    monkeypatch.setattr(answerer, "echoes_question", lambda *args: False)
    for q in (expire, author):
        a = licences_bot.ask(q)
        assert not a.abstained and a.citations[0].text == title


def test_without_names_drops_the_words_that_name_the_documents():
    from qa.answerer import name_terms, without_names

    def without(question, doc_ids, titles=None, carried=()):
        return without_names(question, name_terms(doc_ids, titles or [""] * len(doc_ids)), carried)

    assert without('What does "convey" mean in the GPL version 3?', ["GPL-3.txt"]) == 'What does "convey" mean in the version ?'
    assert without("Under GPLv2, whom should I ask?", ["GPL-2.txt"]) == "Under , whom should I ask?"
    # A title's words and initials name its document as well; "version" is none of them.
    assert without("Under the GNU General Public License version 3, whom should I ask?", ["000_5f2c.txt"],
                   ["GNU GENERAL PUBLIC LICENSE"]) == "Under the version 3, whom should I ask?"
    assert without("Under the GPL, whom should I ask?", ["000_5f2c.txt"], ["GNU GENERAL PUBLIC LICENSE"]) == "Under the , whom should I ask?"
    # Words of other names, and a question that would be left with nothing to read, are kept.
    assert without("Is the MPL like the GPL?", ["GPL-3.txt"]) == "Is the MPL like the ?"
    assert without("GPLv3?", ["GPL-3.txt"]) == "GPLv3?"
    assert without("And in the MPL?", ["MPL-2.0.txt"], carried=("courts",)) == "And in the ?"


def test_a_named_document_is_read_without_its_name(licences_bot, monkeypatch):
    """Searched in the licence it names, the question is read without the name: read with it, the
    licence's title, which holds nothing but the name, is cited and answered."""
    from qa import bot as bot_module

    question, title = "Under the Zephyr license version 2, what may I do with the work?", "Zephyr Public License, version 2.0"
    a = licences_bot.ask(question)
    assert a.citations[0].text.startswith("Each contributor grants you") and all(c.doc == "Zephyr-2.0.txt" for c in a.citations)
    monkeypatch.setattr(bot_module, "without_names", lambda question, names, carried=(): question)
    a = licences_bot.ask(question)
    assert not a.abstained and a.citations[0].text == title


def test_a_short_answer_leaves_out_the_emoji_beside_it(embedder, tmp_path):
    """The tokenizer reads an emoji as [UNK], and the reader's span ran onto it ("Morag Dunn 👩")."""
    from qa.bot import Bot

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "ferry.txt").write_text(
        "Ferry facts\n\nThe 🚢 ferry of Oban was first run by Morag Dunn 👩 in 1901.\n"
        "The café on the roof was run by Noël Durand 👩\u200d👩\u200d👧\u200d👦 until 2015.\n"
        "The new bridge would be built by Fenwick & Ross 👷🏽\u200d♂\ufe0f in 1999.\n", encoding="utf-8")
    bot = Bot(folder, index_dir=tmp_path / "index", embedder=embedder)
    bot.sync()
    text = bot.document_text("ferry.txt")
    for question, expected in [("Who first ran the ferry of Oban?", "Morag Dunn"),
                               ("Who ran the cafe on the roof?", "Noël Durand"),
                               ("Who would build the new bridge?", "Fenwick & Ross")]:
        a = bot.ask(question)
        top = a.citations[0]
        assert text[top.start:top.end] == top.text
        assert a.answer == expected == top.text[top.answer_start:top.answer_end]


def test_only_emoji_are_trimmed_from_a_short_answer():
    from qa.answerer import without_pictographs

    for text, kept in [("Fenwick 👷🏽\u200d♂\ufe0f", "Fenwick"), ("👩 Morag Dunn", "Morag Dunn"),
                       ("Ana Lopez \u2705", "Ana Lopez"), ("Paris \u2708\ufe0f", "Paris"), ("5 \u2605 hotel", "5 \u2605 hotel"),
                       ("B\u266d 🎵", "B\u266d"), ("in B\u266d major", "in B\u266d major"), ("👍", "👍")]:
        a, b = without_pictographs(text, (0, len(text)))
        assert text[a:b] == kept


def test_a_copy_of_a_document_is_cited_once_and_named_as_agreeing(embedder, tmp_path):
    """Two identical files filled two of the three citations with the same sentence."""
    from qa.bot import Bot

    folder = tmp_path / "docs"
    folder.mkdir()
    text = ("Harbour notes\n\nThe harbour lighthouse was built by Margaret Hale in 1871. Its lamp was first lit "
            "in the spring of that year. It stands 31 metres tall on the northern breakwater.\n")
    (folder / "report.txt").write_text(text, encoding="utf-8")
    (folder / "report (1).txt").write_text(text, encoding="utf-8")
    bot = Bot(folder, index_dir=tmp_path / "index", embedder=embedder)
    a = bot.ask("Who built the harbour lighthouse?")
    texts = [c.text for c in a.citations]
    assert a.answer == "Margaret Hale" and len(texts) == len(set(texts)) == 3
    assert [c.doc for c in a.corroboration if c.agrees] == [({"report.txt", "report (1).txt"} - {a.citations[0].doc}).pop()]

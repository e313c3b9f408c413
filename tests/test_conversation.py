"""Follow-up resolution: unit cases, and the bot using its own earlier answers."""

import pytest

from qa.bot import Turn
from qa.conversation import is_follow_up, resolve as _resolve


def resolve(question, history):
    """What the bot would search for (the resolved question and the carried words)."""
    return _resolve(question, history).searched_for


def test_standalone_question_is_not_dragged_back():
    history = [("Who did Milley call?", "Who did Milley call?", "Li Zuocheng")]
    q = "What is the capital of France?"
    assert not is_follow_up(q)
    assert resolve(q, history) == q and not _resolve(q, history).follow_up
    assert resolve("Who won the 2020 US presidential election?", history) == "Who won the 2020 US presidential election?"


def test_pronoun_takes_the_previous_person_answer():
    history = [("Who did Milley call?", "Who did Milley call?", "Li Zuocheng")]
    out = resolve("What position does he hold?", history)
    assert out.startswith("What position does Li Zuocheng hold?")
    assert _resolve("What position does he hold?", history).follow_up


def test_two_candidate_antecedents_prefer_the_answer_over_the_asker():
    # "he" could be Milley (named in the question) or Li (the answer): the most recent, the answer, wins.
    history = [("Who did Milley call twice?", "Who did Milley call twice?", "Li Zuocheng")]
    assert "Li Zuocheng" in resolve("What did he say?", history).split("?")[0]
    # With no person answered, the question's own name is the antecedent.
    history = [("When did Milley call?", "When did Milley call?", "January 8")]
    assert resolve("What did he say?", history).startswith("What did Milley say?")


def test_pronoun_without_a_person_named_points_to_the_role():
    q = "What did the vice chairman of the Joint Chiefs say the goal with China should be?"
    # Neither "Joint Chiefs" (after "the") nor "China" is who "his" means: the role is.
    assert _resolve("What's his name?", [(q, q, None)]).question == "What's the vice chairman's name?"
    q = "What did the anonymous military expert say about US wars?"
    assert _resolve("What does he expect?", [(q, q, None)]).question == "What does the anonymous military expert expect?"
    # An acronym or a name introduced by "the" is no person; a later plain name is.
    q = "When did the Washington Post and the US say Milley called?"
    assert _resolve("Why did he call?", [(q, q, None)]).question == "Why did Milley call?"


def test_ellipsis_carries_the_topic_but_not_the_old_ordinal_or_date():
    history = [("When was the first call?", "When was the first call?", "October 30, 2020")]
    out = resolve("And the other one?", history)
    assert out.startswith("And the other one?") and "call" in out
    assert "first" not in out and "October" not in out
    resolution = _resolve("And the other one?", history)
    assert resolution.question == "And the other one?" and resolution.carried[0] == "when"


def test_a_job_title_answered_is_not_carried_but_the_role_question_is():
    q = "What is Bob Woodward's role at the paper?"
    resolution = _resolve("And Robert Costa's?", [(q, q, "associate editor")])
    assert "associate" not in resolution.carried and "editor" not in resolution.carried
    # It asks the last question ("what … role") of the newly named person, not of the old one.
    assert resolution.carried[:2] == ("what", "role")
    assert "Bob" not in resolution.carried and "Woodward's" not in resolution.carried


def test_short_question_is_a_follow_up():
    assert is_follow_up("In what year?")
    assert is_follow_up("And Robert Costa's?")
    assert not is_follow_up("Which book exposed the secret phone calls?")


def test_bot_uses_its_own_previous_answer(seeds_bot):
    first = seeds_bot.ask("When was the first call?")
    second = seeds_bot.ask("And the second one?", history=[Turn("When was the first call?", first)])
    assert second.searched_for != second.question and "call" in second.searched_for
    # The carried words lead to the sentence with both calls' dates; whether the bot then
    # answers or declines is the confidence model's call (it sits near the threshold here).
    top = second.citations[0]
    assert "January 8" in top.text and "call" in top.text
    assert second.abstained or second.answer == "January 8"


def test_object_pronoun_looks_back_but_subject_pronoun_stays_in_the_question():
    history = [("Who did Milley call?", "Who did Milley call?", "Li Zuocheng")]
    # "him" cannot be the clause's own subject: it is the person answered last turn.
    assert resolve("How many times did Milley ring him?", history).startswith("How many times did Milley ring Li Zuocheng?")
    # The answer was the person the question names: "him" is the next one back, not Milley again.
    history = [("Who called Li?", "Who called Li?", "Mark Milley")]
    assert resolve("How many times did Milley ring him?", history).startswith("How many times did Milley ring Li?")
    # "he" right after a name in the same question means that name: no rewrite, no carried topic.
    q = "Where was Milley when he made the calls?"
    assert not is_follow_up(q) and resolve(q, history) == q


def test_follow_up_confidence_counts_the_carried_words_in_full(seeds_bot, monkeypatch):
    """Ranking discounts a follow-up's carried words, but the confidence model (learned from
    questions that stand alone) judges it as the question it was resolved to."""
    import qa.answerer

    def converse():
        history = []
        for q in ("Which senator wrote to Biden about Milley?", "What did he want the president to do?"):
            answer = seeds_bot.ask(q, history=history)
            history.append(Turn(q, answer))
        return answer

    full = converse()
    assert "urging him to fire Milley" in full.citations[0].text
    assert not full.abstained

    # Judged with the carried words at the ranking's discount instead:
    monkeypatch.setattr(qa.answerer.Question, "counting_context", lambda self, weight: self)
    judged_discounted = converse()
    assert judged_discounted.citations[0].text == full.citations[0].text
    assert judged_discounted.confidence < full.confidence


def test_locality_prior_moves_follow_ups_only(seeds_bot, monkeypatch):
    """The prior reaches the sentence the last turn cited through its offsets, and only a
    follow-up feels it: a question that stands on its own is answered as without history."""
    import dataclasses

    import numpy as np

    from qa.answerer import LOCALITY

    first_q = "What did Milley say to reassure Li about the American government?"
    first = seeds_bot.ask(first_q)
    history = [Turn(first_q, first)]
    index = seeds_bot.index
    row = index.sentence_at(first.citations[0].doc, first.citations[0].start)
    assert index.sentence_text(row) == first.citations[0].text
    # A prior that knows only "the next sentence", and strongly:
    strong = np.zeros_like(seeds_bot.answerer.model.locality)
    strong[0, LOCALITY.index("next")] = 50.0
    monkeypatch.setattr(seeds_bot.answerer, "model", dataclasses.replace(seeds_bot.answerer.model, locality=strong))
    follow = seeds_bot.ask("And what would he do before any attack?", history)
    top = follow.citations[0]
    assert (top.doc, top.start) == (first.citations[0].doc, int(index.sentences.start[row + 1]))
    alone = "Which senator wrote to Biden about Milley?"
    assert seeds_bot.ask(alone, history).citations == seeds_bot.ask(alone).citations


def test_follow_up_threshold_holds_only_settled_conversations(seeds_bot, monkeypatch):
    """A later turn in a conversation kept to a few documents, once an earlier turn was answered,
    is held to the follow-up threshold (a decline in between does not undo that); without the
    documents filter, or before any turn was answered, it is held to the usual one."""
    import dataclasses

    first_q = "Which senator wrote to Biden about Milley?"
    first = seeds_bot.ask(first_q)
    doc = first.citations[0].doc
    assert not first.abstained
    # The usual threshold declines everything; the follow-up one declines nothing.
    model = dataclasses.replace(seeds_bot.answerer.model, threshold=1.01, follow_up_threshold=0.0)
    monkeypatch.setattr(seeds_bot.answerer, "model", model)
    follow_q = "What did he want the president to do?"
    answered = [Turn(first_q, first)]
    declined = [Turn(first_q, dataclasses.replace(first, abstained=True, answer=None))]
    assert not seeds_bot.ask(follow_q, answered, docs=[doc]).abstained
    assert seeds_bot.ask(follow_q, answered).abstained  # not kept to documents
    assert seeds_bot.ask(follow_q, declined, docs=[doc]).abstained  # no turn was answered yet
    assert not seeds_bot.ask(follow_q, answered + declined, docs=[doc]).abstained  # one was, before
    assert seeds_bot.ask(follow_q, [], docs=[doc]).abstained  # the first turn
    # A later question that stands on its own is held to it too: the conversation is settled.
    assert not seeds_bot.ask("Who are the authors of Peril?", answered, docs=[doc]).abstained


def test_settled_turns_show_the_rescaled_confidence_and_are_declined_on_the_models_own(seeds_bot, monkeypatch):
    """A settled turn shows Model.shown of the confidence model's output; declining still reads
    the model's own confidence, and a turn that is not settled is shown it as it is."""
    import dataclasses

    first_q = "Which senator wrote to Biden about Milley?"
    first = seeds_bot.ask(first_q)
    doc, answered = first.citations[0].doc, [Turn(first_q, first)]
    follow_q = "What did he want the president to do?"
    plain = dataclasses.replace(seeds_bot.answerer.model, settled=None, follow_up_threshold=0.0)
    monkeypatch.setattr(seeds_bot.answerer, "model", plain)
    raw = seeds_bot.ask(follow_q, answered, docs=[doc])
    unsettled = seeds_bot.ask(follow_q, answered)
    assert not raw.abstained and 0.05 < raw.confidence < 0.9999
    # Held just under the model's own confidence, which the rescaling lowers well under it:
    rescaled = dataclasses.replace(plain, settled=(1.0, -3.0), follow_up_threshold=raw.confidence - 1e-6)
    monkeypatch.setattr(seeds_bot.answerer, "model", rescaled)
    shown = seeds_bot.ask(follow_q, answered, docs=[doc])
    assert not shown.abstained and shown.answer == raw.answer
    assert shown.confidence == pytest.approx(rescaled.shown(raw.confidence)) and shown.confidence < raw.confidence - 0.05
    assert [(c.doc, c.start) for c in shown.citations] == [(c.doc, c.start) for c in raw.citations]
    assert seeds_bot.ask(follow_q, answered).confidence == pytest.approx(unsettled.confidence)


def test_api_history_conversation_id_and_cli_chat_give_the_same_answers(seeds_bot, tmp_path):
    """The CLI chat, the API with `history` and the API with `conversation_id` run one
    conversation code: the same turns get the same answers, citations and searches."""
    import os
    import re
    import subprocess
    import sys

    import httpx
    from conftest import DOCUMENTS, ROOT
    from servers import serving

    from qa.api import Settings, create_app

    questions = ["When did Milley make his first call to the Chinese general?", "And the second one?",
                 "What had happened a couple of days before that?", "How long did that call last?"]
    # What the chat page and `qa chat` do: the Bot with the full earlier Answers.
    history: list[Turn] = []
    direct = []
    for q in questions:
        a = seeds_bot.ask(q, history=history)
        history.append(Turn(q, a))
        direct.append((a.searched_for, a.abstained, a.answer, a.citations[0].doc, a.citations[0].start))

    with serving(create_app(seeds_bot, Settings(rate_limit=0))) as url, httpx.Client(base_url=url, timeout=60) as client:
        sent, by_history, by_id = [], [], []
        for q in questions:
            a = client.post("/api/answer", json={"question": q, "history": sent}).json()
            sent.append({"question": q, "answer": a})
            b = client.post("/api/answer", json={"question": q, "conversation_id": "parity-1"}).json()
            for out, x in ((by_history, a), (by_id, b)):
                top = x["citations"][0]
                out.append((x["searched_for"], x["abstained"], x["answer"], top["doc"], top["start"]))
    assert by_history == direct
    assert by_id == direct

    chat = subprocess.run(
        [sys.executable, "-m", "qa.cli", "chat", "--docs", str(DOCUMENTS), "--index", str(tmp_path / "ix")],
        input="\n".join(questions) + "\n", capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=300,
    )
    assert chat.returncode == 0, chat.stderr
    replies = chat.stdout.split("you> ")[1:]  # the last prompt meets the end of input
    assert len(replies) == len(questions) + 1
    for q, reply, (searched_for, abstained, answer, _doc, _start) in zip(questions, replies, direct):
        if abstained:
            assert "I could not find this in the documents." in reply
        else:
            shown = re.search(r"^Answer: \*\*(.*?)\*\*", reply, re.MULTILINE)
            assert shown and shown.group(1) == answer
        if searched_for != q:
            assert f"(searched for: {searched_for})" in reply


def test_a_yes_no_verdict_is_no_antecedent():
    """After "Did he say who won?" answered "Yes", "Where was he?" does not search for "Yes"."""
    r = resolve("Where was he then?", [("Did Tom say who won?", "Did Tom say who won?", "Yes")])
    assert r.startswith("Where was Tom then?") and "Yes" not in r


def test_and_in_another_document_swaps_the_names_it_replaces():
    q = "In the Apache License, what share of the outstanding shares gives control of an entity?"
    resolution = _resolve("And in the MPL?", [(q, q, "fifty percent")])
    # The question is asked again of the newly named license, not of the old one.
    assert "Apache" not in resolution.carried and "License" not in resolution.carried
    assert {"share", "control"} <= set(resolution.carried)
    # Without a leading "and"/"what about", a named follow-up keeps carrying the earlier names.
    q = "Which country did the Acme Company move to?"
    assert "Acme" in _resolve("Why did it leave Boston?", [(q, q, "Portugal")]).carried


def test_names_and_words_outside_ascii_are_resolved_and_carried_whole():
    """"When was she born?" after "Zoë Müller" was searched as "When was Zo born?" carrying
    "M", "ller", "Z" and "rich": words the index, which keeps "müller" whole, never holds."""
    q = "Who founded the Zürich bank?"
    r = _resolve("When was she born?", [(q, q, "Zoë Müller")])
    assert r.question == "When was Zoë Müller born?" and r.carried == ("founded", "Zürich", "bank")
    q = "Who designed the Alexandria library café?"
    assert _resolve("And when?", [(q, q, "Snøhetta")]).carried[:2] == ("Snøhetta", "designed")
    assert "café" in _resolve("And when?", [(q, q, "Snøhetta")]).carried


def test_only_a_turn_answered_in_the_chosen_documents_settles_the_conversation(corpus, embedder, tmp_path):
    """A turn answered in other documents, or a date range that leaves a few, held the next
    question to the follow-up threshold: "How tall is the Eiffel Tower?" got "400 metres wide"."""
    from qa.bot import Bot, is_settled

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    built = Turn("Who built the harbour lighthouse?", bot.ask("Who built the harbour lighthouse?"))
    crater = Turn("How wide is the crater lake?", bot.ask("How wide is the crater lake?"))
    assert built.answer.citations[0].doc == "lighthouse.md" and crater.answer.citations[0].doc == "volcano.txt"
    assert not built.answer.abstained and not crater.answer.abstained
    q = "How tall is the Eiffel Tower?"
    assert bot.ask(q, docs=["volcano.txt"]).abstained
    assert bot.ask(q, [built], docs=["volcano.txt"]).abstained  # the picker was narrowed after an answer
    assert bot.dated("2020-01-01") == ["volcano.txt"]
    assert bot.ask(q, [crater], after="2020-01-01").abstained  # a date range is no choice of documents
    assert is_settled([crater], ["volcano.txt"]) and not is_settled([built], ["volcano.txt"])


def test_a_citation_whose_document_changed_is_no_previous_sentence(corpus, embedder, tmp_path):
    """After an edit, another sentence starting at the cited offset was taken as the one cited."""
    from qa.bot import Bot, cited_sentence

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    bot.sync()
    first = bot.ask("How tall is the harbour lighthouse?")
    top = first.citations[0]
    assert (top.doc, top.text) == ("lighthouse.md", "It stands 31 metres tall on the northern breakwater.")
    assert cited_sentence(bot.index, first) is not None
    path = corpus / "lighthouse.md"
    path.write_text(path.read_text().replace(top.text, "Its walls were painted white in 1990."))
    assert bot.sync().touched
    assert bot.index.sentence_at(top.doc, top.start) is not None  # a new sentence starts there
    assert cited_sentence(bot.index, first) is None
    follow = bot.ask("And when was it painted?", [Turn("How tall is the harbour lighthouse?", first)])
    for c in follow.citations:
        assert bot.document_text(c.doc)[c.start:c.end] == c.text


def test_a_document_named_twice_is_one_and_a_reversed_date_range_is_said(corpus, embedder, tmp_path):
    """["volcano.txt"] * 4 counted as four documents, too many to settle the conversation; a range
    whose after is later than its before was "no document is dated between …"."""
    from qa.bot import Bot, QuestionError

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    crater = Turn("How wide is the crater lake?", bot.ask("How wide is the crater lake?"))
    follow = [bot.ask("And how deep is it?", [crater], docs=docs) for docs in (["volcano.txt"], ["volcano.txt"] * 4)]
    assert follow[0].to_dict() | {"timings_ms": None} == follow[1].to_dict() | {"timings_ms": None}
    with pytest.raises(QuestionError, match="the date range is reversed: 2021-01-01 is after 2020-01-01"):
        bot.ask("How wide is the crater lake?", after="2021-01-01", before="2020-01-01")


def test_a_question_without_words_is_refused_not_answered_from_the_last_topic(corpus, embedder, tmp_path):
    """"?" or "👍" after an answer was read as a follow-up and answered with a quote about the
    last topic (in a conversation kept to one document, at 0.4 to 0.5 confidence)."""
    from qa.bot import Bot, QuestionError

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    crater = Turn("How wide is the crater lake?", bot.ask("How wide is the crater lake?", docs=["volcano.txt"]))
    assert not crater.answer.abstained
    for q in ("?", "👍", "...", " ¿? "):
        with pytest.raises(QuestionError, match="the question has no words"):
            bot.ask(q, [crater], docs=["volcano.txt"])
    assert bot.ask("2019?", [crater], docs=["volcano.txt"]).question == "2019?"


def test_a_pronoun_of_the_other_gender_is_not_the_same_person_and_her_job_is_hers():
    """"What did he tell her?" was searched as "What did Paul Reyes tell Paul Reyes?", and "What is
    her job?" as "What is Linda Okafor job?"."""
    history = [("Who flew to Lisbon?", "Who flew to Lisbon?", "Paul Reyes")]
    assert resolve("What did he tell her?", history).startswith("What did Paul Reyes tell her?")
    assert resolve("Did she fire him right away?", history).startswith("Did Paul Reyes fire him right away?")
    assert resolve("What did she say to her mother?", history).startswith("What did Paul Reyes say to Paul Reyes's mother?")
    history = [("Who is the mayor?", "Who is the mayor?", "Linda Okafor")]
    assert resolve("What is her job?", history).startswith("What is Linda Okafor's job?")
    assert resolve("Did they give her the key?", history).startswith("Did they give Linda Okafor the key?")
    assert resolve("Did the council thank her?", history).startswith("Did the council thank Linda Okafor?")
    # An adverb or particle after "her" leaves it the object, unless a noun follows it.
    assert resolve("Did they pay her well?", history).startswith("Did they pay Linda Okafor well?")
    assert resolve("Did they let her go to school?", history).startswith("Did they let Linda Okafor go to school?")
    assert resolve("What was her first job?", history).startswith("What was Linda Okafor's first job?")


def test_chat_openers_are_no_names_and_carried_words_are_not_repeated():
    """"Tell me more" stood alone (its "Tell" read as a name) while "tell me more" was a follow-up;
    carried words repeated when only case or a possessive differed ("mayor Linda Okafor Mayor")."""
    history = [("Who founded the company?", "Who founded the company?", "Linda Okafor")]
    for q in ("Tell me more", "Anything else?", "Sorry, when?"):
        assert is_follow_up(q) and _resolve(q, history).follow_up
        assert resolve(q, history).startswith(f"{q} (") and "Linda Okafor" in resolve(q, history)
    assert resolve("Tell me about his childhood", history).startswith("Tell me about Linda Okafor's childhood")
    assert not _resolve("Paris?", history).follow_up  # a name alone is still a question of its own
    mayor = [("Who is the Mayor?", "Who is the Mayor?", "mayor Linda Okafor")]
    assert resolve("How many people attended?", mayor) == "How many people attended? (mayor Linda Okafor)"
    owner = [("Who founded Okafor's company?", "Who founded Okafor's company?", "Okafor")]
    assert resolve("When?", owner) == "When? (Okafor founded company)"


def test_thanks_or_ok_is_not_answered_with_a_quote(corpus, embedder, tmp_path):
    """"Thanks!" or "ok, bye" after an answer asks nothing; read as a follow-up it was answered
    with a quote about the last topic."""
    from qa.bot import Bot, QuestionError

    bot = Bot(corpus, index_dir=tmp_path / "ix", embedder=embedder)
    crater = Turn("How wide is the crater lake?", bot.ask("How wide is the crater lake?", docs=["volcano.txt"]))
    assert not crater.answer.abstained
    for q in ("Thanks!", "ok, bye", "Thank you.", "OK thanks", "hi", "Great, thanks!", "ok?"):
        with pytest.raises(QuestionError, match="that reads as chat, not a question"):
            bot.ask(q, [crater], docs=["volcano.txt"])
    # A question that holds one of those words is still asked, and so is a greeting or praise
    # asked as a question: "Nice?" may be the city, "Hello?" the song.
    for q in ("Is it a nice lake?", "Nice?", "Hello?"):
        assert bot.ask(q, [crater], docs=["volcano.txt"]).question == q


def test_her_before_own_most_or_other_is_possessive_and_before_an_adverb_pair_is_not():
    """"her own party" was searched "Linda Okafor own party", and "pay her well last year"
    "pay Linda Okafor's well last year"."""
    history = [("Who is the mayor?", "Who is the mayor?", "Linda Okafor")]
    assert resolve("What is her own party?", history).startswith("What is Linda Okafor's own party?")
    assert resolve("What was her most famous speech?", history).startswith("What was Linda Okafor's most famous speech?")
    assert resolve("Who was her other sister?", history).startswith("Who was Linda Okafor's other sister?")
    assert resolve("Did they pay her well last year?", history).startswith("Did they pay Linda Okafor well last year?")
    assert resolve("Did they let her go home?", history).startswith("Did they let Linda Okafor go home?")
    assert resolve("Did they give her more money?", history).startswith("Did they give Linda Okafor more money?")
    assert resolve("What was her first job?", history).startswith("What was Linda Okafor's first job?")

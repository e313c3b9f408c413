"""Expected answer types and short-answer spans: pattern rules, no model."""

import pytest

from qa.answertype import AGE, DATE, DURATION, ENTITY, NONE, NUMBER, PERSON, ROLE, candidates, find_answer, is_polar, question_type


@pytest.mark.parametrize("question, kind", [
    # "Which/what" and a noun saying what is asked for.
    ("Which senator wrote to the president?", PERSON),
    ("Which Chinese military commentator doubted the report?", PERSON),
    ("What news agency reported the remark?", ENTITY),
    ("Which book exposed the calls?", ENTITY),
    # The role word must follow "what/which" through content words only.
    ("What did the president say?", NONE),
    ("What general principle applies?", NONE),
    # Numbers of a particular sort.
    ("How old is the chairman?", AGE),
    ("At what age did she retire?", AGE),
    ("How long did the call last?", DURATION),
    ("How long is the river?", DURATION),
    ("How long ago did it happen?", DATE),
    ("How many calls were there?", NUMBER),
    # Someone's job or title.
    ("What is Bob Woodward's role at the paper?", ROLE),
    ("What positions does he hold?", ROLE),
    ("What position does the striker play?", ROLE),
    ("What was the occupation of her father?", ROLE),
    ("What's the spokesman's job?", ROLE),
    ("What did she do for a living?", ROLE),
    # Not someone's title: what someone did, a description, a stance, a place, a book's name.
    ("What role did Luther play in the Reformation?", NONE),
    ("What is the role of teachers in education?", NONE),
    ("What did the historian say about Luther's position on Jews?", NONE),
    ("What is the position of the satellite?", NONE),
    ("What is one issue that adds to the complexity of a pharmacist's job?", NONE),
    ("What is the title of the book?", ENTITY),
])
def test_question_type(question, kind):
    assert question_type(question) == kind


def test_the_asked_role_word_does_not_make_the_answer_an_echo():
    sentence = "Senator Marco Rubio sent President Joe Biden a letter on Tuesday."
    span, _ = find_answer("Which senator wrote to Biden?", sentence, PERSON)
    # "President Joe Biden" restates the question's "Biden"; "Senator" is the asked-for role.
    assert sentence[span.start:span.end] == "Senator Marco Rubio"


@pytest.mark.parametrize("question, sentence, expected", [
    ("How old is the general?", "The general, 68, said he went behind the president's back twice.", "68"),
    ("How old was she?", "She died aged 91 in London.", "91"),
    ("How old was the singer?", "The 45-year-old singer won two awards.", "45"),
    ("How old are the fossils?", "The fossils are about 515 million years old.", "about 515 million"),
    # A count is no age, and a date's day no duration.
    ("How old is the general?", "The general went behind the president's back twice.", None),
    # "four days before" places the call in time: it says how long before, not how long.
    ("How long before the vote was the call?", "One call took place on October 30, four days before the vote.", "four days"),
    ("How long did the call last?", "One call took place on October 30, four days before the vote.", None),
    ("How long did the call last?", "The call, four days before the vote, lasted ninety minutes.", "ninety minutes"),
    ("How long did the call last?", "The general made two calls on October 30.", None),
    ("How long is the river?", "The river is 1,230 km long.", "1,230 km"),
])
def test_ages_and_durations(question, sentence, expected):
    found = find_answer(question, sentence, question_type(question))
    assert (sentence[found[0].start:found[0].end] if found else None) == expected



CALLS = ("Milley, the chairman of the Joint Chiefs of Staff, went behind President Donald Trump’s back "
         "twice to make phone calls to his opposite number in Beijing, Gen. Li Zuocheng.")
PROMISE = ("According to the book, Obama reportedly promised to give China advance notification of any "
           "military strike, something Republicans have questioned.")


@pytest.mark.parametrize("question, sentence, expected", [
    # "Who did X call?" asks for the call's object: the person after "calls", not the one before.
    ("Who did Milley call?", CALLS, "Li Zuocheng"),
    ("Whom would the chairman phone?", CALLS, "Li Zuocheng"),
    # A reported clause asks for its own subject, so the rule stays out of it.
    ("Who does the book say promised to warn China of any strike?", PROMISE, "Obama"),
])
def test_object_questions_prefer_the_person_after_the_verb(question, sentence, expected):
    found = find_answer(question, sentence, question_type(question))
    assert found and sentence[found[0].start:found[0].end] == expected


@pytest.mark.parametrize("question, sentence, expected", [
    ("How much did the council pay for the land?", "The council paid $4.5 million for the land in 2019.", "$4.5 million"),
    ("How much did the tickets cost?", "Tickets cost about €30 each.", "about €30"),
    ("How many people came?", "Some 2,000 people came to the vigil.", "Some 2,000 people"),
])
def test_a_currency_sign_stays_with_its_number(question, sentence, expected):
    found = find_answer(question, sentence, question_type(question))
    assert found is not None and sentence[found[0].start:found[0].end] == expected


def test_a_year_after_in_is_no_amount():
    sentence = "The museum, opened in 1998, holds 1500 paintings."
    assert find_answer("How many paintings does the museum hold?", sentence, NUMBER)[0].start == sentence.index("1500")
    assert find_answer("How many paintings does the museum hold?", "It opened in 1998.", NUMBER) is None


@pytest.mark.parametrize("question, expected", [
    # The unit counted picks among the amounts, before an ordinal picks among those.
    ("How many days after the riot did the second call happen?", "two days"),
    ("How many days before the election was the first call?", "four days"),
])
def test_how_many_prefers_an_amount_of_the_thing_counted(question, expected):
    sentence = ("One call took place on October 30, 2020, four days before the election, and the other "
                "on January 8, two days after the riot.")
    span, _ = find_answer(question, sentence, question_type(question))
    assert sentence[span.start:span.end] == expected


@pytest.mark.parametrize("question, sentence, expected", [
    ("In which year did the gallery open?", "The gallery opened on December 19, 1986, in London.", "1986"),
    ("In what month did the works start?", "The works started on 3 May 2001.", "May"),
    ("What day of the week are elections held?", "Since 1998, elections are held on a Thursday.", "Thursday"),
    # Asked "when", the whole date answers.
    ("When did the works start?", "The works started on 3 May 2001.", "3 May 2001"),
])
def test_a_date_part_question_gets_that_part(question, sentence, expected):
    span, _ = find_answer(question, sentence, question_type(question))
    assert sentence[span.start:span.end] == expected


WOODWARD = ("The Washington Post reported on Tuesday that the book published by its associate editor Bob Woodward "
            "and national political reporter Robert Costa revealed that Milley, the chairman of the Joint Chiefs of "
            "Staff, made two calls.")


def test_role_spans_keep_their_modifiers_and_their_of_phrase():
    found = [WOODWARD[c.start:c.end] for c in candidates(WOODWARD, ROLE)]
    assert found == ["associate editor", "national political reporter", "chairman of the Joint Chiefs of Staff"]


@pytest.mark.parametrize("question, expected", [
    ("What is Bob Woodward's role at the paper?", "associate editor"),
    ("What was Robert Costa's job?", "national political reporter"),
    ("What position does Milley hold?", "chairman of the Joint Chiefs of Staff"),
])
def test_role_answer_is_the_title_beside_the_person(question, expected):
    span, _ = find_answer(question, WOODWARD, ROLE)
    assert WOODWARD[span.start:span.end] == expected


@pytest.mark.parametrize("sentence, expected", [
    ("The general consensus was that the top US general Mark Milley was right.", ["general"]),
    ("He later became editor of a newspaper.", ["editor"]),
    ("He joined the Institute of Radio Engineers.", []),
    ("Tesla was allocated the chief electrician position.", ["chief electrician"]),
])
def test_role_spans_skip_adjectives_verbs_and_organisations(sentence, expected):
    assert [sentence[c.start:c.end] for c in candidates(sentence, ROLE)] == expected


def test_a_job_named_in_a_job_question_is_no_answer():
    sentence = "Trained as a lawyer, he became a journalist."
    span, _ = find_answer("Though trained as a lawyer, what profession did he pursue?", sentence, ROLE)
    assert sentence[span.start:span.end] == "journalist"


@pytest.mark.parametrize("question, sentence, expected", [
    ("Who was the first person in space?", "The Soviet cosmonaut Yuri Gagarin was the first person in space.", "Yuri Gagarin"),
    ("Who backed the policies?", "Instead, congresses and presidents backed them.", None),
    ("Who backed the policies?", "Instead, President Lyndon Johnson backed them.", "President Lyndon Johnson"),
    # A name that opens its sentence is still a name.
    ("Who wrote the letter?", "Obama wrote it.", "Obama"),
])
def test_who_skips_nationalities_and_sentence_openers(question, sentence, expected):
    found = find_answer(question, sentence, question_type(question))
    assert (sentence[found[0].start:found[0].end] if found else None) == expected


@pytest.mark.parametrize("question, polar", [
    ("Did he go?", True),
    ("And was it red?", True),
    ("So, did she stay?", True),
    ("Isn't it late?", True),
    ("Won’t it rain?", True),
    ("Can I use the trademarks?", True),
    ("Was it red or blue?", False),  # alternatives: the answer is one of them
    ("Can you name one of them?", False),  # asks to be told something
    ("Who did it?", False),
    ("What about lions?", False),
])
def test_polar_questions(question, polar):
    assert is_polar(question) is polar


def test_a_yes_no_question_asks_for_no_type():
    assert question_type("Was he still in prison when he died?") == NONE


def test_a_number_before_a_line_break_and_a_function_word_is_cut_at_the_break():
    """Hard-wrapped text ("out of ten\\nit's the drain hose") once left an empty span, and a
    "How long…" question over it crashed."""
    sentence = "Nine times out of ten\nit's the drain hose or the sink trap, not the pump."
    assert [sentence[c.start:c.end] for c in candidates(sentence, NUMBER)] == ["Nine times", "ten"]
    assert candidates(sentence, DURATION) == []
    assert find_answer("How long does the pump last?", sentence, DURATION) is None

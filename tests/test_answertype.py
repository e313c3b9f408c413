"""Expected answer types and short-answer spans: pattern rules, no model."""

import pytest

from qa.answertype import ENTITY, NONE, PERSON, find_answer, question_type


@pytest.mark.parametrize("question, kind", [
    ("Which senator wrote to the president?", PERSON),
    ("Which Chinese military commentator doubted the report?", PERSON),
    ("What news agency reported the remark?", ENTITY),
    ("Which book exposed the calls?", ENTITY),
    # The role word must follow "what/which" through content words only.
    ("What did the president say?", NONE),
    ("What general principle applies?", NONE),
])
def test_which_noun_questions(question, kind):
    assert question_type(question) == kind


def test_the_asked_role_word_does_not_make_the_answer_an_echo():
    sentence = "Senator Marco Rubio sent President Joe Biden a letter on Tuesday."
    span, _ = find_answer("Which senator wrote to Biden?", sentence, PERSON)
    # "President Joe Biden" restates the question's "Biden"; "Senator" is the asked-for role.
    assert sentence[span.start:span.end] == "Senator Marco Rubio"

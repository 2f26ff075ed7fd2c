"""Reading answers out of replies for the transfer tasks: the final answer span, option
letters, free-form numbers and text, simple LaTeX values; none of it raises on garbage."""

from __future__ import annotations

import random
import string

import pytest

from crossmath.tasks.mmmu.open import judge_open
from crossmath.tasks.transfer.choices import read_choice
from crossmath.tasks.transfer.final_answer import final_answer_span
from crossmath.tasks.transfer.freeform import answers_match, normalize_answer, read_free_form
from crossmath.tasks.transfer.latex_numbers import numeric_value

OPTIONS = (("A", "2"), ("B", "2√3"), ("C", "√3"), ("D", "2√2"))


@pytest.mark.parametrize(("output", "span"), [
    ("so x = 3.\n<answer> 3 </answer>", "3"),
    ("<answer>1</answer> wait, no: <answer>2</answer>", "2"),
    ("<answer>\\boxed{\\frac{1}{2}}</answer>", "\\frac{1}{2}"),
    ("Hence $x = \\boxed{\\frac{\\sqrt{3}}{2}}$.", "\\frac{\\sqrt{3}}{2}"),
    ("first \\boxed{1}, then corrected: \\boxed{7}", "7"),
    ("The final answer is $14$ cm. Let me double check: yes.", "14 cm"),
    ("**Final Answer:** (B)", "(B)"),
    ("Answer: 3.5 m", "3.5 m"),
    ("So the answer is 14 cm, since the straw must fit inside.", "14 cm"),
    ("The answer is 6 because both sides are equal", "6"),
    ("The answer is (-2, 1]; the endpoint -2 is open.", "(-2, 1]"),
    ("The answer is x = 2, y = 3.", "x = 2, y = 3"),
    ("The answer depends on the radius, which is 3.", None),  # no "is"/":" after "answer"
    ("<think>The answer is 5.</think>I am not sure.", None),  # drafts in thinking never count
    ("unclosed <answer>4", None),
    ("<answer></answer>", ""),
    ("", None),
])
def test_final_answer_span(output, span):
    assert final_answer_span(output) == span


@pytest.mark.parametrize(("output", "letter"), [
    ("<answer>B</answer>", "B"),
    ("<answer>(B)</answer>", "B"),
    ("<answer>B. 2√3</answer>", "B"),
    ("<answer>Option B</answer>", "B"),
    ("<answer>\\text{C}</answer>", "C"),
    ("\\boxed{D}", "D"),
    ("The answer is: C", "C"),
    ("Answer: **B**", "B"),
    ("<answer>2√2</answer>", "D"),  # the text of option D
    ("<answer>after checking both, C</answer>", "C"),  # a letter the span names
    ("BC = 2√3 by the 30-60-90 triangle.\n\nB", "B"),  # a line with only the letter
    ("Comparing the lengths, (A) is too short and (C) fits.", "C"),  # the last bracketed
    ("B. Because BC is opposite the 60° angle.", "B"),  # the reply starts with the letter
    ("A triangle with a 30° angle has BC = 2√3.", None),  # "A" the article, no answer
    ("I think vertex C is where the circle meets the chord.", None),  # bare C in a sentence
    ("<answer>G</answer>", None),
    ("<answer>2√5</answer>", None),
    ("answer: b", "B"),  # lower case as the whole span
    ("(b)", "B"),
    ("b", "B"),
    ("<answer>B, D</answer>", None),  # a list, for a question with one correct option
    ("<answer>B is right, not D</answer>", None),  # two letters named
    ("A. 2\nB. 2√3\nC. √3\nD. 2√2\nThe side is twice the short one, so I choose B.", "B"),
    ("A. 2\nB. 2√3\nC. √3\nD. 2√2\nThe side is twice the short one.", None),
    ("The side comes out as 2√2 in the end.", None),  # option text without a letter: too short
])
def test_option_letters(output, letter):
    assert read_choice(output, OPTIONS) == letter


@pytest.mark.parametrize(("output", "letters"), [
    ("<answer>C, D</answer>", "C, D"), ("<answer>D and C</answer>", "C, D"),
    ("The correct choices are (A) and (C).", "A, C"), ("<answer>C\nD</answer>", "C, D"),
    ("<answer>C</answer>", "C"), ("<answer>C, E</answer>", None),
])
def test_several_correct_options_are_read_as_a_list(output, letters):
    assert read_choice(output, OPTIONS, several=True) == letters


@pytest.mark.parametrize(("predicted", "gold", "match"), [
    ("14", "14", True),
    ("14 cm", "14", True),
    ("14\\text{ cm}^2", "14", True),
    ("L = 14", "14", True),
    ("x=5", "y=5", False),
    ("14.3", "14.32", True),
    ("14", "14.3", False),
    ("0.50", "\\frac{1}{2}", True),
    ("1/3", "0.33", True),
    ("1/3", "0.34", False),
    ("60^{\\circ}", "60°", True),
    ("\\pi/2", "1.5708", True),
    ("y = \\frac{1}{2}x + 3", "y=\\frac{1}{2}x+3", True),
    ("y=2x+3", "y=3x+2", False),
    ("(-\\infty, 2]", "(-\\infty,2]", True),
    ("", "14", False),
    # a quantity in words is compared by its value, units taken off
    ("113.1", "Area $=113.1 \\mathrm{~cm}^{2}$", True),
    ("Area = 113.1", "Area $=113.1 \\mathrm{~cm}^{2}$", True),
    ("113", "Area $=113.1 \\mathrm{~cm}^{2}$", False),
    ("15.5", "Weekly water intake $=15.5$ Litres", True),
    ("5", "$5=s$", True),
    # units converted where both are explicit; degrees and radians
    ("440 cm", "4.4 m", True), ("4.4", "440 cm", False), ("1 m^2", "10000 cm^2", True),
    ("\\frac{\\pi}{3}", "60^\\circ", True), ("1.047 rad", "60^\\circ", True),
    ("1.047", "60^\\circ", False),
    # a mis-decoded degree sign, a true bearing
    ("35°", "35掳", True), ("118", "118掳T", True), ("090°T", "090^\\circ T", True),
    # y = ... and f(x) = ... name the same function
    ("f(x) = -2x + 5", "y=-2 x+5", True), ("g(x)=x^2-3", "y=x^2-3", True),
    ("f(x) = -2x + 5", "x=-2 x+5", False),
    # a \\frac without its command in a gold; a line break between two answers
    ("\\frac{8}{5}\\pi", "{8}{5} \\pi", True), ("-9.8", "-4.9\n-4.9", False),
])
def test_free_form_matching(predicted, gold, match):
    assert answers_match(predicted, gold) is match
    assert answers_match(gold, predicted) is match  # the rule is symmetric


def test_normalisation_removes_latex_wrappers_and_spaces():
    assert normalize_answer("$\\left( \\dfrac{1}{2}, 3 \\right)$.") == "(\\frac{1}{2},3)"
    assert normalize_answer("\\text{Domain: } x \\geq 0") == "domain:x\\geq0"


def test_free_form_reads_the_span_first_then_the_last_number():
    assert read_free_form("... so r = 2 and the area is 4π.\n<answer>4\\pi</answer>") == "4\\pi"
    assert read_free_form("r = 2 so the area is 12.57 square units") == "12.57"
    assert read_free_form("no numbers at all") is None


@pytest.mark.parametrize(("output", "number"), [
    ("So the area is approximately 113.1 cm^2", "113.1"),
    ("The volume is 36 cm^{3}", "36"),
    ("a root of x^2 = 9 is 3 and x_1 = 5", "5"),
    ("the scale is 10^{-3}", "10"),
    ("H2O", None),
])
def test_the_last_number_is_never_an_exponent_a_subscript_or_in_a_word(output, number):
    assert read_free_form(output) == number


@pytest.mark.parametrize(("text", "value"), [
    ("2\\sqrt{3}", 2 * 3 ** 0.5), ("\\frac{4}{3}\\pi", 4 / 3 * 3.141592653589793),
    ("-\\frac12", -0.5), ("3(2+1)", 9.0), ("2^{10}", 1024.0), ("-2^2", -4.0),
    ("1,250.5", 1250.5), ("√2/2", 2 ** 0.5 / 2),
    ("2x", None), ("1/0", None), ("\\sqrt{-1}", None), ("9^9^9", None), ("(1", None),
    ("1,25", None), ("", None), ("1" * 500, None),
])
def test_latex_values(text, value):
    result = numeric_value(text)
    assert result == (pytest.approx(value) if value is not None else None)


def garbage(seed: int) -> str:
    rng = random.Random(seed)
    alphabet = string.printable + "√π°×÷−<>{}\\$" + "".join(
        ["<answer>", "</answer>", "\\boxed{", "\\frac{", "<think>", "</think>"])
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))


@pytest.mark.parametrize("seed", range(200))
def test_no_reply_makes_the_readers_raise(seed):
    output = garbage(seed)
    final_answer_span(output)
    read_choice(output, OPTIONS)
    answer = read_free_form(output)
    if answer is not None:
        answers_match(answer, "2\\sqrt{3}")
    judge_open(output, ("1,250", "x"))

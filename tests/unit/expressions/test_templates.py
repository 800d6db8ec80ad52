"""`{{ path }}` templates: substitution only, with JSON types kept for a whole placeholder."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flowbus.expressions import Template, TemplateError

SCOPE: dict[str, Any] = {
    "input": {
        "count": 3,
        "price": 9.5,
        "paid": True,
        "order": {"id": "o-1", "tags": ["a", "b"]},
        "items": [{"sku": "A-1"}, {"sku": "B-2"}],
        "nothing": None,
        "name": "Ada",
    },
    "steps": {"check-amount": {"result": False}},
}


def render(source: Any) -> Any:
    return Template(source).render(SCOPE)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ input.count }}", 3),
        ("{{ input.price }}", 9.5),
        ("{{ input.paid }}", True),
        ("{{ input.order }}", {"id": "o-1", "tags": ["a", "b"]}),
        ("{{ input.order.tags }}", ["a", "b"]),
        ("{{ input.nothing }}", None),
    ],
    ids=["int", "float", "bool", "object", "list", "null"],
)
def test_whole_placeholder_keeps_the_json_type(source: str, expected: Any) -> None:
    assert render(source) == expected


def test_whole_placeholder_needs_no_spaces() -> None:
    assert render("{{input.count}}") == 3


def test_placeholder_in_text_renders_numbers_and_booleans_as_text() -> None:
    assert render("{{ input.count }} at {{ input.price }}, paid={{ input.paid }}") == (
        "3 at 9.5, paid=true"
    )


def test_placeholder_in_text_renders_objects_and_lists_as_json() -> None:
    assert render("order={{ input.order }}") == 'order={"id":"o-1","tags":["a","b"]}'


def test_placeholder_in_text_renders_null_as_empty() -> None:
    assert render("[{{ input.nothing }}]") == "[]"


def test_two_adjacent_placeholders_render_as_text() -> None:
    assert render("{{ input.count }}{{ input.count }}") == "33"


def test_placeholder_with_surrounding_spaces_renders_as_text() -> None:
    assert render(" {{ input.count }}") == " 3"


def test_list_index_selects_an_element() -> None:
    assert render("{{ input.items[1].sku }}") == "B-2"


def test_index_past_the_end_is_null() -> None:
    assert render("{{ input.items[5].sku }}") is None


@pytest.mark.parametrize(
    "source",
    ["{{ input.missing }}", "{{ input.missing.deeper }}", "{{ input.name.first }}", "{{ x }}"],
)
def test_missing_path_is_null(source: str) -> None:
    assert render(source) is None


def test_missing_path_in_text_is_empty() -> None:
    assert render("hello {{ input.missing }}!") == "hello !"


def test_step_ids_with_hyphens_are_paths() -> None:
    assert render("{{ steps.check-amount.result }}") is False


def test_nested_structures_render_every_string() -> None:
    source = {
        "order": {"id": "{{ input.order.id }}", "first": "{{ input.items[0] }}"},
        "lines": ["{{ input.count }}", "n={{ input.count }}", 7, None],
        "fixed": True,
    }

    assert render(source) == {
        "order": {"id": "o-1", "first": {"sku": "A-1"}},
        "lines": [3, "n=3", 7, None],
        "fixed": True,
    }


def test_text_without_placeholders_is_constant() -> None:
    template = Template("just text")

    assert template.is_constant
    assert template.render({}) == "just text"


def test_template_keeps_its_source() -> None:
    source = {"a": "{{ input.count }}"}

    assert Template(source).source is source


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("{{ }}", "empty placeholder"),
        ("{{ input..count }}", "bad path 'input..count'"),
        ("{{ input.items[-1] }}", "bad path 'input.items[-1]'"),
        ("{{ [0] }}", "bad path '[0]'"),
        ("{{ input count }}", "bad path 'input count'"),
        ("{{ input.count", "unclosed placeholder"),
    ],
)
def test_malformed_placeholder_is_refused(source: str, message: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(message)):
        Template(source)


def test_error_names_the_location_in_an_object() -> None:
    with pytest.raises(TemplateError, match=r"^data\.lines\[1\]: bad path 'input\.\.x'"):
        Template({"data": {"lines": ["ok", "{{ input..x }}"]}})


def test_error_names_the_location_of_an_unclosed_placeholder() -> None:
    with pytest.raises(TemplateError, match=r"^key: unclosed placeholder"):
        Template({"key": "{{ input.count"})


def test_error_starts_with_the_location_it_is_given() -> None:
    with pytest.raises(TemplateError, match=r"^config: empty placeholder"):
        Template("{{ }}", where="config")


def test_unclosed_placeholder_after_a_complete_one_is_refused() -> None:
    with pytest.raises(TemplateError, match="unclosed placeholder"):
        Template("{{ input.count }} and {{ input.price")

"""Arrays in the event, EventBridge style."""

from flowbus.matching.patterns import compile_pattern


def test_scalar_array_matches_if_any_element_matches() -> None:
    pattern = compile_pattern({"data": {"tags": ["vip"]}})
    assert pattern.matches({"data": {"tags": ["new", "vip"]}})
    assert not pattern.matches({"data": {"tags": ["new"]}})


def test_nested_scalar_arrays_are_flattened() -> None:
    pattern = compile_pattern({"data": {"tags": ["vip"]}})
    assert pattern.matches({"data": {"tags": [["new"], ["vip"]]}})


def test_empty_array_matches_no_value() -> None:
    assert not compile_pattern({"data": {"tags": ["vip"]}}).matches({"data": {"tags": []}})


def test_object_pattern_matches_any_element_of_an_array_of_objects() -> None:
    pattern = compile_pattern({"data": {"items": {"sku": ["A"]}}})
    assert pattern.matches({"data": {"items": [{"sku": "B"}, {"sku": "A"}]}})
    assert not pattern.matches({"data": {"items": [{"sku": "B"}, {"sku": "C"}]}})


def test_fields_must_match_within_the_same_array_element() -> None:
    pattern = compile_pattern({"data": {"items": {"sku": ["A"], "qty": [2]}}})
    assert pattern.matches({"data": {"items": [{"sku": "B", "qty": 2}, {"sku": "A", "qty": 2}]}})
    assert not pattern.matches(
        {"data": {"items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 2}]}}
    )


def test_arrays_of_arrays_of_objects_are_flattened() -> None:
    pattern = compile_pattern({"data": {"items": {"sku": ["A"]}}})
    assert pattern.matches({"data": {"items": [[{"sku": "B"}], [{"sku": "A"}]]}})


def test_array_of_objects_at_the_top_of_data() -> None:
    pattern = compile_pattern({"data": {"sku": ["A"]}})
    assert pattern.matches({"data": [{"sku": "B"}, {"sku": "A"}]})


def test_scalars_inside_an_array_of_objects_are_ignored() -> None:
    pattern = compile_pattern({"data": {"items": {"sku": [{"exists": False}]}}})
    assert not pattern.matches({"data": {"items": [{"sku": "A"}, "loose"]}})


def test_array_without_objects_leaves_nested_fields_missing() -> None:
    pattern = compile_pattern({"data": {"items": {"sku": [{"exists": False}]}}})
    assert pattern.matches({"data": {"items": ["A", "B"]}})


def test_exists_false_holds_if_some_element_lacks_the_field() -> None:
    pattern = compile_pattern({"data": {"items": {"discount": [{"exists": False}]}}})
    assert pattern.matches({"data": {"items": [{"discount": 5}, {"sku": "B"}]}})
    assert not pattern.matches({"data": {"items": [{"discount": 5}]}})


def test_numeric_inside_array_of_objects() -> None:
    pattern = compile_pattern({"data": {"items": {"price": [{"numeric": [">", 100]}]}}})
    assert pattern.matches({"data": {"items": [{"price": 10}, {"price": 150.5}]}})
    assert not pattern.matches({"data": {"items": [{"price": 10}, {"price": "150"}]}})

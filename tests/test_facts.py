"""Cases, facts with provenance, and the layered blackboard."""

from __future__ import annotations

from types import MappingProxyType

import pydantic
import pytest

from hybrid_ai import Blackboard, Case, InputError, NewFact, Provenance

# --- Case ------------------------------------------------------------------------------------


def test_case_defaults() -> None:
    case = Case()
    assert case.text == ""
    assert case.fields == {}
    assert case.budget is None
    assert len(case.id) == 12
    assert Case().id != case.id


def test_case_is_frozen_and_strict() -> None:
    case = Case(text="hi")
    with pytest.raises(pydantic.ValidationError):
        case.text = "changed"  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        Case(text="x", colour="red")  # type: ignore[call-arg]
    with pytest.raises(pydantic.ValidationError):
        Case(id="")
    with pytest.raises(pydantic.ValidationError):
        Case(budget=-1)


def test_coerce_keeps_a_case() -> None:
    case = Case(text="hello")
    assert Case.coerce(case) is case


def test_coerce_str() -> None:
    case = Case.coerce("my card was stolen")
    assert case.text == "my card was stolen"
    assert case.fields == {}


def test_coerce_mapping() -> None:
    case = Case.coerce({"id": "c1", "text": "t", "fields": {"amount": 3}, "budget": 2})
    assert (case.id, case.text, case.fields, case.budget) == ("c1", "t", {"amount": 3}, 2.0)


def test_coerce_read_only_mapping() -> None:
    case = Case.coerce(MappingProxyType({"text": "t"}))
    assert case.text == "t"


@pytest.mark.parametrize("value", [42, None, ["text"], 1.5, b"bytes"])
def test_coerce_bad_type_names_the_fix(value: object) -> None:
    with pytest.raises(InputError) as info:
        Case.coerce(value, where="record 7")  # type: ignore[arg-type]
    message = str(info.value)
    assert message.startswith("record 7:")
    assert type(value).__name__ in message
    assert '{"text": "...", "fields": {...}}' in message


def test_coerce_bad_mapping_lists_valid_keys() -> None:
    with pytest.raises(InputError) as info:
        Case.coerce({"txt": "typo"})
    message = str(info.value)
    assert message.startswith("input: invalid case")
    assert "txt" in message
    assert "valid keys: id, text, fields, budget" in message


def test_coerce_bad_field_value() -> None:
    with pytest.raises(InputError, match="fields"):
        Case.coerce({"text": "t", "fields": "not a mapping"})
    with pytest.raises(InputError, match="budget"):
        Case.coerce({"budget": -3})


def test_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Case.coerce(3)  # type: ignore[arg-type]


# --- Blackboard --------------------------------------------------------------------------------


def test_blackboard_starts_with_the_input_fact() -> None:
    case = Case(id="c1", text="hello", fields={"n": 1})
    board = Blackboard(case)
    root = board.last("input")
    assert root is not None
    assert root.id == 0
    assert dict(root.data) == {"id": "c1", "text": "hello", "fields": {"n": 1}}
    assert root.provenance == Provenance(stage="input", source="case")
    assert len(board) == 1
    assert board.kinds() == {"input"}
    assert board.case is case


def test_ids_increase_and_provenance_is_stamped() -> None:
    board = Blackboard(Case(text="t"))
    root = board.last("input")
    assert root is not None
    first = board.add(NewFact("intent", {"label": "a"}, confidence=0.8, derived_from=[root]),
                      stage="classify", source="tfidf")
    second = board.add(
        NewFact("decision", {"label": "b"}, derived_from=[root, first], source="rule:r1",
                detail={"rule": "r1"}),
        stage="rules",
    )
    third = board.add(NewFact("flag", {"name": "x"}), stage="flagger")
    assert [first.id, second.id, third.id] == [1, 2, 3]
    assert first.provenance == Provenance("classify", "tfidf", (0,), {})
    assert first.confidence == 0.8
    # the draft's own source wins over the stage's component
    assert second.provenance.source == "rule:r1"
    assert second.provenance.inputs == (0, 1)
    assert second.provenance.detail == {"rule": "r1"}
    # no source anywhere: the stage id
    assert third.provenance.source == "flagger"
    assert third.get("name") == "x"
    assert third.get("missing", "dflt") == "dflt"


def test_view_queries() -> None:
    board = Blackboard(Case())
    a1 = board.add(NewFact("a", {"n": 1}), stage="s")
    board.add(NewFact("b", {"n": 2}), stage="s")
    a2 = board.add(NewFact("a", {"n": 3}), stage="s")
    assert board.of("a") == [a1, a2]
    assert board.last("a") is a2
    assert board.last("nothing") is None
    assert board.of("nothing") == []
    assert [f.id for f in board.all()] == [0, 1, 2, 3]
    assert [f.id for f in board] == [0, 1, 2, 3]
    assert board.kinds() == {"input", "a", "b"}
    assert len(board) == 4


def test_child_layers_share_ids_and_keep_their_writes() -> None:
    board = Blackboard(Case(text="t"))
    left, right = board.child(), board.child()
    l1 = left.add(NewFact("x", {"side": "left"}), stage="l")
    r1 = right.add(NewFact("x", {"side": "right"}), stage="r")
    l2 = left.add(NewFact("y", {}), stage="l")
    # one id sequence across layers, so merged facts never collide
    assert [l1.id, r1.id, l2.id] == [1, 2, 3]
    # a layer sees its parent and its own writes, not its siblings'
    assert left.last("input") is board.last("input")
    assert left.of("x") == [l1]
    assert right.of("x") == [r1]
    assert left.own() == [l1, l2]
    assert len(left) == 3
    assert left.kinds() == {"input", "x", "y"}
    # the parent sees nothing until it merges
    assert board.of("x") == []
    board.merge(right.own())
    board.merge(left.own()[:1])
    assert board.of("x") == [r1, l1]
    assert board.of("y") == []
    assert [f.id for f in board.all()] == [0, 2, 1]
    # later writes on the parent continue the shared sequence
    assert board.add(NewFact("z", {}), stage="p").id == 4


def test_nested_child_layers() -> None:
    board = Blackboard(Case())
    child = board.child()
    grandchild = child.child()
    c = child.add(NewFact("c", {}), stage="s")
    g = grandchild.add(NewFact("g", {}), stage="s")
    assert grandchild.last("c") is c
    assert grandchild.last("input") is board.last("input")
    assert [f.id for f in grandchild.all()] == [0, 1, 2]
    assert child.of("g") == []
    child.merge(grandchild.own())
    assert child.of("g") == [g]
    assert board.of("g") == []


def test_facts_are_immutable() -> None:
    board = Blackboard(Case())
    fact = board.add(NewFact("a", {"n": 1}), stage="s")
    with pytest.raises(AttributeError):
        fact.kind = "b"  # type: ignore[misc]

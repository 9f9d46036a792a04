"""The one registry type: names are unique, unknown names are named, entries can be taken out again."""
import pytest

from faceprompt.registry import DuplicateNameError, Registry


def test_a_taken_name_is_refused_until_removed():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(DuplicateNameError, match="widget 'a' is already registered"):
        reg.add("a", 2)
    assert reg.remove("a") == 1 and "a" not in reg
    reg.add("a", 3)
    assert reg["a"] == 3 and reg.names() == ["a"]


def test_unknown_names_are_named_with_the_known_ones():
    reg: Registry[int] = Registry("widget")
    reg.add("b", 1)
    with pytest.raises(ValueError, match="unknown widget 'x'; known: b"):
        reg.remove("x")
    with pytest.raises(ValueError, match="non-empty name"):
        reg.add("", 0)

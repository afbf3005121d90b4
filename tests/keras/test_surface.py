"""Keras 3's surface, measured (tests/keras/surface.py): no name goes missing and no signature drifts
from Keras' beyond what ``surface_known.py`` lists with a reason, and a listed entry that comes right
leaves the list, so the numbers only go up."""
import inspect

import pytest

from . import surface, surface_known

keras = pytest.importorskip("keras", reason="Keras 3 is a dev dependency (make test installs it)")


@pytest.fixture(scope="module")
def entries():
    return surface.measure()


def test_no_keras_name_goes_missing(entries):
    missing = {e.name for e in entries if not e.exists}
    assert not missing - set(surface_known.MISSING), "missing from mlp_gpu (Keras has them)"
    assert not set(surface_known.MISSING) - missing, "now present: remove from surface_known.MISSING"


def test_no_signature_drifts_from_keras(entries):
    different = {e.name: e.difference for e in entries if e.compared and not e.match}
    new = {k: v for k, v in different.items() if k not in surface_known.DIFFERENT}
    assert not new, f"signatures that differ from Keras 3's: {new}"
    assert not set(surface_known.DIFFERENT) - set(different), "now matching: remove from surface_known.DIFFERENT"


def test_counts_never_fall(entries):
    s = surface.summary(entries)
    assert s["exist"] >= surface_known.FLOOR["exist"] and s["match"] >= surface_known.FLOOR["match"], s


def test_every_listed_difference_has_a_reason():
    for name, reason in {**surface_known.MISSING, **surface_known.DIFFERENT}.items():
        assert isinstance(reason, str) and len(reason) > 10, name


def test_the_comparer_sees_names_kinds_order_and_defaults():
    def keras_like(a, b=1, *, c="x", **kw): ...
    def same(a, b=1, *, c="x", **kw): ...
    def renamed(a, bb=1, *, c="x", **kw): ...
    def reordered(b=1, a=None, *, c="x", **kw): ...
    def default(a, b=2, *, c="x", **kw): ...
    def kind(a, b=1, c="x", **kw): ...
    def int_for_bool(a, b=True, *, c="x", **kw): ...
    theirs = surface.parameters(keras_like)
    assert surface.differences(surface.parameters(same), theirs) == ""
    for other in (renamed, reordered, default, kind):
        assert surface.differences(surface.parameters(other), theirs), other.__name__
    assert surface.differences(surface.parameters(int_for_bool), theirs)  # True == 1, yet not Keras' default

    class WithInit:
        def __init__(self, a, b=1, *, c="x", **kw): ...
    assert surface.parameters(WithInit) == theirs
    assert inspect.isclass(WithInit)

"""The suite itself: what ``pytest -n`` (``make test``) needs of the collected tests."""

from __future__ import annotations

from collections import Counter

import pytest


def test_every_collected_test_has_a_node_id_of_its_own(request: pytest.FixtureRequest) -> None:
    """pytest-xdist schedules by node id: two items with one id ran once between them."""
    counts = Counter(item.nodeid for item in request.session.items)
    assert [nodeid for nodeid, n in counts.items() if n > 1] == []

"""One FreshBooks emulator served on a port for the module (harness.py)."""

from collections.abc import Iterator

import pytest

from fieldhub.providers.freshbooks.emulator import FreshBooksEmulator
from tests.providers.freshbooks import harness


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[FreshBooksEmulator, int]]:
    yield from harness.served()

"""Two administrators demoting each other at the same moment: one of them stays."""

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection

from accounts import services
from accounts.selectors import active_administrators
from calmail.common.roles import ADMINISTRATOR, VIEWER
from tests.factories import UserFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks (SELECT … FOR UPDATE) need PostgreSQL"
)


@pytest.mark.django_db(transaction=True)
def test_concurrent_demotions_never_leave_no_administrator():
    for _round in range(5):
        first = UserFactory(username=f"a{_round}", roles=[ADMINISTRATOR])
        second = UserFactory(username=f"b{_round}", roles=[ADMINISTRATOR])
        barrier = threading.Barrier(2)
        refused, errors = [], []

        def demote(user, barrier=barrier, refused=refused, errors=errors):
            try:
                barrier.wait(timeout=10)
                services.user_update(user=user, username=user.username, role=VIEWER, language="de")
            except ValidationError as exc:
                refused.append(exc.code)
            except Exception as exc:  # collected and asserted below
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=demote, args=(user,)) for user in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert refused == ["last_administrator"]
        assert active_administrators().count() == 1
        # Back to no administrator for the next round (not through the service).
        for user in (first, second):
            user.groups.clear()

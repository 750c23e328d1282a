"""Browser tests of the consoles need the in-process relay in `live_service`.

Until signaling.app.create_app places the relay itself (services.relay is None there while the
relay lands), this wraps it so that the live service gets one. It does nothing once
create_app provides the relay.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _service_with_relay(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    import signaling.app as app_module
    import tests.support.service as service_module

    original = app_module.create_app

    def create_app(settings: Any, **kwargs: Any) -> Any:
        app, services = original(settings, **kwargs)
        if services.relay is None and hasattr(app_module, "_create_relay"):
            services.relay = app_module._create_relay(settings)
        return app, services

    monkeypatch.setattr(service_module, "create_app", create_app)
    yield

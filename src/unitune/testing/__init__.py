"""What you need to test code that uses unitune, without a vendor and without the network.

    from unitune.testing import FakeProvider, FakeClock, override_provider

    def test_my_pipeline(unitune_fake):            # the pytest fixture (installed with unitune)
        unitune_fake.fail_next_job("out of memory")
        with pytest.raises(JobFailedError):
            my_app.train_and_wait()                  # calls FineTuneClient.from_config() inside

`unitune_fake` routes every provider lookup to one `FakeProvider` driven by a `FakeClock` (waits
take no time) and points the ledger at a temporary directory. Outside pytest, do the same with
`override_provider(FakeProvider(clock=FakeClock()))`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unitune._lazy import loader

if TYPE_CHECKING:
    from unitune._clock import Clock, FakeClock, SystemClock
    from unitune.providers.fake import FakeCall, FakeProvider, FakeSettings
    from unitune.providers.registry import override_provider

# Loaded on first use: the pytest plugin lives in this package and must import nothing heavy.
_EXPORTS = {
    "Clock": "unitune._clock",
    "FakeClock": "unitune._clock",
    "SystemClock": "unitune._clock",
    "FakeCall": "unitune.providers.fake",
    "FakeProvider": "unitune.providers.fake",
    "FakeSettings": "unitune.providers.fake",
    "override_provider": "unitune.providers.registry",
}


_load = loader(__name__, _EXPORTS, globals())


def __getattr__(name: str) -> Any:
    return _load(name)


__all__ = [
    "Clock",
    "FakeCall",
    "FakeClock",
    "FakeProvider",
    "FakeSettings",
    "SystemClock",
    "override_provider",
]

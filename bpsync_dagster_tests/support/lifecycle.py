"""A test service used as a context manager: started on entry, stopped on exit."""

from typing import Self


class StartedService:
    """Subclasses define `start` and `stop`; `with Service(...) as service:` runs it for the block."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

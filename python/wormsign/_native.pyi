"""Type stubs of the native module; the documented API is `wormsign` (``__init__.py``)."""

from collections.abc import Callable, Mapping
from typing import Any

class WormsignError(Exception): ...
class InputError(WormsignError): ...

def analyze_paths(
    paths: list[str],
    out: str | None,
    options: Mapping[str, Any],
    detect: Mapping[str, Any] | None,
    progress: Callable[[int, int, int], Any] | None = None,
) -> dict[str, Any]: ...
def detect_stored(dir: str, out: str | None, options: Mapping[str, Any]) -> dict[str, Any]: ...
def detect_in_memory(
    tables: Mapping[str, Any], out: str | None, options: Mapping[str, Any]
) -> dict[str, Any]: ...
def synth(
    scenario: str,
    seed: int,
    out: str,
    scale: float,
    capture_start: int,
    netflow: str | None = None,
) -> dict[str, Any]: ...
def bench_rules(
    paths: list[str],
    labels: str,
    rules: list[str],
    sweeps: list[str],
    threads: int | None = None,
) -> Any: ...
def rules_toml() -> str: ...

# Detection in parts, for `wormsign.spark`.
def flow_files(dirs: list[str]) -> list[str]: ...
def detection_flow_columns() -> list[str]: ...

class PartRunner:
    def __init__(
        self, parts: int, dirs: list[str], options: Mapping[str, Any], tagging: bool = False
    ) -> None: ...
    def tag(self, batch: Any) -> Any: ...
    def push(self, batch: Any) -> None: ...
    def finish(self) -> list[tuple[int, bytes]]: ...

def merge_parts(
    found: list[bytes],
    dirs: list[str],
    options: Mapping[str, Any],
    parts: int,
    flows: int,
    out: str | None = None,
) -> dict[str, Any]: ...

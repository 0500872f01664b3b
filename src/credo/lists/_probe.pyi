from typing import Any

def probe(
    subjects: list[str], table: Any, overlay_filter: Any | None, /
) -> tuple[list[int], list[int], list[int]] | None: ...

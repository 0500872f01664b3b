from typing import Any

def scan(
    texts: list[str], region_row: Any, year_rows: Any, rows: int, today: int, /
) -> list[str | None] | None: ...

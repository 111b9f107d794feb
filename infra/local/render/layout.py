"""Width-aware layout for rich: rows that become a table only when every id fits whole.

`Rows` draws a table when its ids fit whole in their columns, dropping its least useful
columns first (`Column.drop`); otherwise each row becomes a block of `field value`
pairs (`Fields`), wrapped only between fields. Nothing here knows about runs; the views
of infra/local/render/views.py build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text


class Fields:
    """Fields separated by two spaces, wrapped only between fields: none is ever broken
    (a field wider than the width gets a line of its own, which the terminal wraps)."""

    def __init__(self, *fields: Text | str, indent: int = 0) -> None:
        self.fields = [Text(f) if isinstance(f, str) else f for f in fields if str(f)]
        self.indent = indent

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        width = options.max_width
        line = Text(" " * self.indent, no_wrap=True, overflow="ignore")
        filled = False
        for field in self.fields:
            if filled and line.cell_len + 2 + field.cell_len > width:
                yield line
                line = Text(" " * self.indent, no_wrap=True, overflow="ignore")
                filled = False
            if filled:
                line.append("  ")
            line.append_text(field)
            filled = True
        yield line

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widest = max((field.cell_len for field in self.fields), default=0)
        total = sum(field.cell_len for field in self.fields) + 2 * max(len(self.fields) - 1, 0)
        return Measurement(self.indent + widest, self.indent + total)


@dataclass(frozen=True)
class Column:
    header: str
    # A whole column is never wrapped or cut (ids, statuses, times); the others fold.
    whole: bool = True
    # Dropped, in the order of `drop`, before the table gives way to blocks.
    drop: int = 0
    # The narrowest a folding column may become.
    fold_min: int = 20
    # In the block layout, shown bare on the block's first line (the row's identity).
    lead: bool = False


class Rows:
    """Rows under headers: a table when its ids fit whole, else one block per row."""

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Sequence[Text]],
        *,
        boxed: bool,
        sub_rows: Sequence[bool] | None = None,
    ) -> None:
        self.columns = list(columns)
        self.rows = [list(row) for row in rows]
        self.boxed = boxed
        # A sub-row (a retried step's failed attempt) belongs to the row above it.
        self.sub_rows = list(sub_rows) if sub_rows is not None else [False] * len(self.rows)

    def _natural(self, index: int) -> int:
        column = self.columns[index]
        return max([cell_len(column.header)] + [row[index].cell_len for row in self.rows])

    def _table(self, keep: list[int], widths: dict[int, int] | None, *, rows: bool = True) -> Table:
        if self.boxed:
            table = Table(header_style="bold", box=box.HEAVY_HEAD)
        else:
            table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        for index in keep:
            column = self.columns[index]
            table.add_column(
                column.header,
                no_wrap=column.whole,
                overflow="crop" if column.whole else "fold",
                width=widths.get(index) if widths else None,
            )
        for row in self.rows if rows else ():
            table.add_row(*(row[index] for index in keep))
        return table

    def _overhead(self, console: Console, options: ConsoleOptions, keep: list[int]) -> int:
        """Borders and padding of a table with these columns."""
        probe = self._table(keep, dict.fromkeys(keep, 1), rows=False)
        return Measurement.get(console, options.update_width(10_000), probe).maximum - len(keep)

    def layout(self, console: Console, options: ConsoleOptions) -> Table | None:
        """The table for this width, or None when its ids cannot all fit whole."""
        width = options.max_width
        keep = list(range(len(self.columns)))
        droppable = sorted(
            (i for i, c in enumerate(self.columns) if c.drop), key=lambda i: self.columns[i].drop
        )
        while True:
            natural = {i: self._natural(i) for i in keep}
            overhead = self._overhead(console, options, keep)
            whole = sum(natural[i] for i in keep if self.columns[i].whole)
            folding = [i for i in keep if not self.columns[i].whole]
            narrowest = sum(min(natural[i], self.columns[i].fold_min) for i in folding)
            if whole + narrowest + overhead <= width:
                room = width - whole - overhead
                widths = {i: natural[i] for i in keep}
                if sum(natural[i] for i in folding) > room:
                    # Share the room between the folding columns, none over its need.
                    share = room // max(len(folding), 1)
                    for i in folding:
                        widths[i] = min(natural[i], max(share, 1))
                    spare = room - sum(widths[i] for i in folding)
                    for i in folding:
                        extra = min(spare, natural[i] - widths[i])
                        widths[i] += extra
                        spare -= extra
                return self._table(keep, widths)
            if not droppable:
                return None
            keep.remove(droppable.pop(0))

    def blocks(self) -> Group:
        lines: list[RenderableType] = []
        for row, sub in zip(self.rows, self.sub_rows, strict=True):
            pairs = list(zip(self.columns, row, strict=True))
            lead = [cell for column, cell in pairs if column.lead and cell.plain.strip()]
            rest = [
                Text.assemble((column.header, "bold"), " ", cell)
                for column, cell in pairs
                if not column.lead and cell.plain.strip()
            ]
            lines.append(Fields(*lead, indent=2 if sub else 0))
            if rest:
                lines.append(Fields(*rest, indent=4 if sub else 2))
        return Group(*lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        table = self.layout(console, options)
        yield table if table is not None else self.blocks()

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        keep = list(range(len(self.columns)))
        natural = sum(self._natural(i) for i in keep) + self._overhead(console, options, keep)
        longest_id = max(
            (
                row[i].cell_len
                for row in self.rows
                for i, column in enumerate(self.columns)
                if column.whole
            ),
            default=1,
        )
        return Measurement(min(longest_id, natural), natural)

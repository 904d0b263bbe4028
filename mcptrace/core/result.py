"""Query results that convert to pandas, polars or Arrow."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa

if TYPE_CHECKING:  # pragma: no cover
    import pandas
    import polars


class Result:
    """A materialised query result.

    ``df()`` gives a pandas DataFrame, ``pl()`` a polars DataFrame, ``arrow()`` the
    underlying ``pyarrow.Table``. TIMESTAMPTZ columns come out as UTC-aware timestamps
    (microseconds); ``*_ms`` columns are float milliseconds.
    """

    def __init__(self, table: pa.Table) -> None:
        self._table = table

    def arrow(self) -> pa.Table:
        return self._table

    def df(self) -> "pandas.DataFrame":
        return self._table.to_pandas()

    def pl(self) -> "polars.DataFrame":
        import polars as pl

        return pl.from_arrow(self._table)

    @property
    def columns(self) -> list[str]:
        return self._table.column_names

    def select(self, *columns: str) -> "Result":
        """These columns only, in this order."""
        return Result(self._table.select(list(columns)))

    def rows(self) -> list[tuple]:
        """Rows as Python tuples (for small results)."""
        cols = [c.to_pylist() for c in self._table.columns]
        return list(zip(*cols))

    def __len__(self) -> int:
        return self._table.num_rows

    def __repr__(self) -> str:
        return f"<mcptrace.Result {self._table.num_rows} rows: {', '.join(self.columns)}>"

    def _repr_html_(self) -> str:
        return self.df().head(50)._repr_html_()


def query(con, sql: str, params=None) -> Result:
    """Run ``sql`` on the DuckDB connection ``con`` with ``params`` (``?`` or ``$name``) and
    materialise it as a :class:`Result`."""
    return Result(con.sql(sql, params=params).to_arrow_table())

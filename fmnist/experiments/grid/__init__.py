"""The study's Table 1: every spec x augmentation x output layer, each cell a normal run in its own process.

cells.py (what a cell is and how it runs), pool.py (the cells of this machine), table.py (the table), shared.py (the
cells shared with other machines through a database).
"""
from .cells import COLUMNS, Cell, make_cells
from .pool import KEEP, GridInterrupted, run_cells
from .shared import open_shared, run_shared
from .table import write_table

__all__ = ["COLUMNS", "KEEP", "Cell", "GridInterrupted", "make_cells", "open_shared", "run_cells", "run_shared",
           "write_table"]

"""The ``aescot`` command: a thin layer over the library."""

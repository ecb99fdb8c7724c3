"""The ``rnnkit`` command line: a thin shell over the library."""

"""The report layer: figures drawn from given data, tables, files and progress printers.

It imports the core and :mod:`flatref.experiments` (never the reverse), runs nothing
(the experiments layer does; the figures only evaluate the closed forms they draw, such as
a recovery error at each given limit), and is the only layer that imports matplotlib:

- :mod:`~flatref.report.files`: the Agg backend, byte-stable PNGs, CSVs;
- :mod:`~flatref.report.figures`: one function per figure, from the recipes' data;
- :mod:`~flatref.report.tables`: the markdown of Table 1 in numbers;
- :mod:`~flatref.report.progress`: printers passed to the core as callbacks;
- :mod:`~flatref.report.jobs`: the commands' jobs (every figure; the rates), which compute and write;
- :mod:`~flatref.report.digits`: the digits experiment's CSV, figure and job (``escape``).
"""

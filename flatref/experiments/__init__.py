"""The experiments layer: named setups, the recipes of the demo and the figures, and the rate sweeps.

It sits above the core (it imports :mod:`flatref`, never the reverse) and below the
report layer (:mod:`flatref.report`), which draws and writes what it computes:

- :mod:`~flatref.experiments.registry`: one table of named problem setups;
- :mod:`~flatref.experiments.recipes`: the escape recipe, the demo cases and the figures' runs;
- :mod:`~flatref.experiments.passages`: first-passage times of one run (Table 1 measured);
- :mod:`~flatref.experiments.sweeps`: the grid of runs, run through joblib with a resumable cache;
- :mod:`~flatref.experiments.stats`: cells, power-law fits and the RS/SA speed-up;
- :mod:`~flatref.experiments.digits`: the paper's Section 5 at CPU scale, a bad minimizer of a tanh network
  on handwritten digits and the methods' escape from it.
"""

"""Command-line interface (typer). Only this package turns errors into exit codes.

Every command speaks one option vocabulary:

=============================  ==============================================================
option                         meaning
=============================  ==============================================================
``-o/--out PATH``              where results are written: a folder (``map``, ``facies
                               train``/``predict``, ``velocity``, ``demo``) or a file
                               (``facies clean``, ``massbalance indicators``). ``map train``:
                               replaces the config's ``[output] dir``.
``--overwrite``                replace existing outputs; without it a command that would
                               replace a file refuses before any work.
``--json``                     print the result as one JSON object instead of a table.
``--bands``                    band names of the input rasters; where a command can read them
                               from the files' band descriptions (``map baseline``), they
                               are optional, and descriptions that do not name the bands are an
                               error naming the file, never a guess. ``facies predict`` warns
                               (naming the file) when descriptions differ from the model's
                               bands.
``--min-area-km2 X``           drop outline polygons below ``X`` km² (default 0.01 km², the
                               RGI's minimum glacier size; ``map predict``, ``map baseline``).
                               Areas are in km² everywhere; ``--min-area-px`` is the clump
                               removal in a class raster, in pixels.
``--units``                    units of the values read or written: velocity ``m/yr`` or
                               ``m/day``, mass balance ``mm`` or ``m`` w.e.
``--align``                    resample onto the first (reference) grid, explicitly; without it
                               rasters on different grids are an error.
``--template-config``          print a commented config for a training command (``map train``,
                               ``facies train``); config paths may be ``example:DATASET/FILE``.
``--resume``                   continue an interrupted training run in its run folder.
``--allow-domain-shift``       apply a model to a scene outside its training domain (logged).
``--label-table CSV``          label → facies mapping (columns ``label,facies``), the file form
                               of a ``facies train`` config's ``[labels] table``.
=============================  ==============================================================
"""

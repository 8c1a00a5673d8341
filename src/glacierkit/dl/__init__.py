"""glacierkit's deep-learning stack (needs the dl extra).

See ``docs/design/dl.md`` for the module map and the contracts between the parts: source
groups and normalisation (:mod:`~glacierkit.dl.sources`), conditioning vectors
(:mod:`~glacierkit.dl.cond`), labels and spatial splits, patch datasets, models, losses,
training and strategies, the model file, ONNX export and tiled prediction.
"""

"""How sensor channels can be z-scored (:func:`iadbench.data.media.normalise_sensor`).

Its own module, free of numpy: method parameters that name a mode are read while the DAG is
built, which imports no data readers.
"""

# train: the training runs' statistics (level shifts stay visible); sample: each run its own.
NORMALISE_MODES = ("train", "sample")

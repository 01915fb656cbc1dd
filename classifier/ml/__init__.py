"""The US-bill classifier as a plain Python library.

Nothing in this package imports Django, and the serving path
(``preprocess``, ``predictor``) never imports TensorFlow: the web process
only needs Pillow, NumPy and the LiteRT runtime.
"""

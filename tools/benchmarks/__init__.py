"""The sections of ``tools.benchmark``, grouped by topic.

``attention``: ContextualAttention, full and hole-only; ``training``: the
generator's forward and backward pass, AWA's step cost, ``Trainer.train``
and the input pipeline; ``inference``: the exported generator per image
size and HD strategy. ``common`` times variants and prints the tables.
"""

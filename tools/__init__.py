"""Command-line entry points (absl): train, evaluate, inpaint, export, benchmark.

Run as ``python -m tools.<name>`` in a checkout; the installed package holds
them as ``inpaint_tf.tools`` with console scripts (``console.py``).
"""

"""Command-line entry points (absl): train, evaluate, inpaint, export, benchmark."""

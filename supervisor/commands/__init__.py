"""The command line's commands, one module each; each has ``register(subparsers)``."""

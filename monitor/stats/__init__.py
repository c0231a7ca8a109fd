"""Pure statistics over count vectors.

Each submodule is one family of statistics and is imported directly
(``from monitor.stats.drift import psi``), so this package re-exports nothing and importing
one family never pulls in another.
"""

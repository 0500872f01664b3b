"""Synthetic populations: subjects, records and appeal intents generated from the catalogs.

:mod:`credo.simulate.population` draws them (pure: catalogs in, Arrow tables
out); :mod:`credo.simulate.load` writes them as Parquet or ingests them into
the registry through the normal ledger path.
"""

from credo.simulate.population import Params, Population, generate

__all__ = ["Params", "Population", "generate"]

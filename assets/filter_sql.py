"""filter_sql: each filter's SQL and parameters, observed as data (one partition per filter).

A filter is edited far more often than the Python around it, and an edit must make exactly that
strategy's subset stale. Dagster's code versions are per asset, not per partition, so each
filter's content is observed instead: its data version is the hash of its SQL, the SQL it refs,
the macros, the shared decisions model and its bound parameters (``strategy_hash``, the same value
the subset records as ``sql_hash``). ``strategy_job`` observes it before building a subset;
``poolsieve stale`` and the UI's "Observe" button observe it after an edit.
"""

import warnings

import dagster as dg
from poolsieve.pipelines.partitions import STRATEGIES
from poolsieve.pipelines.resources import CurationResource

from poolsieve.curate.strategies import strategy_hash
from poolsieve.sqlrunner import SqlProject

# partitioned observation is Dagster "beta"; chosen on purpose (see above), so not a warning per run
warnings.filterwarnings(
    "ignore", r".*(observable_source_asset|DataVersionsByPartition)", dg.BetaWarning
)


@dg.observable_source_asset(
    partitions_def=STRATEGIES,
    group_name="curation",
    description="A filter's SQL + parameters (dbt_like_sql/filters/<strategy>.sql and .yml).",
)
def filter_sql(curation: CurationResource) -> dg.DataVersionsByPartition:
    project = SqlProject()  # the files as they are now, not as they were at import
    profile = curation.param_profile
    return dg.DataVersionsByPartition(
        {name: strategy_hash(project, name, profile) for name in STRATEGIES.get_partition_keys()}
    )

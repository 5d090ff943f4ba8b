"""pcapip on a Dask cluster: a fleet's rotated captures read a file per task, joined into the
one table a single read gives (``pcapip.flows.parts``). Imported only when asked for
(``--scheduler``/``--workers``): Dask costs nothing otherwise."""

from pcapip.cluster.run import ClusterProgress, read_on_cluster

__all__ = ["ClusterProgress", "read_on_cluster"]

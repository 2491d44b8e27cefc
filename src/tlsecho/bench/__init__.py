"""``tlsecho bench``: a load generator whose numbers can be trusted.

Every echoed byte is checked; any wrong byte or failed exchange is counted
and makes the run fail. Latencies go into log-linear histograms (percentiles
from counts) measured with ``perf_counter_ns``, after a warm-up. Several
processes share the load so the client is less likely to be the bottleneck.
"""

from tlsecho.bench.runner import BenchConfig, BenchResult, run_bench

__all__ = ["BenchConfig", "BenchResult", "run_bench"]

"""MLPerf LoadGen's scenarios and rules as crossrt runs them: the facts the loadgen command, its
results and its tables share, in one place (no imports, so the CLI and the readers load it freely)."""

# LoadGen's scenario names, by crossrt's flag values.
SCENARIOS = {"single-stream": "SingleStream", "multi-stream": "MultiStream", "offline": "Offline", "server": "Server"}
# MLPerf's rules (loadgen/mlperf.conf, for every model): 600 s per test; MultiStream 662 queries.
MLPERF_MIN_DURATION_S, MLPERF_MIN_QUERIES = 600, {"multi-stream": 662}
# LoadGen's own minimum of queries per test (TestSettings.min_query_count), which a test runs
# however long they take; crossrt's default seconds per test.
LOADGEN_MIN_QUERIES, DEFAULT_DURATION_S = 100, 5.0
# MultiStream's samples per query: MLPerf's, unless a user.conf sets samples_per_query.
MULTI_STREAM_SAMPLES = 8
# LoadGen's early stopping judges a 99th percentile from at least this many queries (with none over
# the bound; mlperf.conf asks MultiStream for 662 for that reason): fewer, and a test is INVALID.
EARLY_STOPPING_QUERIES = 662
SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}  # mlperf.conf's, so that runs are repeatable
SEARCH_STEPS = 8  # LoadGen runs per Server search at most, after the first
MAX_BATCH = 1024  # the SUT keeps an input buffer per batch size up to --max-batch
MAX_QUERIES = 10_000_000  # a Server test LoadGen would have to schedule more queries for (in memory) is refused

"""Every Prometheus metric of one server, by Orthanc's names, on a registry of its own.

One :class:`Metrics` object per server (no global registry: two servers may run in one process).
Edges and services record into it through the hooks below; ``GET /tools/metrics-prometheus``
renders :meth:`Metrics.exposition`.

Recording hooks (all thread-safe, all no-ops while metrics are disabled)::

    observe_rest_api(ms)        orthanc_rest_api_duration_ms      HTTP edge, every request
    request_started/finished()  orthanc_rest_api_active_requests  HTTP edge
    observe_store_dicom(ms)     orthanc_store_dicom_duration_ms   ingest, any origin
    observe_storage(op, ms, n)  orthanc_storage_{create,read,remove}_duration_ms and
                                orthanc_storage_{written,read}_bytes  (MeteredStorage)
    observe_find_scp(ms)        orthanc_find_scp_duration_ms      DICOM C-FIND SCP
    observe_move_scp(ms)        orthanc_move_scp_duration_ms      DICOM C-MOVE SCP
    observe_get_scp(ms)         orthanc_get_scp_duration_ms       DICOM C-GET SCP
    add_source(fn)              values read at scrape time (counts, jobs, last change, …)

As in Orthanc, durations and ``orthanc_rest_api_active_requests`` report the *maximum over the
last 10 seconds*, and a metric appears only once something was recorded for it.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Orthanc's Prometheus content type (``MimeType_PrometheusText``).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4"

#: Orthanc's window for "max over the last 10 seconds" metrics.
WINDOW_SECONDS = 10.0


@dataclass(frozen=True)
class MetricSpec:
    name: str
    help: str
    kind: str = "gauge"  # gauge | counter (counters are exported with a "_total" suffix)


#: Every metric Obelisk may export: Orthanc's meaning in the help text.
SPECS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec("orthanc_count_patients", "The number of patients stored in DB"),
        MetricSpec("orthanc_count_studies", "The number of studies stored in DB"),
        MetricSpec("orthanc_count_series", "The number of series stored in DB"),
        MetricSpec("orthanc_count_instances", "The number of instances stored in DB"),
        MetricSpec(
            "orthanc_disk_size_mb",
            "The size [MB] of all DICOM files currently stored (possibly compressed size)",
        ),
        MetricSpec(
            "orthanc_uncompressed_size_mb",
            "The size [MB] of all DICOM files currently stored (uncompressed size)",
        ),
        MetricSpec("orthanc_jobs_pending", "The current number of jobs whose execution is pending"),
        MetricSpec("orthanc_jobs_running", "The current number of jobs currently being executed"),
        MetricSpec(
            "orthanc_jobs_completed", "The current number of jobs completed (failed or success)"
        ),
        MetricSpec("orthanc_jobs_success", "The current number of jobs that have succeeded"),
        MetricSpec("orthanc_jobs_failed", "The current number of jobs that have failed"),
        MetricSpec(
            "orthanc_rest_api_active_requests",
            "The maximum number of concurrent HTTP requests handled over the last 10 seconds",
        ),
        MetricSpec(
            "orthanc_rest_api_duration_ms",
            "The max duration [ms] over the last 10 seconds required to handle an HTTP request",
        ),
        MetricSpec(
            "orthanc_store_dicom_duration_ms",
            "The max duration [ms] over the last 10 seconds needed to store a DICOM file",
        ),
        MetricSpec(
            "orthanc_storage_create_duration_ms",
            "The max duration [ms] over the last 10 seconds to save a file to disk",
        ),
        MetricSpec(
            "orthanc_storage_read_duration_ms",
            "The max duration [ms] over the last 10 seconds to read a file from disk",
        ),
        MetricSpec(
            "orthanc_storage_remove_duration_ms",
            "The max duration [ms] over the last 10 seconds to delete a file from disk",
        ),
        MetricSpec(
            "orthanc_storage_read_bytes",
            "The total number of bytes read from disk since the server started",
        ),
        MetricSpec(
            "orthanc_storage_written_bytes",
            "The total number of bytes written to disk since the server started",
        ),
        MetricSpec(
            "orthanc_find_scp_duration_ms",
            "The max duration [ms] over the last 10 seconds of a C-Find SCP execution",
        ),
        MetricSpec(
            "orthanc_move_scp_duration_ms",
            "The max duration [ms] over the last 10 seconds of a C-Move SCP execution",
        ),
        MetricSpec(
            "orthanc_get_scp_duration_ms",
            "The max duration [ms] over the last 10 seconds of a C-Get SCP execution",
        ),
        MetricSpec(
            "orthanc_dicom_cache_count",
            "The number of DICOM files currently in the DICOM cache (Obelisk keeps none: 0)",
        ),
        MetricSpec(
            "orthanc_dicom_cache_size",
            "The size [MB] of the DICOM cache, as Orthanc 1.10.1 names it (Obelisk: 0)",
        ),
        MetricSpec("orthanc_last_change", "The current id of the last change event"),
        MetricSpec("orthanc_up_time_s", "The time [s] spent since the server started"),
        MetricSpec(
            "obelisk_group_commit_transactions",
            "Index transactions written by the group-commit thread since the server started",
            "counter",
        ),
        MetricSpec(
            "obelisk_group_commit_instances",
            "Instances indexed by the group-commit thread since the server started",
            "counter",
        ),
        MetricSpec(
            "obelisk_group_commit_batch_size",
            "The largest number of instances committed in one transaction over the last 10 seconds",
        ),
        MetricSpec("obelisk_jobs_paused", "The current number of paused jobs"),
    )
}

_STORAGE_DURATIONS = {
    "create": "orthanc_storage_create_duration_ms",
    "read": "orthanc_storage_read_duration_ms",
    "remove": "orthanc_storage_remove_duration_ms",
}

#: Reads values at scrape time (index totals, jobs, …): metric name → value.
MetricSource = Callable[[], Mapping[str, float]]


class WindowMax:
    """The largest value recorded over the last ``window`` seconds (Orthanc's MaxOver10Seconds).

    A monotonic deque: each entry is larger than every later one, so the front is the maximum
    and recording costs O(1) amortised.
    """

    def __init__(
        self, window: float = WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._window = window
        self._clock = clock
        self._entries: collections.deque[tuple[float, float]] = collections.deque()
        self._guard = threading.Lock()
        self.recorded = False

    def record(self, value: float) -> None:
        now = self._clock()
        with self._guard:
            self.recorded = True
            while self._entries and self._entries[-1][1] <= value:
                self._entries.pop()
            self._entries.append((now, value))
            self._prune(now)

    def value(self) -> float:
        """The maximum over the window; 0 when nothing was recorded in it."""
        with self._guard:
            self._prune(self._clock())
            return self._entries[0][1] if self._entries else 0.0

    def _prune(self, now: float) -> None:
        while self._entries and now - self._entries[0][0] > self._window:
            self._entries.popleft()


class Metrics:
    """The metrics of one server: recording hooks, scrape-time sources and the exposition."""

    def __init__(self, *, enabled: bool = True, clock: Callable[[], float] = time.monotonic):
        self.enabled = enabled
        self._clock = clock
        self._started = clock()
        self._windows: dict[str, WindowMax] = {}
        self._totals: dict[str, float] = {}
        self._sources: list[MetricSource] = []
        self._active_requests = 0
        self._guard = threading.Lock()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    # --- recording hooks -----------------------------------------------------------------

    def observe_max(self, name: str, value: float) -> None:
        """Records into a "max over the last 10 seconds" metric."""
        if not self.enabled:
            return
        window = self._windows.get(name)
        if window is None:
            with self._guard:
                window = self._windows.setdefault(name, WindowMax(clock=self._clock))
        window.record(value)

    def add(self, name: str, amount: float) -> None:
        """Adds to a total since the start (bytes read/written)."""
        if not self.enabled:
            return
        with self._guard:
            self._totals[name] = self._totals.get(name, 0.0) + amount

    def observe_rest_api(self, ms: float) -> None:
        self.observe_max("orthanc_rest_api_duration_ms", ms)

    def request_started(self) -> None:
        with self._guard:
            self._active_requests += 1
            active = self._active_requests
        self.observe_max("orthanc_rest_api_active_requests", active)

    def request_finished(self) -> None:
        with self._guard:
            self._active_requests -= 1

    def observe_store_dicom(self, ms: float) -> None:
        self.observe_max("orthanc_store_dicom_duration_ms", ms)

    def observe_storage(self, operation: str, ms: float, size: int = 0) -> None:
        """``operation``: create | read | remove; ``size``: bytes written or read."""
        self.observe_max(_STORAGE_DURATIONS[operation], ms)
        if operation == "create" and size:
            self.add("orthanc_storage_written_bytes", size)
        elif operation == "read" and size:
            self.add("orthanc_storage_read_bytes", size)

    def observe_find_scp(self, ms: float) -> None:
        self.observe_max("orthanc_find_scp_duration_ms", ms)

    def observe_move_scp(self, ms: float) -> None:
        self.observe_max("orthanc_move_scp_duration_ms", ms)

    def observe_get_scp(self, ms: float) -> None:
        self.observe_max("orthanc_get_scp_duration_ms", ms)

    @contextlib.contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """``with metrics.timed("orthanc_find_scp_duration_ms"): …`` records the duration."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe_max(name, (time.perf_counter() - started) * 1000)

    def add_source(self, source: MetricSource) -> None:
        """A function read at every scrape; its names must be in :data:`SPECS`."""
        self._sources.append(source)

    # --- exposition ----------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Prometheus text format; empty while metrics are disabled, as in Orthanc."""
        return generate_latest(self.registry) if self.enabled else b""

    def values(self) -> dict[str, float]:
        """Every metric with a value now (sources may query the index: call off the loop)."""
        found: dict[str, float] = {"orthanc_up_time_s": int(self._clock() - self._started)}
        for source in self._sources:
            found.update(source())
        with self._guard:
            windows = list(self._windows.items())
            found.update(self._totals)
            active = self._active_requests
        for name, window in windows:
            found[name] = window.value()
        if "orthanc_rest_api_active_requests" in found:
            # A request longer than the window (an event stream) is still active.
            found["orthanc_rest_api_active_requests"] = max(
                found["orthanc_rest_api_active_requests"], active
            )
        return found


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        values = self._metrics.values()
        for name in sorted(values):
            spec = SPECS.get(name) or MetricSpec(name, name)
            family: GaugeMetricFamily | CounterMetricFamily
            if spec.kind == "counter":
                family = CounterMetricFamily(name, spec.help, value=values[name])
            else:
                family = GaugeMetricFamily(name, spec.help, value=values[name])
            yield family

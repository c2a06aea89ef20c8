import CoreMetrics
import Foundation
import Metrics
import Pipeline
import Prometheus

/// The service's metrics, written with swift-metrics into a Prometheus registry of the server's own (not the
/// process-wide `MetricsSystem`, so two servers in one process — tests — do not share counters). `/metrics` emits it.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    let factory: PrometheusMetricsFactory

    private let queueDepth: CoreMetrics.Gauge
    private let admitted: CoreMetrics.Gauge
    private let reservedBytes: CoreMetrics.Gauge
    private let residentGauge: CoreMetrics.Gauge

    init(memoryLimit: Int) {
        var f = PrometheusMetricsFactory(registry: registry)
        let seconds: [Duration] = [.milliseconds(5), .milliseconds(25), .milliseconds(100), .milliseconds(250),
                                   .milliseconds(500), .seconds(1), .seconds(2), .seconds(5), .seconds(10),
                                   .seconds(30), .seconds(60), .seconds(120)]
        f.defaultDurationHistogramBuckets = seconds
        let mib = 1048576.0
        f.valueHistogramBuckets["enhance_request_peak_bytes"] = [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192].map { $0 * mib }
        f.valueHistogramBuckets["enhance_request_estimate_bytes"] = [16, 64, 128, 256, 512, 1024, 2048, 4096, 8192].map { $0 * mib }
        f.valueHistogramBuckets["enhance_estimate_ratio"] = [0.1, 0.25, 0.5, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 2, 4]
        factory = f
        queueDepth = CoreMetrics.Gauge(label: "enhance_queue_depth", factory: f)
        admitted = CoreMetrics.Gauge(label: "enhance_admitted_requests", factory: f)
        reservedBytes = CoreMetrics.Gauge(label: "enhance_reserved_bytes", factory: f)
        residentGauge = CoreMetrics.Gauge(label: "enhance_process_resident_bytes", factory: f)
        CoreMetrics.Gauge(label: "enhance_memory_limit_bytes", factory: f).record(memoryLimit)
        queueDepth.record(0); admitted.record(0); reservedBytes.record(0)
    }

    /// One finished HTTP request.
    func request(route: String, status: Int, seconds: Double) {
        CoreMetrics.Counter(label: "enhance_http_requests_total", dimensions: [("route", route), ("status", String(status))], factory: factory).increment()
        CoreMetrics.Timer(label: "enhance_http_request_duration_seconds", dimensions: [("route", route)], factory: factory)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    /// The per-stage times of one processed image.
    func stages(route: String, timings: [String: Double]) {
        for (stage, s) in timings {
            CoreMetrics.Timer(label: "enhance_stage_duration_seconds", dimensions: [("route", route), ("stage", stage)], factory: factory)
                .recordNanoseconds(Int64(s * 1e9))
        }
    }

    /// The measured tensor peak of a processed image against what admission reserved for it.
    func memory(route: String, peak: Int, estimate: Int) {
        CoreMetrics.Recorder(label: "enhance_request_peak_bytes", dimensions: [("route", route)], factory: factory).record(peak)
        CoreMetrics.Recorder(label: "enhance_request_estimate_bytes", dimensions: [("route", route)], factory: factory).record(estimate)
        if estimate > 0 {
            CoreMetrics.Recorder(label: "enhance_estimate_ratio", dimensions: [("route", route)], factory: factory)
                .record(Double(peak) / Double(estimate))
        }
    }

    /// A refused request (queue_full, too_large_for_memory, draining, timeout, …).
    func rejected(_ reason: String) {
        CoreMetrics.Counter(label: "enhance_rejected_total", dimensions: [("reason", reason)], factory: factory).increment()
    }

    /// `runs` network runs of different requests went through one merged forward (`--image-batch`).
    func merged(_ runs: Int) {
        CoreMetrics.Counter(label: "enhance_merged_network_runs_total", factory: factory).increment(by: runs)
    }

    func modelLoaded(_ name: String, seconds: Double) {
        CoreMetrics.Gauge(label: "enhance_model_load_seconds", dimensions: [("model", name)], factory: factory).record(seconds)
    }

    func admission(queue: Int, active: Int, reserved: Int) {
        queueDepth.record(queue)
        admitted.record(active)
        reservedBytes.record(reserved)
    }

    /// The Prometheus text, with the process's resident memory read now.
    func exposition() -> [UInt8] {
        if let rss = Pipeline.residentBytes() { residentGauge.record(rss) }
        return registry.emitToBuffer()
    }
}


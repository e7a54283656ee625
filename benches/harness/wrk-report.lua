-- wrk `done` hook used by benches/harness/lib.sh: prints one line, `WRKJSON {...}`, with the
-- run's throughput, error counts and latency percentiles. wrk's own --latency table stops at
-- p99; this adds p99.9 and p99.99. wrk measures in microseconds; the JSON is in milliseconds.
done = function(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local e = summary.errors
  local ms = function(us) return us / 1000 end
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"bytes":%d,' ..
    '"p50_ms":%.4f,"p90_ms":%.4f,"p99_ms":%.4f,"p999_ms":%.4f,"p9999_ms":%.4f,' ..
    '"max_ms":%.4f,"mean_ms":%.4f,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,"errors":%d}\n',
    summary.requests, seconds, summary.requests / seconds, summary.bytes,
    ms(latency:percentile(50)), ms(latency:percentile(90)), ms(latency:percentile(99)),
    ms(latency:percentile(99.9)), ms(latency:percentile(99.99)),
    ms(latency.max), ms(latency.mean),
    e.connect, e.read, e.write, e.status, e.timeout,
    e.connect + e.read + e.write + e.status + e.timeout))
end

// Prometheus metrics (SPEC §7): counters, gauges and histograms kept in atomics, grouped in
// labelled families, and the text exposition rendered as a pure function of a snapshot of
// them. Request threads find their series through a per-thread cache, so after the first use
// an update is an atomic add, never a lock.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

class Histogram {
public:
  explicit Histogram(const std::vector<double>& bounds);
  void observe(double value);

  struct View {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative; // per bound, then +Inf
    double sum = 0;
    uint64_t count = 0;
  };
  View view() const;

private:
  std::vector<double> m_bounds;
  std::unique_ptr<std::atomic<uint64_t>[]> m_counts; // per bucket (not cumulative), +Inf last
  std::atomic<double> m_sum{0};
  std::atomic<uint64_t> m_count{0};
};

// One sample of a rendered metric: label pairs and a value, or a histogram.
struct Sample {
  std::vector<std::pair<std::string, std::string>> labels;
  double value = 0;
  std::optional<Histogram::View> histogram;
};

struct MetricFamily {
  std::string name;
  std::string help;
  std::string type; // counter, gauge, histogram
  std::vector<Sample> samples;
};

// The text exposition format 0.0.4: # HELP and # TYPE per family, escaped label values,
// histograms as cumulative _bucket{le} series ending in +Inf, then _sum and _count.
std::string render_exposition(const std::vector<MetricFamily>& families);

// A family of series of one kind, keyed by label values.
template <typename Series> class Family {
public:
  Family(std::string name, std::string help, std::vector<std::string> label_names,
         std::vector<double> bounds = {})
      : m_id(next_family_id()), m_name(std::move(name)), m_help(std::move(help)),
        m_label_names(std::move(label_names)), m_bounds(std::move(bounds)) {}

  // The series for these label values (as many as label names), created on first use. A
  // series seen before on this thread is found with no lock and no allocation.
  Series& at(std::initializer_list<std::string_view> values);

  const std::string& name() const { return m_name; }
  const std::string& help() const { return m_help; }
  const std::vector<std::string>& label_names() const { return m_label_names; }

  // Calls f(values, series) for every series, under the family's lock.
  template <typename F> void each(F&& f) const {
    std::lock_guard lock(m_mutex);
    for (const auto& [values, series] : m_series) {
      f(values, *series);
    }
  }

private:
  // Never reused, unlike an address, so a per-thread cache cannot find a dead family's series.
  static uint64_t next_family_id() {
    static std::atomic<uint64_t> next{1};
    return next++;
  }

  uint64_t m_id;
  std::string m_name;
  std::string m_help;
  std::vector<std::string> m_label_names;
  std::vector<double> m_bounds;
  mutable std::mutex m_mutex;
  std::map<std::vector<std::string>, std::unique_ptr<Series>> m_series;
};

using AtomicCount = std::atomic<int64_t>;
using CounterFamily = Family<AtomicCount>;
using HistogramFamily = Family<Histogram>;

// Bucket bounds in seconds for request-scale latencies, and for modelmux's own overhead.
const std::vector<double>& latency_buckets();
const std::vector<double>& overhead_buckets();
const std::vector<double>& token_buckets();

} // namespace modelmux

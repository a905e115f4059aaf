// Metric storage and the Prometheus text exposition.
#include "modelmux/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

namespace modelmux {

Histogram::Histogram(const std::vector<double>& bounds)
    : m_bounds(bounds), m_counts(new std::atomic<uint64_t>[bounds.size() + 1]) {
  for (size_t i = 0; i <= bounds.size(); ++i) {
    m_counts[i] = 0;
  }
}

void Histogram::observe(double value) {
  size_t i = 0;
  while (i < m_bounds.size() && value > m_bounds[i]) {
    ++i;
  }
  m_counts[i].fetch_add(1, std::memory_order_relaxed);
  m_sum.fetch_add(value, std::memory_order_relaxed);
  m_count.fetch_add(1, std::memory_order_relaxed);
}

Histogram::View Histogram::view() const {
  View v;
  v.bounds = m_bounds;
  uint64_t running = 0;
  for (size_t i = 0; i <= m_bounds.size(); ++i) {
    running += m_counts[i].load(std::memory_order_relaxed);
    v.cumulative.push_back(running);
  }
  v.sum = m_sum.load(std::memory_order_relaxed);
  // The count is the +Inf bucket, so the two always agree in one rendering.
  v.count = running;
  return v;
}

namespace {

// Orders label value lists, stored (strings) or looked up (views), the same way, so a lookup
// needs no strings made.
struct LabelsLess {
  using is_transparent = void;
  template <typename A, typename B> bool operator()(const A& a, const B& b) const {
    return std::lexicographical_compare(
        a.begin(), a.end(), b.begin(), b.end(),
        [](std::string_view x, std::string_view y) { return x < y; });
  }
};

} // namespace

template <typename Series>
Series& Family<Series>::at(std::initializer_list<std::string_view> values) {
  // Per thread, per family: the series seen before, found without the family's lock.
  thread_local std::unordered_map<uint64_t, std::map<std::vector<std::string>, Series*, LabelsLess>>
      cache;
  auto& mine = cache[m_id];
  if (const auto it = mine.find(values); it != mine.end()) {
    return *it->second;
  }
  std::vector<std::string> key(values.begin(), values.end());
  std::lock_guard lock(m_mutex);
  auto& slot = m_series[key];
  if (!slot) {
    if constexpr (std::is_same_v<Series, Histogram>) {
      slot = std::make_unique<Histogram>(m_bounds);
    } else {
      slot = std::make_unique<Series>(0);
    }
  }
  mine.emplace(std::move(key), slot.get());
  return *slot;
}

template class Family<AtomicCount>;
template class Family<Histogram>;

namespace {

void append_escaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_number(std::string& out, double v) {
  if (std::isinf(v)) {
    out += v > 0 ? "+Inf" : "-Inf";
    return;
  }
  if (std::isnan(v)) {
    out += "NaN";
    return;
  }
  char buf[40];
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
    // The shortest form that reads back the same.
    for (int precision = 1; precision < 17; ++precision) {
      char shorter[40];
      std::snprintf(shorter, sizeof shorter, "%.*g", precision, v);
      if (std::strtod(shorter, nullptr) == v) {
        std::snprintf(buf, sizeof buf, "%s", shorter);
        break;
      }
    }
  }
  out += buf;
}

void append_labels(std::string& out, const std::vector<std::pair<std::string, std::string>>& labels,
                   std::string_view le = {}) {
  if (labels.empty() && le.empty()) {
    return;
  }
  out += '{';
  bool first = true;
  for (const auto& [k, v] : labels) {
    out += first ? "" : ",";
    first = false;
    out += k;
    out += "=\"";
    append_escaped(out, v);
    out += '"';
  }
  if (!le.empty()) {
    out += first ? "" : ",";
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

} // namespace

std::string render_exposition(const std::vector<MetricFamily>& families) {
  std::string out;
  out.reserve(8192);
  for (const auto& f : families) {
    out += "# HELP " + f.name + " ";
    for (char c : f.help) {
      out += c == '\n' ? std::string("\\n") : c == '\\' ? std::string("\\\\") : std::string(1, c);
    }
    out += "\n# TYPE " + f.name + " " + f.type + "\n";
    for (const auto& s : f.samples) {
      if (s.histogram) {
        const auto& h = *s.histogram;
        for (size_t i = 0; i <= h.bounds.size(); ++i) {
          std::string le;
          if (i < h.bounds.size()) {
            append_number(le, h.bounds[i]);
          } else {
            le = "+Inf";
          }
          out += f.name + "_bucket";
          append_labels(out, s.labels, le);
          out += ' ';
          append_number(out, static_cast<double>(h.cumulative[i]));
          out += '\n';
        }
        out += f.name + "_sum";
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, h.sum);
        out += '\n' + f.name + "_count";
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, static_cast<double>(h.count));
        out += '\n';
      } else {
        out += f.name;
        append_labels(out, s.labels);
        out += ' ';
        append_number(out, s.value);
        out += '\n';
      }
    }
  }
  return out;
}

const std::vector<double>& latency_buckets() {
  static const std::vector<double> b = {0.01, 0.02, 0.04, 0.08,  0.16,  0.32,  0.64,
                                        1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92};
  return b;
}

const std::vector<double>& overhead_buckets() {
  static const std::vector<double> b = {0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                        0.0025,  0.005,  0.01,    0.025,  0.05};
  return b;
}

const std::vector<double>& token_buckets() {
  static const std::vector<double> b = {1,    4,     16,    64,     256,     1024,
                                        4096, 16384, 65536, 262144, 1048576, 4194304};
  return b;
}

} // namespace modelmux

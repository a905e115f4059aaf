// The cost and savings report (`modelmux report`), built from usage records one at a time so
// months of logs stream through in constant memory. Pure: the CLI feeds it the log.
#pragma once

#include "modelmux/usage.h"

#include <map>
#include <string>

namespace modelmux {

struct ReportRow {
  int64_t requests = 0;  // requests this target served
  int64_t failures = 0;  // its failed attempts
  int64_t fallbacks = 0; // times a request moved on from it
  int64_t input_tokens = 0;
  int64_t output_tokens = 0;
  int64_t cost_micros = 0;
  int64_t reference_cost_micros = 0;
  int64_t cache_hits = 0;           // requests answered from the response cache
  int64_t cache_savings_micros = 0; // what those answers cost when they were first served

  ReportRow& operator+=(const ReportRow& o);
};

class Report {
public:
  // month is "YYYY-MM"; records from other months are ignored.
  explicit Report(std::string month) : m_month(std::move(month)) {}

  void add(const UsageRecord& r);

  // {"month", "targets": [{"target", "requests", "failures", "fallbacks", "input_tokens",
  // "output_tokens", "cost_usd", "reference_cost_usd", "savings_usd", "savings_percent",
  // "cache_hits", "cache_savings_usd"}], "total": {...}} (SPEC §8, with the cache's two fields
  // of §11: a hit costs 0 and saves what its answer cost when it was first served).
  std::string json() const;
  // The same as a table for people.
  std::string table() const;

private:
  ReportRow total() const;

  std::string m_month;
  std::map<std::string, ReportRow> m_rows;
  int64_t m_unserved = 0; // requests no target could serve (502/504/429): only in the total
};

} // namespace modelmux

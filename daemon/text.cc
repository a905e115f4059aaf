// String helpers: edit distance, close matches, strict number parsing.
#include "modelmux/text.h"

#include <algorithm>
#include <charconv>

namespace modelmux {

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1);
  std::vector<size_t> cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    prev[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::vector<std::string> close_matches(std::string_view name,
                                       const std::vector<std::string>& candidates, size_t max) {
  // A typo budget that grows with the length of the name, as people mistype long names more.
  const size_t budget = std::max<size_t>(2, name.size() / 3);
  std::vector<std::pair<size_t, std::string>> scored;
  for (const auto& c : candidates) {
    size_t d = edit_distance(name, c);
    // A name that is a prefix or suffix of a candidate (or the reverse) is a likely mix-up too.
    const bool contains = !name.empty() && (c.find(name) != std::string::npos ||
                                            std::string_view(name).find(c) != std::string::npos);
    if (contains) {
      d = std::min(d, budget);
    }
    if (d <= budget) {
      scored.emplace_back(d, c);
    }
  }
  std::stable_sort(scored.begin(), scored.end(),
                   [](const auto& l, const auto& r) { return l.first < r.first; });
  std::vector<std::string> out;
  for (auto& [d, c] : scored) {
    if (out.size() == max) {
      break;
    }
    if (std::find(out.begin(), out.end(), c) == out.end()) {
      out.push_back(std::move(c));
    }
  }
  return out;
}

std::string join_alternatives(const std::vector<std::string>& items, std::string_view last_sep) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) {
      out.append(i + 1 == items.size() ? last_sep : std::string_view(", "));
    }
    out.append(items[i]);
  }
  return out;
}

std::optional<int64_t> parse_int(std::string_view s) {
  if (s.empty() || s.size() > 18) {
    return std::nullopt;
  }
  int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 0) {
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> parse_millionths(std::string_view s) {
  const size_t dot = s.find('.');
  const std::string_view whole = s.substr(0, dot);
  std::string_view frac = dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (whole.empty() && frac.empty()) {
    return std::nullopt;
  }
  int64_t w = 0;
  if (!whole.empty()) {
    const auto parsed = parse_int(whole);
    if (!parsed || *parsed > 9'000'000'000'000) {
      return std::nullopt;
    }
    w = *parsed;
  }
  while (!frac.empty() && frac.back() == '0') {
    frac.remove_suffix(1);
  }
  if (frac.size() > 6) {
    return std::nullopt;
  }
  int64_t f = 0;
  for (const char c : frac) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    f = f * 10 + (c - '0');
  }
  for (size_t i = frac.size(); i < 6; ++i) {
    f *= 10;
  }
  return w * 1'000'000 + f;
}

std::string format_millionths(int64_t v) {
  std::string out = std::to_string(v / 1'000'000);
  int64_t frac = v % 1'000'000;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 6 - digits.size(), '0');
    while (!digits.empty() && digits.back() == '0') {
      digits.pop_back();
    }
    out.append(".").append(digits);
  }
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

} // namespace modelmux

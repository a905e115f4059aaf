// Small string helpers shared by the config loader, the router and the CLI: edit distance for
// "did you mean" suggestions and strict number parsing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

size_t edit_distance(std::string_view a, std::string_view b);

// Up to max candidates close enough to name to be a plausible typo, closest first.
std::vector<std::string> close_matches(std::string_view name,
                                       const std::vector<std::string>& candidates, size_t max = 3);

// "a, b or c" for messages.
std::string join_alternatives(const std::vector<std::string>& items, std::string_view last_sep);

// Parses a non-negative decimal such as "2.50" into millionths (2500000); nullopt when it is
// not such a number or has more than six decimals.
std::optional<int64_t> parse_millionths(std::string_view s);

// Parses a whole decimal integer with no sign, spaces or suffix.
std::optional<int64_t> parse_int(std::string_view s);

// Formats millionths as a decimal with the trailing zeros trimmed ("2.5").
std::string format_millionths(int64_t v);

bool starts_with(std::string_view s, std::string_view prefix);

} // namespace modelmux

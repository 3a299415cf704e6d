#include "orchestrator/scheduler/quantity.h"

#include <limits>
#include <string>

#include "absl/strings/str_cat.h"

namespace ganglion::orchestrator::scheduler {
namespace {

using Int128 = __int128;

// Digits that carry information: more are refused rather than rounded, so a
// request is never silently changed. 10^18 * 2^60 still fits in 128 bits.
constexpr int kSignificantDigitsMax = 18;
// Beyond this a decimal exponent saturates (or rounds to the smallest unit).
constexpr int kExponentMax = 38;

absl::Status Malformed(std::string_view text, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("quantity \"", std::string(text), "\" is malformed: ", std::string(why),
                   " (want a number with an optional suffix, e.g. 100m, 1.5, 512Mi, 1G, 1e3)"));
}

// The parsed form: sign * mantissa * 10^exp10 * 2^exp2.
struct Parts {
  bool negative = false;
  Int128 mantissa = 0;
  int exp10 = 0;
  int exp2 = 0;
};

absl::StatusOr<Parts> Split(std::string_view text) {
  Parts p;
  size_t i = 0;
  if (i < text.size() && (text[i] == '+' || text[i] == '-')) p.negative = text[i++] == '-';
  std::string digits;  // integer and fraction digits, leading zeros dropped
  int fraction_digits = 0;
  bool any_digit = false, point = false;
  for (; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '.' && !point) {
      point = true;
      continue;
    }
    if (c < '0' || c > '9') break;
    any_digit = true;
    if (point) ++fraction_digits;
    if (digits.empty() && c == '0') continue;
    digits.push_back(c);
  }
  if (!any_digit) return Malformed(text, "no digits");
  // Trailing zeros move into the exponent: "1000000" has one significant digit.
  p.exp10 = -fraction_digits;
  while (!digits.empty() && digits.back() == '0') {
    digits.pop_back();
    ++p.exp10;
  }
  if (static_cast<int>(digits.size()) > kSignificantDigitsMax) {
    return Malformed(text,
                     absl::StrCat("more than ", kSignificantDigitsMax, " significant digits"));
  }
  for (char c : digits) p.mantissa = p.mantissa * 10 + (c - '0');

  const std::string_view suffix = text.substr(i);
  struct Named {
    std::string_view name;
    int exp10, exp2;
  };
  static constexpr Named kSuffixes[] = {{"", 0, 0},    {"n", -9, 0},  {"u", -6, 0},  {"m", -3, 0},
                                        {"k", 3, 0},   {"M", 6, 0},   {"G", 9, 0},   {"T", 12, 0},
                                        {"P", 15, 0},  {"E", 18, 0},  {"Ki", 0, 10}, {"Mi", 0, 20},
                                        {"Gi", 0, 30}, {"Ti", 0, 40}, {"Pi", 0, 50}, {"Ei", 0, 60}};
  for (const Named& s : kSuffixes) {
    if (suffix == s.name) {
      p.exp10 += s.exp10;
      p.exp2 = s.exp2;
      return p;
    }
  }
  // A decimal exponent: e or E, an optional sign, digits ("E" alone is exa).
  if (suffix[0] == 'e' || suffix[0] == 'E') {
    size_t j = 1;
    bool negative_exponent = false;
    if (j < suffix.size() && (suffix[j] == '+' || suffix[j] == '-')) {
      negative_exponent = suffix[j++] == '-';
    }
    if (j == suffix.size()) return Malformed(text, "exponent without digits");
    int exponent = 0;
    for (; j < suffix.size(); ++j) {
      if (suffix[j] < '0' || suffix[j] > '9') return Malformed(text, "bad exponent");
      exponent = std::min(exponent * 10 + (suffix[j] - '0'), 10 * kExponentMax);
    }
    p.exp10 += negative_exponent ? -exponent : exponent;
    return p;
  }
  return Malformed(text, absl::StrCat("unknown suffix \"", std::string(suffix), "\""));
}

// sign * mantissa * 2^exp2 * 10^(exp10 + scale10), rounded up, saturated.
int64_t Scale(const Parts& p, int scale10) {
  constexpr Int128 kMax = std::numeric_limits<int64_t>::max();
  if (p.mantissa == 0) return 0;
  Int128 magnitude = p.mantissa << p.exp2;  // < 2^60 * 2^60
  const int exp10 = p.exp10 + scale10;
  if (exp10 >= 0) {
    for (int k = 0; k < exp10 && magnitude <= kMax; ++k) magnitude *= 10;
    magnitude = std::min(magnitude, kMax);
    return static_cast<int64_t>(p.negative ? -magnitude : magnitude);
  }
  if (-exp10 > kExponentMax) return p.negative ? 0 : 1;  // a sliver of the unit
  Int128 divisor = 1;
  for (int k = 0; k < -exp10; ++k) divisor *= 10;
  Int128 whole = magnitude / divisor;
  const bool exact = whole * divisor == magnitude;
  // Up means towards +infinity: away from zero for positives only.
  if (!exact && !p.negative) ++whole;
  whole = std::min(whole, kMax);
  return static_cast<int64_t>(p.negative ? -whole : whole);
}

}  // namespace

absl::StatusOr<int64_t> ParseQuantityMilli(std::string_view text) {
  auto parts = Split(text);
  if (!parts.ok()) return parts.status();
  return Scale(*parts, 3);
}

absl::StatusOr<int64_t> ParseQuantity(std::string_view text) {
  auto parts = Split(text);
  if (!parts.ok()) return parts.status();
  return Scale(*parts, 0);
}

}  // namespace ganglion::orchestrator::scheduler

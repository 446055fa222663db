// timestamp: the protocol's ISO-8601 datetimes (checkpoint times, expiry, archive URLs).
#pragma once

#include <tinker/error.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

namespace tinker {

/// UTC time with microsecond resolution (what Python's datetime carries).
using timestamp = std::chrono::sys_time<std::chrono::microseconds>;

/// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
inline std::string format_timestamp(timestamp t) {
  using namespace std::chrono;
  const auto day = floor<days>(t);
  const year_month_day ymd{day};
  const hh_mm_ss<microseconds> tod{t - day};
  char buf[40];
  std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02d.%06ldZ", static_cast<int>(ymd.year()),
                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                static_cast<int>(tod.seconds().count()), static_cast<long>(tod.subseconds().count()));
  return buf;
}

/// Parses `YYYY-MM-DD[T| ]HH:MM[:SS[.fraction]][Z|+HH:MM|-HH:MM|+HHMM]`; no zone means UTC.
/// Returns nullopt when `s` is not such a datetime.
inline std::optional<timestamp> parse_timestamp(std::string_view s) noexcept {
  using namespace std::chrono;
  std::size_t i = 0;
  auto number = [&](std::size_t digits, int& out) {
    if (i + digits > s.size()) return false;
    auto r = std::from_chars(s.data() + i, s.data() + i + digits, out);
    if (r.ec != std::errc{} || r.ptr != s.data() + i + digits) return false;
    i += digits;
    return true;
  };
  auto expect = [&](char c) {
    if (i < s.size() && s[i] == c) {
      ++i;
      return true;
    }
    return false;
  };
  int y, mo, d, h, mi, sec = 0;
  if (!number(4, y) || !expect('-') || !number(2, mo) || !expect('-') || !number(2, d)) return std::nullopt;
  if (!(expect('T') || expect('t') || expect(' '))) return std::nullopt;
  if (!number(2, h) || !expect(':') || !number(2, mi)) return std::nullopt;
  std::int64_t micros = 0;
  if (expect(':')) {
    if (!number(2, sec)) return std::nullopt;
    if (expect('.') || expect(',')) {
      int scale = 100000, digits = 0;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (digits < 6) micros += (s[i] - '0') * scale, scale /= 10;
        ++digits, ++i;
      }
      if (digits == 0) return std::nullopt;
    }
  }
  int offset_minutes = 0;
  if (expect('Z') || expect('z')) {
  } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    const int sign = s[i++] == '-' ? -1 : 1;
    int oh, om = 0;
    if (!number(2, oh)) return std::nullopt;
    expect(':');
    if (i < s.size() && !number(2, om)) return std::nullopt;
    offset_minutes = sign * (oh * 60 + om);
  }
  if (i != s.size()) return std::nullopt;
  const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
  if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
  return timestamp{sys_days{ymd}} + hours{h} + minutes{mi} + seconds{sec} + microseconds{micros} -
         minutes{offset_minutes};
}

/// The current time, truncated to microseconds.
inline timestamp now_timestamp() {
  return std::chrono::time_point_cast<std::chrono::microseconds>(std::chrono::system_clock::now());
}

}  // namespace tinker

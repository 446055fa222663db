// What the REST endpoints share: query parameters, paging, download headers, and the base of the
// signed URLs the engine hands out.
#pragma once

#include <tinker/http/url.hpp>
#include <tinker/local/detail/engine_core.hpp>

#include <boost/beast/http/field.hpp>

#include <charconv>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <iterator>
#include <limits>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::local::detail {

/// RFC 7231 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
inline std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

/// Query parameter `key` as an integer in [min, max] (`fallback` when absent), else 400.
inline std::int64_t query_int(const parsed_target& t, const std::string& key, std::int64_t fallback, std::int64_t min,
                              std::int64_t max) {
  auto v = t.query_value(key);
  if (!v) return fallback;
  std::int64_t x = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc{} || r.ptr != v->data() + v->size() || x < min || x > max)
    throw http_error(400, "query parameter " + key + " must be an integer in [" + std::to_string(min) + ", " +
                              std::to_string(max) + "], got '" + *v + "'");
  return x;
}

/// A Content-Disposition for a download named `file`: names may hold quotes, spaces and non-ASCII
/// letters, so the name goes percent-encoded in filename* (RFC 6266), with an ASCII fallback.
inline std::string attachment(std::string_view file) {
  std::string fallback;
  for (const char c : file) {
    const auto u = static_cast<unsigned char>(c);
    fallback += u < 0x20 || u >= 0x7f || c == '"' || c == '\\' ? '_' : c;
  }
  return "attachment; filename=\"" + fallback + "\"; filename*=UTF-8''" + tinker::http::escape_query_value(file);
}

/// Items [offset, offset + limit) of `all`.
template <class T>
std::vector<T> page(std::vector<T> all, std::int64_t offset, std::int64_t limit) {
  if (offset >= static_cast<std::int64_t>(all.size())) return {};
  auto first = all.begin() + offset;
  auto last = limit >= static_cast<std::int64_t>(all.end() - first) ? all.end() : first + limit;
  return std::vector<T>(std::make_move_iterator(first), std::make_move_iterator(last));
}

/// `scheme://host` as the client reached the engine (for the signed URLs it hands out): the Host
/// it sent, through whatever scheme it used (X-Forwarded-Proto behind a proxy).
inline std::string public_base(const engine_core& core, const request_context& ctx) {
  std::string scheme = core.options().tls_cert_file ? "https" : "http";
  if (auto p = ctx.request.find("X-Forwarded-Proto"); p != ctx.request.end()) scheme = std::string(p->value());
  auto host = ctx.request.find(boost::beast::http::field::host) != ctx.request.end()
                  ? std::string(ctx.request[boost::beast::http::field::host])
                  : core.options().host + ":" + std::to_string(core.listening_port());
  return scheme + "://" + host;
}

/// When a signed URL issued now with `lifetime` expires (whole seconds), and that as Unix seconds.
inline std::pair<std::chrono::sys_seconds, std::string> signed_url_expiry(const engine_core& core,
                                                                          std::chrono::milliseconds lifetime) {
  const auto expires = std::chrono::time_point_cast<std::chrono::seconds>(core.now() + lifetime);
  return {expires, std::to_string(expires.time_since_epoch().count())};
}

/// 403 unless `signature` signs `text` with the engine's secret, and `expires` (Unix seconds, the
/// query parameter) is still ahead of the engine clock. `what` names the URL kind in messages.
inline void check_signed_url(const engine_core& core, const request_context& ctx, const std::string& text_before_expiry,
                             std::string_view what) {
  const auto expires = ctx.target.query_value("expires");
  const auto signature = ctx.target.query_value("signature");
  if (!expires || !signature ||
      !equal_constant_time(*signature, hmac_sha256_hex(core.storage.secret(), text_before_expiry + *expires)))
    throw http_error(403, "invalid " + std::string(what) + " signature");
  const auto expiry = query_int(ctx.target, "expires", 0, 0, std::numeric_limits<std::int64_t>::max());
  if (std::chrono::system_clock::time_point(std::chrono::seconds(expiry)) <= core.now())
    throw http_error(403, std::string(what) + " link expired");
}

}  // namespace tinker::local::detail

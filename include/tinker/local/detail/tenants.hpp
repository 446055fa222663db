// Tenants and authentication. Every API key is its own tenant, known only by a digest of the key:
// the key itself is never stored, logged or echoed. In open mode (no keys configured) any `tml-`
// key is accepted; otherwise only the configured ones.
#pragma once

#include <tinker/local/detail/crypto.hpp>
#include <tinker/local/detail/http_error.hpp>
#include <tinker/local/http_server.hpp>

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tinker::local::detail {

class tenant_directory {
public:
  /// `api_keys`: the accepted keys (engine_options::api_keys); empty = open mode.
  explicit tenant_directory(std::vector<std::string> api_keys) : api_keys_(std::move(api_keys)) {}

  /// The tenant of the request's API key (X-API-Key, or Authorization: Bearer); 401 without a
  /// valid one. Never echoes the key.
  std::string authenticate(const http_request& req) const {
    std::string key;
    if (auto it = req.find("X-API-Key"); it != req.end()) key = std::string(it->value());
    if (key.empty())
      if (auto it = req.find(boost::beast::http::field::authorization); it != req.end()) {
        const std::string_view v(it->value().data(), it->value().size());
        if (v.size() > 7 && (v.substr(0, 7) == "Bearer " || v.substr(0, 7) == "bearer "))
          key = std::string(v.substr(7));
      }
    if (key.empty()) throw http_error(401, "missing API key: send it in the X-API-Key header");
    auto tenant = tenant_of_key(key);
    if (!tenant) throw http_error(401, "invalid API key");
    return *tenant;
  }

  /// The tenant of an API key of this engine (open mode: any tml- key; allowlist mode: a listed
  /// key), or nullopt. The key itself is never kept.
  std::optional<std::string> tenant_of_key(std::string_view key) const {
    const bool known = api_keys_.empty() ? key.rfind("tml-", 0) == 0 && key.size() > 4
                                         : std::find(api_keys_.begin(), api_keys_.end(), key) != api_keys_.end();
    if (!known) return std::nullopt;
    return "tenant-" + sha256_hex(key).substr(0, 16);
  }

  /// Whose checkpoints a load by `caller` may read: the caller's, or, with a weights_access_token
  /// (a credential of the account owning the checkpoint, docs/protocol.md §7.5), that key's tenant. An
  /// invalid token is refused (403) without echoing it.
  std::string checkpoint_reader(const std::string& caller,
                                const std::optional<std::string>& weights_access_token) const {
    if (!weights_access_token) return caller;
    if (weights_access_token->empty())
      throw http_error(403, "weights_access_token is empty; omit it to load with your own API key");
    auto tenant = tenant_of_key(*weights_access_token);
    if (!tenant)
      throw http_error(403,
                       "weights_access_token is not a valid API key of this server: it must be a credential of the "
                       "account that owns the checkpoint");
    return *tenant;
  }

private:
  std::vector<std::string> api_keys_;
};

}  // namespace tinker::local::detail

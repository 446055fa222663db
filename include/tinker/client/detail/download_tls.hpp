// TLS for the download connection (its own, not the API transport's: a signed URL may point at
// object storage on another host). Verification follows http::tls_options: system CAs and/or a
// CA file/directory, SNI, RFC 6125 host name (or IP) checks, and an explicit insecure opt-out.
#pragma once

#include <tinker/error.hpp>
#include <tinker/http/tls_options.hpp>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/ssl/verify_context.hpp>
#include <boost/system/error_code.hpp>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace tinker::detail {

inline bool download_tls_unverified(const http::tls_options& o) noexcept { return o.insecure_skip_verify || !o.verify_peer; }

/// A client context for one download. Unreadable CA paths are user errors naming the option.
inline std::unique_ptr<boost::asio::ssl::context> make_download_tls_context(const http::tls_options& o) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  if (download_tls_unverified(o)) {
    ctx->set_verify_mode(ssl::verify_none);
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (o.use_system_ca) ctx->set_default_verify_paths(ec);  // a missing store shows up as a verify failure
  if (!o.ca_file.empty()) {
    ctx->load_verify_file(o.ca_file, ec);
    if (ec) throw tinker::invalid_argument("tls.ca_file '" + o.ca_file + "' cannot be loaded: " + ec.message());
  }
  if (!o.ca_dir.empty()) {
    ctx->add_verify_path(o.ca_dir, ec);
    if (ec) throw tinker::invalid_argument("tls.ca_dir '" + o.ca_dir + "' cannot be used: " + ec.message());
  }
  return ctx;
}

/// SNI (host names only: RFC 6066 forbids IP literals) and, when verifying, the host name check.
/// `host_mismatch` (which must outlive the stream) is set when the chain was trusted but the name
/// did not match, so the error can say which check failed.
template <class NextLayer>
void configure_download_tls(boost::asio::ssl::stream<NextLayer>& stream, const std::string& host, bool verify,
                            bool& host_mismatch) {
  namespace ssl = boost::asio::ssl;
  boost::system::error_code ec;
  boost::asio::ip::make_address(host, ec);
  if (ec) SSL_set_tlsext_host_name(stream.native_handle(), host.c_str());
  if (!verify) return;
  stream.set_verify_callback(
      [check = ssl::host_name_verification(host), flag = &host_mismatch](bool preverified, ssl::verify_context& vctx) {
        const bool ok = check(preverified, vctx);
        if (preverified && !ok) *flag = true;
        return ok;
      });
}

/// Why a handshake failed, in words that point at the fix.
template <class NextLayer>
std::string describe_download_tls_failure(boost::asio::ssl::stream<NextLayer>& stream,
                                          const boost::system::error_code& ec, const std::string& host,
                                          bool host_mismatch) {
  if (host_mismatch)
    return "TLS certificate problem: the certificate of the server is not valid for the host name '" + host +
           "' (host name mismatch)";
  const long result = SSL_get_verify_result(stream.native_handle());
  if (result != X509_V_OK)
    return std::string("TLS certificate problem: the certificate of the server could not be verified (") +
           X509_verify_cert_error_string(result) + "); set tls.ca_file / tls.ca_dir to the CA that issued it";
  return "TLS handshake failed: " + ec.message();
}

}  // namespace tinker::detail

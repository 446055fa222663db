// Client-side TLS: the shared context (trusted CAs, protocol floor), the per-connection setup
// (SNI, host name verification) and the text of a failed handshake, which must say plainly when
// the problem is the certificate.
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

#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace tinker::http::detail {

inline bool tls_verification_disabled(const tls_options& o) noexcept {
  return o.insecure_skip_verify || !o.verify_peer;
}

/// Builds the context shared by all connections of one transport. Bad CA paths are user errors
/// (tinker::invalid_argument naming the option and the path). Insecure settings are reported once
/// through `warn`.
inline std::shared_ptr<boost::asio::ssl::context> make_client_tls_context(
    const tls_options& o, std::string_view server, const std::function<void(std::string_view)>& warn) {
  namespace ssl = boost::asio::ssl;
  auto ctx = std::make_shared<ssl::context>(ssl::context::tls_client);
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  // Free OpenSSL's record buffers while a connection is idle: pools keep thousands of them.
  SSL_CTX_set_mode(ctx->native_handle(), SSL_MODE_RELEASE_BUFFERS);
  if (tls_verification_disabled(o)) {
    ctx->set_verify_mode(ssl::verify_none);
    if (warn)
      warn("WARNING: TLS certificate verification is DISABLED for " + std::string(server) +
           " (tls.insecure_skip_verify / tls.verify_peer = false). The connection is encrypted but the server is not "
           "authenticated: anyone on the network path can impersonate it and read the API key. Use this for testing "
           "only.");
    return ctx;
  }
  ctx->set_verify_mode(ssl::verify_peer);
  boost::system::error_code ec;
  if (o.use_system_ca) ctx->set_default_verify_paths(ec);  // a missing system store shows up as a verify failure
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

/// Per-connection TLS setup: SNI (host names only; RFC 6066 forbids IP literals there) and, when
/// verifying, the RFC 6125 host name / IP check on the leaf certificate. `host_mismatch` is set when
/// the chain was trusted but the name did not match, so the error can say which of the two failed.
template <class NextLayer>
void configure_client_tls(boost::asio::ssl::stream<NextLayer>& stream, const std::string& host, bool verify,
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
      },
      ec);
}

/// Why a TLS handshake failed, in words that point at the fix.
template <class NextLayer>
std::string describe_tls_failure(boost::asio::ssl::stream<NextLayer>& stream, const boost::system::error_code& ec,
                                 const std::string& host, bool host_mismatch) {
  if (host_mismatch)
    return "TLS certificate problem: the server's certificate is not valid for the host name '" + host +
           "' (host name mismatch); connect by a name the certificate lists";
  const long result = SSL_get_verify_result(stream.native_handle());
  if (result != X509_V_OK)
    return std::string("TLS certificate problem: the server's certificate could not be verified (") +
           X509_verify_cert_error_string(result) +
           "); it is not signed by a trusted CA: set tls.ca_file / tls.ca_dir to the CA that issued it";
  if (ec.category() == boost::asio::error::get_ssl_category() &&
      ERR_GET_REASON(static_cast<unsigned long>(ec.value())) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    return "TLS certificate problem: certificate verification failed (" + ec.message() +
           "): wrong CA or a host name mismatch";
  return "TLS handshake failed: " + ec.message();
}

}  // namespace tinker::http::detail

// TLS settings of client connections: peer verification, SNI and host name checks are on by
// default; turning verification off is an explicit, loud opt-out.
#pragma once

#include <string>

namespace tinker::http {

struct tls_options {
  bool verify_peer = true;
  std::string ca_file;  ///< PEM bundle of trusted CAs (in addition to the system ones when use_system_ca)
  std::string ca_dir;   ///< directory of hashed CA certificates
  bool use_system_ca = true;
  /// Accept any certificate (testing only). Logged as a warning once per transport.
  bool insecure_skip_verify = false;
};

}  // namespace tinker::http

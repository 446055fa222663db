// A throw-away PKI for TLS tests, made at test time with the `openssl` command-line tool in a
// temporary directory: one CA, and server certificates signed by it for whatever DNS names and IP
// addresses a test needs. EC P-256 keys keep generation fast (milliseconds).
//
//   tinker::test::test_pki pki;                                   // creates the CA
//   auto good = pki.issue("localhost", {"localhost"}, {"127.0.0.1"});
//   auto other = pki.issue("other", {"other.test"}, {});          // for host-name mismatch tests
//   server options: good.cert_file / good.key_file; client options: pki.ca_file()
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace tinker::test {

class test_pki {
public:
  struct server_cert {
    std::string cert_file;  ///< PEM certificate (leaf only; the CA is pki.ca_file())
    std::string key_file;   ///< PEM private key, unencrypted
  };

  test_pki() {
    std::string pattern = (std::filesystem::temp_directory_path() / "tinker-test-pki-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("test_pki: cannot create a temporary directory");
    dir_ = pattern;
    ca_file_ = (dir_ / "ca.pem").string();
    run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -keyout " +
        quote(dir_ / "ca.key") + " -out " + quote(ca_file_) +
        " -days 30 -subj '/CN=tinker-cpp test CA'"
        " -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign'");
  }

  test_pki(const test_pki&) = delete;
  test_pki& operator=(const test_pki&) = delete;

  ~test_pki() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  const std::string& ca_file() const noexcept { return ca_file_; }
  const std::filesystem::path& dir() const noexcept { return dir_; }

  /// A server certificate signed by the CA, with the given subjectAltName entries.
  server_cert issue(const std::string& name, const std::vector<std::string>& dns_names,
                    const std::vector<std::string>& ip_addresses) const {
    const auto key = dir_ / (name + ".key"), csr = dir_ / (name + ".csr"), pem = dir_ / (name + ".pem"),
               ext = dir_ / (name + ".ext");
    std::string san;
    for (const auto& d : dns_names) san += (san.empty() ? "" : ",") + std::string("DNS:") + d;
    for (const auto& ip : ip_addresses) san += (san.empty() ? "" : ",") + std::string("IP:") + ip;
    {
      std::ofstream out(ext);
      if (!san.empty()) out << "subjectAltName=" << san << "\n";
      out << "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n";
    }
    run("openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout " + quote(key) + " -out " +
        quote(csr) + " -subj '/CN=" + (dns_names.empty() ? name : dns_names.front()) + "'");
    std::mt19937_64 rng(std::random_device{}());
    char serial[32];
    std::snprintf(serial, sizeof serial, "0x%016llx", static_cast<unsigned long long>(rng() >> 1));
    run("openssl x509 -req -in " + quote(csr) + " -CA " + quote(ca_file_) + " -CAkey " + quote(dir_ / "ca.key") +
        " -set_serial " + serial + " -days 30 -extfile " + quote(ext) + " -out " + quote(pem));
    return {pem.string(), key.string()};
  }

private:
  static std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

  void run(const std::string& command) const {
    const auto log = dir_ / "openssl.log";
    const auto full = command + " > " + quote(log) + " 2>&1";
    if (std::system(full.c_str()) != 0) {
      std::ifstream in(log);
      std::stringstream text;
      text << in.rdbuf();
      throw std::runtime_error("test_pki: command failed: " + command + "\n" + text.str());
    }
  }

  std::filesystem::path dir_;
  std::string ca_file_;
};

}  // namespace tinker::test

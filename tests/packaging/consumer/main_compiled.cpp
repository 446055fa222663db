// Links the installed, separately compiled library (tinker::local_compiled): an embedded engine
// and one call from a plain thread.
#include <tinker/local/engine.hpp>
#include <tinker/tinker.hpp>

#include <boost/asio/use_future.hpp>

#include <iostream>

int main() {
  tinker::local::embedded_engine engine;
  tinker::client_options options;
  options.base_url = engine.base_url();
  options.api_key = "tml-consumer";
  tinker::blocking_client client(options);
  const auto capabilities = client.service().get_server_capabilities(boost::asio::use_future).get();
  std::cout << "compiled consumer: " << capabilities.supported_models.size() << " models\n";
  return capabilities.supported_models.empty() ? 1 : 0;
}

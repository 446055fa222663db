// compile_time.sh's client translation unit: the same call as bare_call.cpp, with tinker-cpp.
#include <tinker/tinker.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <iostream>

namespace asio = boost::asio;

asio::awaitable<void> call() {
  tinker::service_client service(co_await asio::this_coro::executor);  // TINKER_BASE_URL, TINKER_API_KEY
  const auto capabilities = co_await service.get_server_capabilities();
  for (const auto& m : capabilities.supported_models) std::cout << m.model_name.value_or("?") << "\n";
}

int main() {
  asio::io_context io;
  asio::co_spawn(io, call(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

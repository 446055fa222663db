// The baseline of compile_time.sh: one Tinker call (get_server_capabilities) written with bare
// Beast and Boost.JSON in a coroutine, as a user without tinker-cpp would write it.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <cstdlib>
#include <iostream>
#include <string>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

asio::awaitable<void> call(std::string host, std::string port, std::string key) {
  auto ex = co_await asio::this_coro::executor;
  asio::ip::tcp::resolver resolver(ex);
  beast::tcp_stream stream(ex);
  stream.expires_after(std::chrono::seconds(30));
  co_await stream.async_connect(co_await resolver.async_resolve(host, port, asio::use_awaitable), asio::use_awaitable);
  http::request<http::string_body> req{http::verb::get, "/api/v1/get_server_capabilities", 11};
  req.set(http::field::host, host);
  req.set("X-API-Key", key);
  req.set(http::field::accept, "application/json");
  co_await http::async_write(stream, req, asio::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, asio::use_awaitable);
  const auto doc = boost::json::parse(res.body());
  for (const auto& m : doc.at("supported_models").as_array())
    std::cout << boost::json::value_to<std::string>(m.at("model_name")) << "\n";
}

int main(int argc, char** argv) {
  if (argc < 4) return 2;
  asio::io_context io;
  asio::co_spawn(io, call(argv[1], argv[2], argv[3]), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  io.run();
}

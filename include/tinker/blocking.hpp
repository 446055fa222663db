// For code that does not use coroutines. Every operation already works from a plain thread with
// `asio::use_future` (see completion.hpp); what such code lacks is a thread running the event
// loop. blocking_client is that: an io_context, a thread running it, and a service_client on it.
//
//   tinker::blocking_client client(options);
//   auto& service = client.service();
//   auto training = service.create_lora_training_client("Qwen/Qwen3-8B", asio::use_future).get();
//   auto fwd = training.forward_backward(batch, tinker::loss_fn_type::cross_entropy, asio::use_future).get();
//   auto out = fwd.result(asio::use_future).get();
//
// run() waits for any awaitable of the library (or of your own) instead:
// `auto out = client.run(fwd.result());`. Background work (polls, heartbeats) runs on the loop's
// thread all the time, between calls too. The clients it returns must not outlive it.
#pragma once

#include <tinker/client/service_client.hpp>
#include <tinker/error.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

#include <thread>
#include <utility>

namespace tinker {

class blocking_client {
public:
  /// Every option from the environment (TINKER_BASE_URL, TINKER_API_KEY, ...).
  blocking_client() : blocking_client(client_options()) {}
  /// Throws tinker::invalid_argument for unusable options (no API key, malformed URL).
  explicit blocking_client(client_options options)
      : work_(io_.get_executor()), service_(io_.get_executor(), std::move(options)), thread_([this] { io_.run(); }) {}

  blocking_client(const blocking_client&) = delete;
  blocking_client& operator=(const blocking_client&) = delete;

  /// Closes the service client, lets what it cancelled finish, and joins the loop's thread.
  ~blocking_client() {
    service_.close();
    work_.reset();
    thread_.join();
  }

  service_client& service() noexcept { return service_; }

  /// Runs `task` on the client's executor and waits for it: its result, or its exception.
  /// Must not be called from the loop's own thread (a completion handler), which it would block.
  template <class T>
  T run(boost::asio::awaitable<T> task) {
    check_thread();
    return boost::asio::co_spawn(service_.get_executor(), std::move(task), boost::asio::use_future).get();
  }

  void run(boost::asio::awaitable<void> task) {
    check_thread();
    boost::asio::co_spawn(service_.get_executor(), std::move(task), boost::asio::use_future).get();
  }

  boost::asio::io_context& context() noexcept { return io_; }

private:
  void check_thread() const {
    if (std::this_thread::get_id() == thread_.get_id())
      throw tinker::invalid_argument("blocking_client::run called on the event loop's own thread (it would deadlock)");
  }

  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  service_client service_;
  std::thread thread_;
};

}  // namespace tinker

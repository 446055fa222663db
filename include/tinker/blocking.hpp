// A blocking facade for code that does not use coroutines: each call drives the client's event
// loop on the calling thread until the awaited operation is done.
//
//   tinker::blocking_client client(options);                         // owns an io_context
//   auto training = client.run(client.service().create_lora_training_client("Qwen/Qwen3-8B"));
//   auto fwd = client.run(training.forward_backward(batch, tinker::loss_fn_type::cross_entropy));
//   auto opt = client.run(training.optim_step({.learning_rate = 1e-4}));
//   auto out = client.run(fwd.result());
//
// Every awaitable of the library can be passed to run(); the clients it returns are used with the
// same blocking_client and must not outlive it. Everything runs on the caller's thread, so nothing is shared between
// threads. Background work (polls of submitted futures, session heartbeats) progresses only while
// some run() is in progress: when the program pauses for minutes between calls, call idle() now and
// then, or the server may end the session (it does after about 5 minutes without heartbeats).
#pragma once

#include <tinker/client/service_client.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <exception>
#include <optional>
#include <utility>

namespace tinker {

class blocking_client {
public:
  /// Every option from the environment (TINKER_BASE_URL, TINKER_API_KEY, ...).
  blocking_client() : blocking_client(client_options()) {}
  /// Throws tinker::invalid_argument for unusable options (no API key, malformed URL).
  explicit blocking_client(client_options options) : service_(io_.get_executor(), std::move(options)) {}

  blocking_client(const blocking_client&) = delete;
  blocking_client& operator=(const blocking_client&) = delete;

  ~blocking_client() {
    service_.close();
    io_.restart();
    io_.poll();  // let cancelled operations finish while everything they use is alive
  }

  service_client& service() noexcept { return service_; }

  /// Runs `task` to completion on this thread and returns its result (or rethrows its exception).
  /// Must not be called from inside another run() of the same blocking_client.
  template <class T>
  T run(boost::asio::awaitable<T> task) {
    std::optional<T> result;
    std::exception_ptr error;
    bool done = false;
    boost::asio::co_spawn(io_, std::move(task), [&](std::exception_ptr e, T value) {
      error = e;
      if (!e) result.emplace(std::move(value));
      done = true;
    });
    drive(done);
    if (error) std::rethrow_exception(error);
    return std::move(*result);
  }

  void run(boost::asio::awaitable<void> task) {
    std::exception_ptr error;
    bool done = false;
    boost::asio::co_spawn(io_, std::move(task), [&](std::exception_ptr e) {
      error = e;
      done = true;
    });
    drive(done);
    if (error) std::rethrow_exception(error);
  }

  /// Lets background work (heartbeats, polls) run for `duration`, then returns.
  template <class Rep, class Period>
  void idle(std::chrono::duration<Rep, Period> duration) {
    io_.restart();
    io_.run_for(duration);
  }

  boost::asio::io_context& context() noexcept { return io_; }

private:
  void drive(const bool& done) {
    if (running_) throw tinker::invalid_argument("blocking_client::run called from inside another run()");
    running_ = true;
    struct reset {
      bool& flag;
      ~reset() { flag = false; }
    } guard{running_};
    io_.restart();
    // run_one, not run: the heartbeat and idle-connection timers always keep the loop busy.
    while (!done)
      if (io_.run_one() == 0 && !done)
        throw tinker_error("blocking_client::run: the event loop ran out of work before the call finished");
  }

  boost::asio::io_context io_;
  service_client service_;
  bool running_ = false;
};

}  // namespace tinker

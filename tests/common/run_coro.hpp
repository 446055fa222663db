// Running a coroutine to completion in a test: co_spawn on an io_context, run it until the
// coroutine is done, rethrow its exception. A generous limit turns a hang into a failure (it is a
// safety net, not a timing assertion).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <doctest/doctest.h>

#include <chrono>
#include <exception>
#include <optional>

namespace tinker::test {

template <class T>
T run_coro(boost::asio::io_context& io, boost::asio::awaitable<T> task,
           std::chrono::seconds limit = std::chrono::seconds(240)) {
  std::optional<T> result;
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e, T value) {
    error = e;
    if (!e) result.emplace(std::move(value));
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
  REQUIRE_MESSAGE(done, "the coroutine did not finish within " << limit.count() << " s");
  if (error) std::rethrow_exception(error);
  return std::move(*result);
}

inline void run_coro(boost::asio::io_context& io, boost::asio::awaitable<void> task,
                     std::chrono::seconds limit = std::chrono::seconds(240)) {
  std::exception_ptr error;
  bool done = false;
  boost::asio::co_spawn(io, std::move(task), [&](std::exception_ptr e) {
    error = e;
    done = true;
  });
  const auto deadline = std::chrono::steady_clock::now() + limit;
  io.restart();
  while (!done && std::chrono::steady_clock::now() < deadline) io.run_one_for(std::chrono::milliseconds(100));
  REQUIRE_MESSAGE(done, "the coroutine did not finish within " << limit.count() << " s");
  if (error) std::rethrow_exception(error);
}

}  // namespace tinker::test

// tinker::local::engine and embedded_engine: the definitions (see tinker/detail/config.hpp).
#pragma once

#include <tinker/local/detail/engine_impl.hpp>
#include <tinker/local/engine.hpp>

#include <memory>
#include <string>
#include <utility>

namespace tinker::local {

TINKER_DECL engine::engine(boost::asio::any_io_executor executor) : engine(std::move(executor), engine_options()) {}

TINKER_DECL engine::engine(boost::asio::any_io_executor executor, engine_options options)
    : impl_(std::make_shared<detail::engine_impl>(std::move(executor), std::move(options))) {}

TINKER_DECL engine::~engine() { impl_->stop(); }

TINKER_DECL void engine::start() { impl_->start(); }
TINKER_DECL void engine::stop() { impl_->stop(); }
TINKER_DECL std::uint16_t engine::port() const { return impl_->port(); }
TINKER_DECL std::string engine::base_url() const { return impl_->base_url(); }
TINKER_DECL void engine::set_faults(fault_options faults) { impl_->core().set_faults(std::move(faults)); }
TINKER_DECL void engine::run_maintenance() { impl_->core().run_maintenance(); }
TINKER_DECL void engine::join_compute() { impl_->core().join_compute(); }
TINKER_DECL const std::filesystem::path& engine::data_dir() const { return impl_->core().data_dir(); }

TINKER_DECL embedded_engine::embedded_engine() : embedded_engine(engine_options()) {}

TINKER_DECL embedded_engine::embedded_engine(engine_options options)
    : work_(io_.get_executor()), engine_(std::make_unique<engine>(io_.get_executor(), std::move(options))) {
  engine_->start();
  thread_ = std::thread([this] { io_.run(); });
}

TINKER_DECL embedded_engine::~embedded_engine() {
  call([this] { engine_->stop(); });
  work_.reset();
  io_.stop();
  thread_.join();
  // Compute tasks still running post their results to io_: let them finish while io_ is alive.
  engine_->join_compute();
  engine_.reset();
}

TINKER_DECL std::string embedded_engine::base_url() const {
  return call([this] { return engine_->base_url(); });
}
TINKER_DECL std::uint16_t embedded_engine::port() const {
  return call([this] { return engine_->port(); });
}
TINKER_DECL void embedded_engine::set_faults(fault_options faults) {
  call([&] { engine_->set_faults(std::move(faults)); });
}
TINKER_DECL void embedded_engine::run_maintenance() {
  call([this] { engine_->run_maintenance(); });
}
TINKER_DECL std::filesystem::path embedded_engine::data_dir() const {
  return call([this] { return engine_->data_dir(); });
}

}  // namespace tinker::local

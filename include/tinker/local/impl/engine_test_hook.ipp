// tinker::local::engine_test_hook: the definitions (see tinker/detail/config.hpp).
#pragma once

#include <tinker/local/detail/engine_impl.hpp>
#include <tinker/local/engine_test_hook.hpp>

namespace tinker::local {

TINKER_DECL std::uint64_t engine_test_hook::read(
    const std::function<std::uint64_t(const detail::engine_core&)>& reader) const {
  if (embedded_) return embedded_->call([&] { return reader(embedded_->engine_->impl_->core()); });
  return reader(engine_->impl_->core());
}

TINKER_DECL std::uint64_t engine_test_hook::request_count(const std::string& route) const {
  return read([&](const detail::engine_core& c) { return c.requests.route_count(route); });
}

TINKER_DECL std::size_t engine_test_hook::future_count() const {
  return read([](const detail::engine_core& c) { return c.futures.size(); });
}

TINKER_DECL std::size_t engine_test_hook::loaded_model_count() const {
  return read([](const detail::engine_core& c) { return c.models.size(); });
}

TINKER_DECL std::size_t engine_test_hook::pending_sample_count() const {
  return read([](const detail::engine_core& c) { return c.pending_sample_count(); });
}

TINKER_DECL std::size_t engine_test_hook::completion_log_count() const {
  return read([](const detail::engine_core& c) { return c.futures.log_count(); });
}

TINKER_DECL std::uint64_t engine_test_hook::sample_batch_count() const {
  return read([](const detail::engine_core& c) { return c.sample_batch_count(); });
}

}  // namespace tinker::local

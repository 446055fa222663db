// Endpoints of training runs and checkpoints: weights_info, the run and checkpoint listings,
// deleting, publishing, TTLs, and archives (a signed, expiring URL; the download behind it needs
// no API key).
#pragma once

#include <tinker/detail/tar_writer.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/local/detail/engine_core.hpp>
#include <tinker/local/detail/rest_support.hpp>

#include <boost/beast/http/field.hpp>

#include <algorithm>
#include <chrono>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tinker::local::detail::endpoints {

namespace checkpoint_detail {

/// The checkpoint a `/training_runs/{run}/checkpoints/{kind}/{name}[/...]` route names.
inline tinker_path checkpoint_path_of(const parsed_target& t) {
  std::string error;
  auto p =
      tinker_path::try_parse("tinker://" + t.api_segment(1) + "/" + t.api_segment(3) + "/" + t.api_segment(4), &error);
  if (!p)
    throw http_error(400, "invalid checkpoint id '" +
                              tinker_path::printable(t.api_segment(3) + "/" + t.api_segment(4)) + "': " + error);
  return *p;
}

inline training_run to_training_run(const engine_core& core, const run_record& r) {
  training_run t;
  t.training_run_id = r.id;
  t.base_model = r.base_model;
  t.model_owner = r.owner;
  t.is_lora = true;
  t.corrupted = r.corrupted;
  t.lora_rank = r.lora.rank;
  t.last_request_time = r.last_request_time;
  t.user_metadata = r.user_metadata;
  t.last_checkpoint = core.checkpoints.latest(r.id, checkpoint_kind::weights);
  t.last_sampler_checkpoint = core.checkpoints.latest(r.id, checkpoint_kind::sampler_weights);
  return t;
}

}  // namespace checkpoint_detail

inline http_response weights_info(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<weights_info_request>(ctx);
  const auto& c = core.checkpoints.readable(ctx.tenant, tinker_path::parse(req.tinker_path));
  const auto& run = core.runs.at(c.run_id);
  return json_response(
      ctx, 200,
      boost::json::value_from(weights_info_response{run.base_model, true, run.lora.rank, run.lora.train_unembed,
                                                    run.lora.train_mlp, run.lora.train_attn}));
}

inline http_response list_training_runs(engine_core& core, request_context& ctx) {
  const auto limit = query_int(ctx.target, "limit", 20, 1, 10'000);
  const auto offset = query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  const auto scope = ctx.target.query_value("access_scope").value_or("owned");
  if (scope != "owned" && scope != "accessible")
    throw http_error(400, "access_scope must be owned or accessible, got '" + scope + "'");
  // project_id: only runs created in the caller's sessions of that project.
  const auto project = ctx.target.query_value("project_id");
  if (project && project->empty()) throw http_error(400, "query parameter project_id must not be empty");
  std::set<std::string> public_runs;
  if (scope == "accessible")
    for (const auto& [key, c] : core.checkpoints.all())
      if (c.is_public) public_runs.insert(c.run_id);
  auto in_project = [&](const run_record& r) {
    if (!project) return true;
    const auto* s = core.sessions.find(r.session_id);
    return s && s->record.owner == ctx.tenant && s->record.project_id == *project;
  };
  std::vector<const run_record*> runs;
  for (const auto& [id, r] : core.runs)
    if ((r.owner == ctx.tenant || public_runs.contains(id)) && in_project(r)) runs.push_back(&r);
  std::sort(runs.begin(), runs.end(),
            [](auto* a, auto* b) { return a->created > b->created || (a->created == b->created && a->id < b->id); });
  training_runs_response resp;
  resp.cursor = cursor{offset, limit, static_cast<std::int64_t>(runs.size())};
  for (const auto* r : page(runs, offset, limit))
    resp.training_runs.push_back(checkpoint_detail::to_training_run(core, *r));
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response get_training_run(engine_core& core, request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = core.runs.find(id);
  const bool visible = it != core.runs.end() && (it->second.owner == ctx.tenant || core.checkpoints.has_public(id));
  if (!visible) throw http_error(404, "unknown training run " + id);
  return json_response(ctx, 200, boost::json::value_from(checkpoint_detail::to_training_run(core, it->second)));
}

inline http_response list_checkpoints(engine_core& core, request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto run = core.runs.find(id);
  std::vector<checkpoint> out;
  for (const auto& [key, c] : core.checkpoints.all())
    if (c.run_id == id && (c.owner == ctx.tenant || c.is_public)) out.push_back(c.to_checkpoint());
  if (run == core.runs.end() || (run->second.owner != ctx.tenant && out.empty()))
    throw http_error(404, "unknown training run " + id);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time > b.time; });
  const auto n = static_cast<std::int64_t>(out.size());
  return json_response(ctx, 200, boost::json::value_from(checkpoints_list_response{std::move(out), cursor{0, n, n}}));
}

inline http_response list_user_checkpoints(engine_core& core, request_context& ctx) {
  const auto limit = query_int(ctx.target, "limit", 100, 1, 10'000);
  const auto offset = query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  std::vector<checkpoint> all;
  for (const auto& [key, c] : core.checkpoints.all())
    if (c.owner == ctx.tenant) all.push_back(c.to_checkpoint());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.time > b.time || (a.time == b.time && a.tinker_path < b.tinker_path);
  });
  const auto total = static_cast<std::int64_t>(all.size());
  return json_response(ctx, 200,
                       boost::json::value_from(checkpoints_list_response{page(std::move(all), offset, limit),
                                                                         cursor{offset, limit, total}}));
}

inline http_response delete_checkpoint(engine_core& core, request_context& ctx) {
  const auto path = checkpoint_detail::checkpoint_path_of(ctx.target);
  core.delete_checkpoint(core.checkpoints.owned(ctx.tenant, path), "user_request");
  return json_response(ctx, 200, boost::json::object{});
}

namespace checkpoint_detail {

/// Publishing is idempotent (publishing a public checkpoint answers 200): a 409 would make the SDK
/// retry for five minutes.
inline http_response set_published(engine_core& core, request_context& ctx, bool publish) {
  auto& c = core.checkpoints.owned(ctx.tenant, checkpoint_path_of(ctx.target));
  if (core.checkpoints.set_public(c, publish))
    core.audit.record(ctx.tenant, core.now_ts(), publish ? "checkpoint_publish" : "checkpoint_unpublish", c.path());
  return json_response(ctx, 200, boost::json::object{});
}

}  // namespace checkpoint_detail

inline http_response publish_checkpoint(engine_core& core, request_context& ctx) {
  return checkpoint_detail::set_published(core, ctx, true);
}

inline http_response unpublish_checkpoint(engine_core& core, request_context& ctx) {
  return checkpoint_detail::set_published(core, ctx, false);
}

inline http_response set_checkpoint_ttl(engine_core& core, request_context& ctx) {
  const auto req = decode_json_body<set_checkpoint_ttl_request>(ctx);
  check_ttl(req.ttl_seconds, "ttl_seconds (null removes the expiry)");
  auto& c = core.checkpoints.owned(ctx.tenant, checkpoint_detail::checkpoint_path_of(ctx.target));
  core.checkpoints.set_expiry(
      c, req.ttl_seconds ? std::optional(core.now_ts() + std::chrono::seconds(*req.ttl_seconds)) : std::nullopt);
  boost::json::object details;
  if (req.ttl_seconds) {
    details["ttl_seconds"] = *req.ttl_seconds;
    details["expires_at"] = format_timestamp(*c.expires_at);
  } else {
    details["ttl_seconds"] = nullptr;
  }
  core.audit.record(ctx.tenant, core.now_ts(), "checkpoint_ttl_set", c.path(), std::nullopt, std::move(details));
  return json_response(ctx, 200, boost::json::object{});
}

/// 302 to a signed, expiring download URL that opens this one checkpoint (and a JSON body with the
/// same URL, the newer contract).
inline http_response checkpoint_archive(engine_core& core, request_context& ctx) {
  const auto path = checkpoint_detail::checkpoint_path_of(ctx.target);
  (void)core.checkpoints.readable(ctx.tenant, path);
  const auto [expires, expires_unix] = signed_url_expiry(core, core.options().download_url_lifetime);
  const auto resource = path.training_run_id + "/" + path.checkpoint_id();
  const auto signature = hmac_sha256_hex(core.storage.secret(), resource + "\n" + expires_unix);
  const auto url =
      public_base(core, ctx) +
      tinker::http::path_of({"downloads", path.training_run_id, to_string(path.kind), path.name + ".tar.gz"}) +
      "?expires=" + expires_unix + "&signature=" + signature;
  core.audit.record(ctx.tenant, core.now_ts(), "checkpoint_read", path, "archive_download",
                    boost::json::object{{"url_expires_at", format_timestamp(timestamp(expires))}});
  auto res = json_response(ctx, 302, boost::json::value_from(checkpoint_archive_url_response{url, timestamp(expires)}));
  res.set(boost::beast::http::field::location, url);
  res.set(boost::beast::http::field::expires, http_date(expires));
  return res;
}

/// GET /downloads/<run>/<kind>/<name>.tar.gz?expires=<unix seconds>&signature=<hmac>: the archive.
inline asio::awaitable<http_response> download(engine_core& core, request_context& ctx) {
  const auto& s = ctx.target.segments;
  if (s.size() != 4 || !s[3].ends_with(".tar.gz")) throw http_error(404, "no such download");
  const auto name = s[3].substr(0, s[3].size() - 7);
  const auto resource = s[1] + "/" + s[2] + "/" + name;
  check_signed_url(core, ctx, resource + "\n", "download");
  auto path = tinker_path::try_parse("tinker://" + resource);
  if (!path) throw http_error(404, "no such download");
  // Reading the files, tar and gzip run on the compute pool: the I/O thread keeps serving polls.
  // Meanwhile the checkpoint may be deleted or overwritten (saved again under its name): the
  // archive is checked against the record afterwards and rebuilt, so it never mixes two versions.
  std::string archive;
  for (int attempt = 0;; ++attempt) {
    const auto* record = core.checkpoints.find(*path);
    if (!record) throw http_error(404, "checkpoint " + path->str() + " no longer exists");
    const auto version = record->time;
    auto build = [&core, c = *record]() -> std::optional<std::string> {
      std::vector<std::pair<std::string, std::string>> files;
      try {
        for (auto& [file, contents] : core.checkpoints.files(c, false)) files.emplace_back(file, std::move(contents));
      } catch (const http_error&) {
        return std::nullopt;  // a file went away: deleted or being replaced
      }
      const auto mtime = std::chrono::duration_cast<std::chrono::seconds>(c.time.time_since_epoch()).count();
      return tinker::http::gzip_compress(tinker::detail::make_tar(files, mtime));
    };
    auto built = co_await core.compute(std::move(build));
    const auto* now = core.checkpoints.find(*path);
    if (built && now && now->time == version) {
      archive = std::move(*built);
      break;
    }
    if (!now) throw http_error(404, "checkpoint " + path->str() + " was deleted while its archive was built");
    if (attempt == 3)
      throw http_error(404, "checkpoint " + path->str() + " keeps changing while its archive is built; try again");
  }
  auto res = make_response(ctx.request, 200);
  res.set(boost::beast::http::field::content_type, "application/gzip");
  res.set(boost::beast::http::field::content_disposition, attachment(name + ".tar.gz"));
  res.body() = std::move(archive);
  res.prepare_payload();
  co_return res;
}

}  // namespace tinker::local::detail::endpoints

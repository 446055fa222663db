// Local engine endpoints: the REST surface (weights_info, training runs, checkpoints, publishing,
// TTLs, archives and their signed downloads, sessions, session projects and trace exports).
#pragma once

#include <tinker/detail/tar_writer.hpp>
#include <tinker/http/gzip.hpp>
#include <tinker/local/detail/engine_impl.hpp>

#include <ctime>

namespace tinker::local::detail {

namespace rest_detail {

/// RFC 7231 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
inline std::string http_date(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}

inline std::int64_t query_int(const parsed_target& t, const std::string& key, std::int64_t fallback, std::int64_t min,
                              std::int64_t max) {
  auto v = t.query_value(key);
  if (!v) return fallback;
  std::int64_t x = 0;
  auto r = std::from_chars(v->data(), v->data() + v->size(), x);
  if (r.ec != std::errc{} || r.ptr != v->data() + v->size() || x < min || x > max)
    throw http_error(400, "query parameter " + key + " must be an integer in [" + std::to_string(min) + ", " +
                              std::to_string(max) + "], got '" + *v + "'");
  return x;
}

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

/// A Content-Disposition for a download named `file`: names may hold quotes, spaces and non-ASCII
/// letters, so the name goes percent-encoded in filename* (RFC 6266), with an ASCII fallback.
inline std::string attachment(std::string_view file) {
  std::string fallback;
  for (const char c : file) {
    const auto u = static_cast<unsigned char>(c);
    fallback += u < 0x20 || u >= 0x7f || c == '"' || c == '\\' ? '_' : c;
  }
  return "attachment; filename=\"" + fallback + "\"; filename*=UTF-8''" + tinker::http::escape_query_value(file);
}

template <class T>
std::vector<T> page(std::vector<T> all, std::int64_t offset, std::int64_t limit) {
  if (offset >= static_cast<std::int64_t>(all.size())) return {};
  auto first = all.begin() + offset;
  auto last = limit >= static_cast<std::int64_t>(all.end() - first) ? all.end() : first + limit;
  return std::vector<T>(std::make_move_iterator(first), std::make_move_iterator(last));
}

}  // namespace rest_detail

inline training_run engine_impl::to_training_run(const run_record& r) const {
  training_run t;
  t.training_run_id = r.id;
  t.base_model = r.base_model;
  t.model_owner = r.owner;
  t.is_lora = true;
  t.corrupted = r.corrupted;
  t.lora_rank = r.lora.rank;
  t.last_request_time = r.last_request_time;
  t.user_metadata = r.user_metadata;
  for (const auto& [key, c] : checkpoints_) {
    if (c.run_id != r.id) continue;
    auto& slot = c.kind == checkpoint_kind::weights ? t.last_checkpoint : t.last_sampler_checkpoint;
    if (!slot || slot->time < c.time) slot = c.to_checkpoint();
  }
  return t;
}

inline http_response engine_impl::handle_weights_info(request_context& ctx) {
  const auto req = decode_json_body<weights_info_request>(ctx);
  const auto& c = readable_checkpoint(ctx.tenant, tinker_path::parse(req.tinker_path));
  const auto& run = runs_.at(c.run_id);
  return json_response(
      ctx, 200,
      boost::json::value_from(weights_info_response{run.base_model, true, run.lora.rank, run.lora.train_unembed,
                                                    run.lora.train_mlp, run.lora.train_attn}));
}

inline http_response engine_impl::handle_list_training_runs(request_context& ctx) {
  const auto limit = rest_detail::query_int(ctx.target, "limit", 20, 1, 10'000);
  const auto offset = rest_detail::query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  const auto scope = ctx.target.query_value("access_scope").value_or("owned");
  if (scope != "owned" && scope != "accessible")
    throw http_error(400, "access_scope must be owned or accessible, got '" + scope + "'");
  // project_id: only runs created in the caller's sessions of that project.
  const auto project = ctx.target.query_value("project_id");
  if (project && project->empty()) throw http_error(400, "query parameter project_id must not be empty");
  std::set<std::string> public_runs;
  if (scope == "accessible")
    for (const auto& [key, c] : checkpoints_)
      if (c.is_public) public_runs.insert(c.run_id);
  auto in_project = [&](const run_record& r) {
    if (!project) return true;
    auto s = sessions_.find(r.session_id);
    return s != sessions_.end() && s->second.record.owner == ctx.tenant && s->second.record.project_id == *project;
  };
  std::vector<const run_record*> runs;
  for (const auto& [id, r] : runs_)
    if ((r.owner == ctx.tenant || public_runs.contains(id)) && in_project(r)) runs.push_back(&r);
  std::sort(runs.begin(), runs.end(),
            [](auto* a, auto* b) { return a->created > b->created || (a->created == b->created && a->id < b->id); });
  training_runs_response resp;
  resp.cursor = cursor{offset, limit, static_cast<std::int64_t>(runs.size())};
  for (const auto* r : rest_detail::page(runs, offset, limit)) resp.training_runs.push_back(to_training_run(*r));
  return json_response(ctx, 200, boost::json::value_from(resp));
}

inline http_response engine_impl::handle_get_training_run(request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = runs_.find(id);
  const bool visible = it != runs_.end() && (it->second.owner == ctx.tenant || [&] {
                         for (const auto& [key, c] : checkpoints_)
                           if (c.run_id == id && c.is_public) return true;
                         return false;
                       }());
  if (!visible) throw http_error(404, "unknown training run " + id);
  return json_response(ctx, 200, boost::json::value_from(to_training_run(it->second)));
}

inline http_response engine_impl::handle_list_checkpoints(request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto run = runs_.find(id);
  std::vector<checkpoint> out;
  for (const auto& [key, c] : checkpoints_)
    if (c.run_id == id && (c.owner == ctx.tenant || c.is_public)) out.push_back(c.to_checkpoint());
  if (run == runs_.end() || (run->second.owner != ctx.tenant && out.empty()))
    throw http_error(404, "unknown training run " + id);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time > b.time; });
  const auto n = static_cast<std::int64_t>(out.size());
  return json_response(ctx, 200, boost::json::value_from(checkpoints_list_response{std::move(out), cursor{0, n, n}}));
}

inline http_response engine_impl::handle_list_user_checkpoints(request_context& ctx) {
  const auto limit = rest_detail::query_int(ctx.target, "limit", 100, 1, 10'000);
  const auto offset = rest_detail::query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  std::vector<checkpoint> all;
  for (const auto& [key, c] : checkpoints_)
    if (c.owner == ctx.tenant) all.push_back(c.to_checkpoint());
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.time > b.time || (a.time == b.time && a.tinker_path < b.tinker_path);
  });
  const auto total = static_cast<std::int64_t>(all.size());
  return json_response(ctx, 200,
                       boost::json::value_from(checkpoints_list_response{
                           rest_detail::page(std::move(all), offset, limit), cursor{offset, limit, total}}));
}

inline http_response engine_impl::handle_delete_checkpoint(request_context& ctx) {
  const auto path = rest_detail::checkpoint_path_of(ctx.target);
  delete_checkpoint(owned_checkpoint(ctx.tenant, path), "user_request");
  return json_response(ctx, 200, boost::json::object{});
}

/// Publishing is idempotent (publishing a public checkpoint answers 200): a 409 would make the SDK
/// retry for five minutes.
inline http_response engine_impl::handle_publish(request_context& ctx, bool publish) {
  auto& c = owned_checkpoint(ctx.tenant, rest_detail::checkpoint_path_of(ctx.target));
  if (c.is_public != publish) {
    c.is_public = publish;
    store_.save(c);
    audit(ctx.tenant, publish ? "checkpoint_publish" : "checkpoint_unpublish", c.path());
  }
  return json_response(ctx, 200, boost::json::object{});
}

inline http_response engine_impl::handle_set_ttl(request_context& ctx) {
  const auto req = decode_json_body<set_checkpoint_ttl_request>(ctx);
  check_ttl(req.ttl_seconds, "ttl_seconds (null removes the expiry)");
  auto& c = owned_checkpoint(ctx.tenant, rest_detail::checkpoint_path_of(ctx.target));
  c.expires_at = req.ttl_seconds ? std::optional(now_ts() + std::chrono::seconds(*req.ttl_seconds)) : std::nullopt;
  note_checkpoint_expiry(c);
  store_.save(c);
  boost::json::object details;
  if (req.ttl_seconds) {
    details["ttl_seconds"] = *req.ttl_seconds;
    details["expires_at"] = format_timestamp(*c.expires_at);
  } else {
    details["ttl_seconds"] = nullptr;
  }
  audit(ctx.tenant, "checkpoint_ttl_set", c.path(), std::nullopt, std::move(details));
  return json_response(ctx, 200, boost::json::object{});
}

/// 302 to a signed, expiring download URL that opens this one checkpoint (and a JSON body with the
/// same URL, the newer contract).
inline std::string engine_impl::public_base(const request_context& ctx) const {
  // Where the client reached us (Host), through whatever scheme it used.
  std::string scheme = options_.tls_cert_file ? "https" : "http";
  if (auto p = ctx.request.find("X-Forwarded-Proto"); p != ctx.request.end()) scheme = std::string(p->value());
  auto host = ctx.request.find(http::field::host) != ctx.request.end() ? std::string(ctx.request[http::field::host])
                                                                       : options_.host + ":" + std::to_string(port());
  return scheme + "://" + host;
}

inline http_response engine_impl::handle_archive(request_context& ctx) {
  const auto path = rest_detail::checkpoint_path_of(ctx.target);
  (void)readable_checkpoint(ctx.tenant, path);
  const auto expires =
      std::chrono::time_point_cast<std::chrono::seconds>(options_.clock() + options_.download_url_lifetime);
  const auto expires_unix = std::to_string(expires.time_since_epoch().count());
  const auto resource = path.training_run_id + "/" + path.checkpoint_id();
  const auto signature = hmac_sha256_hex(store_.secret(), resource + "\n" + expires_unix);
  const auto url =
      public_base(ctx) +
      tinker::http::path_of({"downloads", path.training_run_id, to_string(path.kind), path.name + ".tar.gz"}) +
      "?expires=" + expires_unix + "&signature=" + signature;
  audit(ctx.tenant, "checkpoint_read", path, "archive_download",
        boost::json::object{{"url_expires_at", format_timestamp(timestamp(expires))}});
  auto res = json_response(ctx, 302, boost::json::value_from(checkpoint_archive_url_response{url, timestamp(expires)}));
  res.set(http::field::location, url);
  res.set(http::field::expires, rest_detail::http_date(expires));
  return res;
}

inline asio::awaitable<http_response> engine_impl::handle_download(request_context& ctx) {
  // /downloads/<run>/<kind>/<name>.tar.gz?expires=<unix seconds>&signature=<hmac>
  const auto& s = ctx.target.segments;
  if (s.size() != 4 || !s[3].ends_with(".tar.gz")) throw http_error(404, "no such download");
  const auto name = s[3].substr(0, s[3].size() - 7);
  const auto resource = s[1] + "/" + s[2] + "/" + name;
  const auto expires = ctx.target.query_value("expires");
  const auto signature = ctx.target.query_value("signature");
  if (!expires || !signature ||
      !equal_constant_time(*signature, hmac_sha256_hex(store_.secret(), resource + "\n" + *expires)))
    throw http_error(403, "invalid download signature");
  const auto expiry = rest_detail::query_int(ctx.target, "expires", 0, 0, std::numeric_limits<std::int64_t>::max());
  if (std::chrono::system_clock::time_point(std::chrono::seconds(expiry)) <= options_.clock())
    throw http_error(403, "download link expired");
  auto path = tinker_path::try_parse("tinker://" + resource);
  if (!path) throw http_error(404, "no such download");
  const auto key = checkpoint_key(path->training_run_id, path->kind, path->name);
  // Reading the files, tar and gzip run on the compute pool: the I/O thread keeps serving polls.
  // Meanwhile the checkpoint may be deleted or overwritten (saved again under its name): the
  // archive is checked against the record afterwards and rebuilt, so it never mixes two versions.
  std::string archive;
  for (int attempt = 0;; ++attempt) {
    auto it = checkpoints_.find(key);
    if (it == checkpoints_.end()) throw http_error(404, "checkpoint " + path->str() + " no longer exists");
    const auto version = it->second.time;
    auto build = [this, c = it->second]() -> std::optional<std::string> {
      std::vector<std::pair<std::string, std::string>> files;
      try {
        for (auto& [file, contents] : read_checkpoint_files(c, false)) files.emplace_back(file, std::move(contents));
      } catch (const http_error&) {
        return std::nullopt;  // a file went away: deleted or being replaced
      }
      const auto mtime = std::chrono::duration_cast<std::chrono::seconds>(c.time.time_since_epoch()).count();
      return tinker::http::gzip_compress(tinker::detail::make_tar(files, mtime));
    };
    auto built = co_await compute(std::move(build));
    auto now = checkpoints_.find(key);
    if (built && now != checkpoints_.end() && now->second.time == version) {
      archive = std::move(*built);
      break;
    }
    if (now == checkpoints_.end())
      throw http_error(404, "checkpoint " + path->str() + " was deleted while its archive was built");
    if (attempt == 3)
      throw http_error(404, "checkpoint " + path->str() + " keeps changing while its archive is built; try again");
  }
  auto res = make_response(ctx.request, 200);
  res.set(http::field::content_type, "application/gzip");
  res.set(http::field::content_disposition, rest_detail::attachment(name + ".tar.gz"));
  res.body() = std::move(archive);
  res.prepare_payload();
  co_return res;
}

inline http_response engine_impl::handle_list_sessions(request_context& ctx) {
  const auto limit = rest_detail::query_int(ctx.target, "limit", 20, 1, 10'000);
  const auto offset = rest_detail::query_int(ctx.target, "offset", 0, 0, std::numeric_limits<std::int64_t>::max());
  std::vector<const session_record*> mine;
  for (const auto& [id, s] : sessions_)
    if (s.record.owner == ctx.tenant) mine.push_back(&s.record);
  std::sort(mine.begin(), mine.end(),
            [](auto* a, auto* b) { return a->created > b->created || (a->created == b->created && a->id < b->id); });
  list_sessions_response resp;
  for (const auto* s : rest_detail::page(mine, offset, limit)) resp.sessions.push_back(s->id);
  return json_response(ctx, 200, boost::json::value_from(resp));
}

/// PUT /api/v1/sessions/{id}/project {"project_id"}: puts the session (and so its training runs,
/// for GET /api/v1/training_runs?project_id=) into a project; persisted. Setting it again moves it.
inline http_response engine_impl::handle_set_session_project(request_context& ctx) {
  auto& s = owned_session(ctx, ctx.target.api_segment(1));
  const auto req = decode_json_body<set_session_project_request>(ctx);
  if (req.project_id.empty()) throw http_error(400, "project_id must not be empty");
  if (s.record.project_id != req.project_id) {
    s.record.project_id = req.project_id;
    store_.save(s.record);
  }
  return json_response(ctx, 200, boost::json::object{});
}

namespace rest_detail {

/// What a trace export URL's signature covers (distinct from archive URLs, which sign
/// "<run>/<kind>/<name>\n<expires>").
inline std::string trace_signed_text(const std::string& session_id, const std::string& expires_unix) {
  return "trace-export\n" + session_id + "\n" + expires_unix;
}

}  // namespace rest_detail

/// GET /api/v1/sessions/{id}/trace_export: ready at once, with a signed URL (no API key needed,
/// valid for engine_options::trace_url_lifetime) whose GET answers the session's trace document.
inline http_response engine_impl::handle_trace_export(request_context& ctx) {
  const auto& s = owned_session(ctx, ctx.target.api_segment(1));
  const auto expires =
      std::chrono::time_point_cast<std::chrono::seconds>(options_.clock() + options_.trace_url_lifetime);
  const auto expires_unix = std::to_string(expires.time_since_epoch().count());
  const auto signature = hmac_sha256_hex(store_.secret(), rest_detail::trace_signed_text(s.record.id, expires_unix));
  trace_export_response resp;
  resp.status = trace_export_status::ready;
  resp.url = public_base(ctx) + tinker::http::path_of({"downloads", "traces", s.record.id + ".json"}) +
             "?expires=" + expires_unix + "&signature=" + signature;
  return json_response(ctx, 200, boost::json::value_from(resp));
}

/// GET /downloads/traces/<session>.json?expires=&signature=: the session's trace as JSON (its
/// training runs and samplers with the requests that named them, per route, and its heartbeats;
/// counts are since this engine started).
inline http_response engine_impl::handle_trace_download(request_context& ctx) {
  const auto& file = ctx.target.segments.at(2);
  if (!file.ends_with(".json")) throw http_error(404, "no such trace");
  const auto session_id = file.substr(0, file.size() - 5);
  const auto expires = ctx.target.query_value("expires");
  const auto signature = ctx.target.query_value("signature");
  if (!expires || !signature ||
      !equal_constant_time(*signature,
                           hmac_sha256_hex(store_.secret(), rest_detail::trace_signed_text(session_id, *expires))))
    throw http_error(403, "invalid trace export signature");
  const auto expiry = rest_detail::query_int(ctx.target, "expires", 0, 0, std::numeric_limits<std::int64_t>::max());
  if (std::chrono::system_clock::time_point(std::chrono::seconds(expiry)) <= options_.clock())
    throw http_error(403, "trace export link expired");
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) throw http_error(404, "session " + session_id + " no longer exists");
  const auto& s = it->second;
  auto counts_of = [this](const std::string& id) {
    boost::json::object counts;
    if (auto c = id_request_counts_.find(id); c != id_request_counts_.end())
      for (const auto& [route, n] : c->second) counts[route] = n;
    return counts;
  };
  boost::json::array runs;
  for (const auto& run_id : s.record.training_run_ids) {
    boost::json::object o{{"training_run_id", run_id}, {"request_counts", counts_of(run_id)}};
    if (auto r = runs_.find(run_id); r != runs_.end()) {
      o["base_model"] = r->second.base_model;
      o["lora_rank"] = r->second.lora.rank;
      o["created"] = format_timestamp(r->second.created);
      o["last_request_time"] = format_timestamp(r->second.last_request_time);
    }
    o["loaded"] = models_.contains(run_id);
    runs.push_back(std::move(o));
  }
  boost::json::array samplers;
  for (const auto& sampler_id : s.record.sampler_ids) {
    boost::json::object o{{"sampler_id", sampler_id}, {"request_counts", counts_of(sampler_id)}};
    if (auto r = samplers_.find(sampler_id); r != samplers_.end()) {
      o["base_model"] = r->second.record.base_model;
      if (r->second.record.model_path) o["model_path"] = *r->second.record.model_path;
      o["created"] = format_timestamp(r->second.record.created);
    }
    samplers.push_back(std::move(o));
  }
  boost::json::object doc{{"format", "tinker-local-trace/1"},
                          {"session_id", s.record.id},
                          {"created", format_timestamp(s.record.created)},
                          {"exported_at", format_timestamp(now_ts())},
                          {"sdk_version", s.record.sdk_version},
                          {"tags", json::detail::to_value(s.record.tags)},
                          {"user_metadata", json::detail::to_value(s.record.user_metadata)},
                          {"heartbeat_count", s.heartbeats},
                          {"training_runs", std::move(runs)},
                          {"samplers", std::move(samplers)}};
  if (s.record.project_id) doc["project_id"] = *s.record.project_id;
  if (s.record.finished_at) doc["finished_at"] = format_timestamp(*s.record.finished_at);
  auto res = json_response(ctx, 200, doc);
  res.set(http::field::content_disposition, rest_detail::attachment(file));
  return res;
}

inline http_response engine_impl::handle_get_session(request_context& ctx) {
  const auto& id = ctx.target.api_segment(1);
  auto it = sessions_.find(id);
  if (it == sessions_.end() || it->second.record.owner != ctx.tenant) throw http_error(404, "unknown session " + id);
  return json_response(
      ctx, 200,
      boost::json::value_from(get_session_response{it->second.record.training_run_ids, it->second.record.sampler_ids}));
}

}  // namespace tinker::local::detail

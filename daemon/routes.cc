// The routes modelmux answers itself (health, models, metrics, status, admin) and the front
// door of the proxied ones: client keys, exact-path dispatch, errors in the route's protocol.
#include "modelmux/routes.h"

#include "modelmux/json.h"
#include "modelmux/protocol.h"
#include "modelmux/status_page.h"

#include <openssl/crypto.h>

namespace modelmux {

namespace {

bool same_secret(std::string_view a, const std::string& b) {
  // Constant time in the key's content, so a wrong guess says nothing about the right one.
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

// The key a request presents: "Authorization: Bearer KEY" or "x-api-key: KEY".
std::optional<std::string_view> presented_key(const HttpRequest& req) {
  const std::string_view bearer = req.header("Authorization");
  if (bearer.size() > 7 && (bearer.substr(0, 7) == "Bearer " || bearer.substr(0, 7) == "bearer ")) {
    return bearer.substr(7);
  }
  const std::string_view api_key = req.header("x-api-key");
  if (!api_key.empty()) {
    return api_key;
  }
  return std::nullopt;
}

// Admin writes: 403 when no admin_key is configured, whatever is sent; 401 on a missing or
// wrong one (compared in constant time).
bool admin_or_error(const Snapshot& snapshot, const HttpRequest& req, HttpResponse& res) {
  const auto& admin = snapshot.config->auth.admin_key;
  if (!admin || admin->value.empty()) {
    set_error(res, Protocol::openai,
              make_error(ErrorKind::permission,
                         "admin writes are disabled: no auth.admin_key is configured"));
    return false;
  }
  const auto key = presented_key(req);
  if (!key || !same_secret(*key, admin->value)) {
    set_error(res, Protocol::openai,
              make_error(ErrorKind::authentication, "missing or wrong admin key"));
    return false;
  }
  return true;
}

// GET /api/models/custom: every custom model, from the config and the API, never a key.
std::string custom_models_body(const Snapshot& snapshot) {
  std::string out;
  JsonWriter w(out);
  w.begin_object().field("object", "list").key("data").begin_array();
  for (const auto& m : snapshot.config->custom_models) {
    w.begin_object().field("id", std::string_view("custom:" + m.id));
    w.field("source", m.from_api ? "api" : "config");
    w.field("type", to_string(m.endpoint.type));
    w.field("endpoint", std::string_view(m.endpoint.base_url));
    w.field("model", std::string_view(m.model));
    if (!m.display_name.empty()) {
      w.field("display_name", std::string_view(m.display_name));
    }
    w.key("context_window");
    if (m.context_window) {
      w.value(*m.context_window);
    } else {
      w.null();
    }
    w.field("has_api_key", !m.endpoint.api_keys.empty());
    w.end_object();
  }
  w.end_array().end_object();
  return out;
}

// The read routes other than /health take the client key when one is configured.
bool authorized_or_401(const Snapshot& snapshot, const HttpRequest& req, HttpResponse& res) {
  if (client_authorized(snapshot.config->auth, req)) {
    return true;
  }
  set_error(res, Protocol::openai,
            make_error(ErrorKind::authentication, "missing or wrong client key"));
  return false;
}

std::vector<NamedReport> health_reports(const Snapshot& snapshot,
                                        std::chrono::steady_clock::time_point now) {
  std::vector<NamedReport> reports;
  for (const auto& v : target_views(snapshot)) {
    reports.push_back({v.name, v.health->report(now)});
  }
  return reports;
}

std::string health_body(const App& app, const Snapshot& snapshot) {
  const auto now = std::chrono::steady_clock::now();
  std::optional<SharedStatus> shared;
  if (const auto* link = app.shared()) {
    shared = link->status();
  }
  return health_json(health_reports(snapshot, now), now, std::chrono::system_clock::now(),
                     shared ? &*shared : nullptr);
}

std::string monitoring_body(const App& app, const Snapshot& snapshot) {
  const auto reports = health_reports(snapshot, std::chrono::steady_clock::now());
  std::vector<std::string> issues;
  for (const auto& [target, r] : reports) {
    if (r.state != TargetState::healthy) {
      issues.push_back(target + " is " + std::string(to_string(r.state)) +
                       (r.reason.empty() ? "" : ": " + r.reason));
    }
  }
  return app.monitoring_json(health_status(reports), issues);
}

} // namespace

bool client_authorized(const AuthConfig& auth, const HttpRequest& req) {
  if (auth.client_keys.empty()) {
    return true;
  }
  const auto presented = presented_key(req);
  if (!presented) {
    return false;
  }
  bool match = false;
  for (const auto& k : auth.client_keys) {
    match = same_secret(*presented, k.value) || match; // no early exit: constant time
  }
  return match;
}

namespace {

// "custom", "alias", "modelmux" for auto, else the provider.
std::string owner_of(const Registry& registry, const std::string& name) {
  if (name.rfind("custom:", 0) == 0) {
    return "custom";
  }
  if (registry.alias(name) != nullptr) {
    return "alias";
  }
  if (name == "auto") {
    return "modelmux";
  }
  return name.substr(0, name.find(':'));
}

// One entry of the model list, in OpenAI's shape or Anthropic's.
void write_model_entry(JsonWriter& w, const Registry& registry, const std::string& name,
                       bool anthropic_shape) {
  if (anthropic_shape) {
    w.begin_object().field("type", "model").field("id", std::string_view(name));
    std::string display = name;
    if (const auto* t = registry.custom(name.rfind("custom:", 0) == 0 ? name.substr(7) : "")) {
      display = t->display_name;
    }
    w.field("display_name", std::string_view(display));
    w.field("created_at", "1970-01-01T00:00:00Z").end_object();
    return;
  }
  w.begin_object().field("id", std::string_view(name)).field("object", "model");
  w.field("created", int64_t{0}).field("owned_by", std::string_view(owner_of(registry, name)));
  w.end_object();
}

} // namespace

std::string models_list_body(const Registry& registry, bool anthropic_shape) {
  std::string out;
  JsonWriter w(out);
  const auto names = registry.addressable_names();
  if (anthropic_shape) {
    w.begin_object().key("data").begin_array();
    for (const auto& n : names) {
      write_model_entry(w, registry, n, true);
    }
    w.end_array().field("has_more", false);
    if (names.empty()) {
      w.key("first_id").null().key("last_id").null();
    } else {
      w.field("first_id", std::string_view(names.front()));
      w.field("last_id", std::string_view(names.back()));
    }
    w.end_object();
    return out;
  }
  w.begin_object().field("object", "list").key("data").begin_array();
  for (const auto& n : names) {
    write_model_entry(w, registry, n, false);
  }
  w.end_array().end_object();
  return out;
}

std::optional<std::string> model_entry_body(const Registry& registry, std::string_view id,
                                            bool anthropic_shape) {
  for (const auto& n : registry.addressable_names()) {
    if (n == id) {
      std::string out;
      JsonWriter w(out);
      write_model_entry(w, registry, n, anthropic_shape);
      return out;
    }
  }
  return std::nullopt;
}

namespace {

bool handle_get(App& m_app, const Snapshot& snap, const HttpRequest& req, HttpResponse& res) {
  const Snapshot* snapshot = &snap;
  if (req.path == "/health") {
    res.set_content(health_body(m_app, *snapshot), "application/json");
    return true;
  }
  if (req.path == "/v1/models") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    const bool anthropic = req.headers.has("anthropic-version");
    res.set_content(models_list_body(*snapshot->registry, anthropic), "application/json");
    return true;
  }
  if (req.path.rfind("/v1/models/", 0) == 0) {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    const std::string id = req.path.substr(11);
    const bool anthropic = req.headers.has("anthropic-version");
    if (auto body = model_entry_body(*snapshot->registry, id, anthropic)) {
      res.set_content(*body, "application/json");
    } else {
      set_error(res, anthropic ? Protocol::anthropic : Protocol::openai,
                make_error(ErrorKind::not_found, "no model named \"" + id + "\"", "model"));
    }
    return true;
  }
  if (req.path == "/metrics") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    res.set_content(m_app.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    return true;
  }
  if (req.path == "/api/models/custom") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    res.set_content(custom_models_body(*snapshot), "application/json");
    return true;
  }
  if (req.path == "/api/models/custom/monitoring") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    res.set_content(monitoring_body(m_app, *snapshot), "application/json");
    return true;
  }
  if (req.path == "/" || req.path == "/ui" || req.path == "/ui/") {
    // The page holds no data; it reads /api/status with the key the user gives it. The policy
    // keeps it from loading or sending anything anywhere else.
    res.headers.set("Content-Security-Policy",
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                    "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
                    "frame-ancestors 'none'");
    res.headers.set("Cache-Control", "no-cache");
    res.set_content(std::string(k_status_page), "text/html; charset=utf-8");
    return true;
  }
  if (req.path == "/api/status") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    res.headers.set("Cache-Control", "no-store");
    res.set_content(m_app.status_json(health_body(m_app, *snapshot)), "application/json");
    return true;
  }
  if (req.path == "/api/usage") {
    if (!authorized_or_401(*snapshot, req, res)) {
      return true;
    }
    std::string period = req.param("period");
    if (period.empty()) {
      period = "month";
    }
    const auto body = m_app.usage_json(period);
    if (!body) {
      set_error(
          res, Protocol::openai,
          make_error(ErrorKind::invalid_request, "period must be day, month or all", "period"));
      return true;
    }
    res.set_content(*body, "application/json");
    return true;
  }
  return false;
}

std::optional<ApiRoute> handle_post(App& m_app, const Snapshot& snap, const HttpRequest& req,
                                    HttpResponse& res) {
  if (req.path == "/api/models/custom") {
    if (!admin_or_error(snap, req, res)) {
      return std::nullopt;
    }
    const auto id = m_app.register_model(req.body);
    if (!id) {
      set_error(res, Protocol::openai, id.error());
      return std::nullopt;
    }
    res.status = 201;
    std::string body;
    JsonWriter(body)
        .begin_object()
        .field("id", std::string_view("custom:" + id.value()))
        .field("model_id", std::string_view("custom:" + id.value())) // the routers' name for it
        .field("registered", true)
        .end_object();
    res.set_content(body, "application/json");
    return std::nullopt;
  }
  const auto route = api_route_from_path(req.path);
  const Protocol protocol = protocol_for_path(req.path);
  if (!route) {
    set_error(res, protocol, make_error(ErrorKind::not_found, "no route for POST " + req.path));
    return std::nullopt;
  }
  if (!client_authorized(snap.config->auth, req)) {
    set_error(res, protocol,
              make_error(ErrorKind::authentication,
                         "missing or wrong client key: send it as \"Authorization: Bearer KEY\" "
                         "or \"x-api-key: KEY\""));
    return std::nullopt;
  }
  return route;
}

void handle_delete(App& m_app, const Snapshot& snap, const HttpRequest& req, HttpResponse& res) {
  const Snapshot* snapshot = &snap;
  const std::string prefix = "/api/models/custom/";
  if (req.path.rfind(prefix, 0) != 0 || req.path.size() == prefix.size()) {
    set_error(res, Protocol::openai,
              make_error(ErrorKind::not_found, "no route for DELETE " + req.path));
    return;
  }
  if (!admin_or_error(*snapshot, req, res)) {
    return;
  }
  std::string id = req.path.substr(prefix.size());
  if (id.rfind("custom:", 0) == 0) {
    id = id.substr(7);
  }
  const auto removed = m_app.remove_model(id);
  if (!removed) {
    set_error(res, Protocol::openai, removed.error());
    return;
  }
  if (!removed.value()) {
    set_error(
        res, Protocol::openai,
        make_error(ErrorKind::not_found, "custom:" + id +
                                             " was not registered through the API (models in the "
                                             "config file are removed by editing it)"));
    return;
  }
  std::string body;
  JsonWriter(body)
      .begin_object()
      .field("id", std::string_view("custom:" + id))
      .field("deleted", true)
      .end_object();
  res.set_content(body, "application/json");
}

} // namespace

Protocol protocol_for_path(std::string_view path) {
  return path.substr(0, 12) == "/v1/messages" ? Protocol::anthropic : Protocol::openai;
}

void set_error(HttpResponse& res, Protocol protocol, const Error& e) {
  res.status = http_status(e.kind);
  res.set_content(error_body(protocol, e), "application/json");
}

std::optional<ApiRoute> route_request(App& app, const Snapshot& snapshot, const HttpRequest& req,
                                      HttpResponse& res) {
  if (req.method == "POST") {
    return handle_post(app, snapshot, req, res);
  }
  if (req.method == "GET" && handle_get(app, snapshot, req, res)) {
    return std::nullopt;
  }
  if (req.method == "HEAD" && (req.path == "/" || req.path == "/health")) {
    // Clients check reachability this way: 200, no body.
    res.status = 200;
    return std::nullopt;
  }
  if (req.method == "DELETE") {
    handle_delete(app, snapshot, req, res);
    return std::nullopt;
  }
  set_error(res, protocol_for_path(req.path),
            make_error(ErrorKind::not_found, "no route for " + req.method + " " + req.path));
  return std::nullopt;
}

} // namespace modelmux

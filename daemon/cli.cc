// Command-line parsing and the check, route and version commands.
#include "modelmux/cli.h"

#include "modelmux/app.h"
#include "modelmux/blocking_client.h"
#include "modelmux/probe.h"
#include "modelmux/report.h"
#include "modelmux/router.h"
#include "modelmux/status.h"
#include "modelmux/text.h"

#include <charconv>
#include <cstdlib>
#include <filesystem>
#include <httplib.h>
#include <iomanip>

namespace modelmux {

namespace {

const std::vector<std::string> k_commands = {"serve",  "check",  "route",    "health",
                                             "report", "status", "loadtest", "version"};

std::string redacted(const Secret& s) {
  return s.source == "inline" ? "(inline, redacted)" : s.source + " (redacted)";
}

std::string keys_summary(const std::vector<Secret>& keys) {
  if (keys.empty()) {
    return "none";
  }
  std::vector<std::string> parts;
  for (const auto& k : keys) {
    parts.push_back(redacted(k));
  }
  return join_alternatives(parts, ", ");
}

std::string where(const Target& t) {
  if (t.endpoint.type == TargetType::mock) {
    return "(answers locally)";
  }
  return t.endpoint.base_url;
}

std::string price(const std::optional<Price>& p) {
  if (!p) {
    return "";
  }
  return "  $" + format_millionths(p->input) + "/$" + format_millionths(p->output) + " per 1M";
}

// "2s", "1.5s", "250ms": a config duration as one would write it.
std::string format_duration(std::chrono::milliseconds d) {
  const auto ms = d.count();
  if (ms % 1000 == 0) {
    return std::to_string(ms / 1000) + "s";
  }
  if (ms < 1000) {
    return std::to_string(ms) + "ms";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%gs", static_cast<double>(ms) / 1000);
  return buf;
}

void print_errors(const std::vector<ConfigError>& errors, std::ostream& err) {
  for (const auto& e : errors) {
    err << to_string(e) << "\n";
  }
  err << errors.size() << (errors.size() == 1 ? " error" : " errors") << "\n";
}

} // namespace

Result<CliArgs> parse_cli(const std::vector<std::string>& argv) {
  CliArgs args;
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    auto value = [&](std::string& into) -> Status {
      if (i + 1 >= argv.size()) {
        return make_error(ErrorKind::invalid_request, a + " needs a value");
      }
      into = argv[++i];
      return ok();
    };
    if (a == "-h" || a == "--help") {
      args.help = true;
    } else if (a == "--version") {
      args.command = "version";
    } else if (a == "-c" || a == "--config") {
      if (auto st = value(args.config_path); !st) {
        return st.error();
      }
    } else if (a.rfind("--config=", 0) == 0) {
      args.config_path = a.substr(9);
    } else if (a == "--policy") {
      if (auto st = value(args.policy); !st) {
        return st.error();
      }
    } else if (a.rfind("--policy=", 0) == 0) {
      args.policy = a.substr(9);
    } else if (a == "--url") {
      if (auto st = value(args.url); !st) {
        return st.error();
      }
    } else if (a.rfind("--url=", 0) == 0) {
      args.url = a.substr(6);
    } else if (a == "--requests" || a == "--concurrency" || a == "-n") {
      std::string v;
      if (auto st = value(v); !st) {
        return st.error();
      }
      int n = 0;
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || end != v.data() + v.size() || n < 1) {
        return make_error(ErrorKind::invalid_request, a + " takes a whole number of at least 1");
      }
      (a == "--concurrency" ? args.concurrency : args.requests) = n;
    } else if (a == "--needs") {
      std::string list;
      if (auto st = value(list); !st) {
        return st.error();
      }
      for (size_t at = 0; at <= list.size();) {
        const size_t end = std::min(list.find(',', at), list.size());
        const auto c = capability_named(std::string_view(list).substr(at, end - at));
        if (!c) {
          return make_error(
              ErrorKind::invalid_request,
              "--needs takes tools, vision, json_schema and reasoning, comma-separated");
        }
        args.needs.add(*c);
        at = end + 1;
      }
    } else if (a == "--stream") {
      args.stream = true;
    } else if (a == "--route") {
      if (auto st = value(args.route); !st) {
        return st.error();
      }
    } else if (a == "--deep") {
      args.deep = true;
    } else if (a == "--json") {
      args.json = true;
    } else if (a == "--month") {
      if (auto st = value(args.month); !st) {
        return st.error();
      }
    } else if (a.rfind("--month=", 0) == 0) {
      args.month = a.substr(8);
    } else if (!a.empty() && a.front() == '-') {
      return make_error(ErrorKind::invalid_request, "unknown option " + a);
    } else if (args.command.empty()) {
      if (std::find(k_commands.begin(), k_commands.end(), a) == k_commands.end()) {
        std::string message = "unknown command \"" + a + "\"";
        const auto near = close_matches(a, k_commands, 1);
        if (!near.empty()) {
          message += " (did you mean \"" + near.front() + "\"?)";
        }
        return make_error(ErrorKind::invalid_request, message);
      }
      args.command = a;
    } else {
      args.positional.push_back(a);
    }
  }
  if (args.command == "route" && args.positional.size() != 1 && !args.help) {
    return make_error(ErrorKind::invalid_request, "route takes exactly one MODEL");
  }
  if (args.command == "loadtest" && args.positional.size() != 1 && !args.help) {
    return make_error(ErrorKind::invalid_request, "loadtest takes exactly one MODEL");
  }
  if (args.command != "route" && args.command != "health" && args.command != "loadtest" &&
      !args.positional.empty()) {
    return make_error(ErrorKind::invalid_request,
                      "unexpected argument \"" + args.positional.front() + "\"");
  }
  return args;
}

std::string resolve_config_path(const CliArgs& args) {
  if (!args.config_path.empty()) {
    return args.config_path;
  }
  if (const char* env = std::getenv("MODELMUX_CONFIG"); env != nullptr && *env != '\0') {
    return env;
  }
  std::error_code ec;
  if (std::filesystem::exists("/etc/modelmux/config.yaml", ec)) {
    return "/etc/modelmux/config.yaml";
  }
  return "./config.yaml";
}

std::string usage(const std::string& command) {
  const std::string config_help =
      "  -c, --config FILE   the config (default: $MODELMUX_CONFIG, then\n"
      "                      /etc/modelmux/config.yaml, then ./config.yaml)\n";
  if (command == "serve") {
    return "usage: modelmux serve [-c FILE]\n\n"
           "Runs the daemon in the foreground until SIGTERM or SIGINT; SIGHUP reloads the\n"
           "config. Logs go to stderr, one line per event.\n\n" +
           config_help;
  }
  if (command == "check") {
    return "usage: modelmux check [-c FILE]\n\n"
           "Validates the config and prints the resolved registry with every secret redacted.\n"
           "Exits 0 when valid, 1 with one FILE:LINE:COL: message line per problem.\n\n" +
           config_help;
  }
  if (command == "route") {
    return "usage: modelmux route [-c FILE] MODEL [--policy P] [--needs CAPS]\n\n"
           "Explains how MODEL resolves: the targets tried, in order, and why, with each\n"
           "target's capabilities and concurrency limit (a busy target is skipped).\n"
           "Exits 1 when MODEL resolves to nothing.\n\n" +
           config_help +
           "  --policy P          as the x-modelmux-policy header: prefer-custom,\n"
           "                      prefer-provider or no-fallback\n"
           "  --needs CAPS        as a request needing them: tools,vision,json_schema,reasoning\n";
  }
  if (command == "health") {
    return "usage: modelmux health [-c FILE] [MODEL...] [--deep]\n\n"
           "Probes each target once (or the targets the MODELs route to) the way the daemon's\n"
           "active checks do, at no token cost: reachable, key accepted, answer well-formed,\n"
           "latency. Prints a table; exits 1 if any target is unhealthy.\n\n" +
           config_help +
           "  --deep              also ask each model for one token (billable), for the targets\n"
           "                      of the MODELs named\n";
  }
  if (command == "report") {
    return "usage: modelmux report [-c FILE] [--month YYYY-MM] [--json]\n\n"
           "The cost and savings report from state_dir/usage.jsonl: per target, requests it\n"
           "served, failed attempts, fallbacks away from it, tokens, cost, what the reference\n"
           "model would have cost, and the savings. The month defaults to the current one\n"
           "(UTC).\n\n" +
           config_help +
           "  --month YYYY-MM     the month to report\n"
           "  --json              JSON instead of a table\n";
  }
  if (command == "loadtest") {
    return "usage: modelmux loadtest [-c FILE | --url URL] MODEL [--requests N] [--concurrency C]\n"
           "                         [--stream] [--route chat|messages|responses] [--json]\n\n"
           "Sends N requests (default 100, at most 100000) for MODEL through a running daemon,\n"
           "C at a time (default 10, at most 256), and prints the success rate, status counts,\n"
           "latency and time-to-first-byte p50/p95/p99, output tokens per second, fallbacks\n"
           "and spills seen, and the cost by the daemon's own accounting. A live progress line\n"
           "goes to stderr. Only the configured daemon or a loopback address is load-tested.\n"
           "Exits 1 if any request failed.\n\n" +
           config_help +
           "  --url URL           the daemon (default: the config's listen address)\n"
           "  --json              the figures as one JSON object, for scripts\n";
  }
  if (command == "status") {
    return "usage: modelmux status [-c FILE] [--url URL]\n\n"
           "Asks a running daemon (GET /api/status) for its targets, traffic, latency, spend\n"
           "and savings, and prints a summary: the status page, for a terminal. The client key,\n"
           "when the daemon wants one, is taken from $MODELMUX_CLIENT_KEY, else from the\n"
           "config's auth.client_keys. Exits 1 when the daemon cannot be reached.\n\n" +
           config_help +
           "  --url URL           the daemon (default: the config's listen address, else\n"
           "                      http://127.0.0.1:8080)\n";
  }
  if (command == "version") {
    return "usage: modelmux version\n\nPrints the version.\n";
  }
  return "usage: modelmux COMMAND [OPTIONS]\n\n"
         "A local reverse proxy with an OpenAI-compatible API: it resolves the model a client\n"
         "names through a YAML registry and forwards to Ollama, vLLM, OpenAI, Anthropic or any\n"
         "compatible server.\n\n"
         "commands:\n"
         "  serve     run the daemon\n"
         "  check     validate the config and print the resolved registry\n"
         "  route     explain how a model name resolves\n"
         "  health    probe the targets once and print their state\n"
         "  report    the cost and savings report from the usage log\n"
         "  status    a running daemon's targets, traffic, spend and savings\n"
         "  loadtest  N requests at concurrency C through a running daemon, with latency,\n"
         "            throughput, fallbacks, spills and cost\n"
         "  version   print the version\n\n"
         "Run modelmux COMMAND --help for a command's options.\n";
}

DaemonAddress daemon_address(const CliArgs& args) {
  DaemonAddress d;
  d.url = args.url;
  if (const char* env = std::getenv("MODELMUX_CLIENT_KEY"); env != nullptr) {
    d.key = env;
  }
  // The config, when it can be read, says where the daemon listens and what key it takes.
  const auto load = load_config_file(resolve_config_path(args), ConfigEnvironment::process());
  if (load.ok()) {
    const auto& l = load.config.listen;
    const std::string host = l.host == "0.0.0.0" || l.host.empty() ? "127.0.0.1"
                             : l.host == "::"                      ? "[::1]"
                                                                   : l.host;
    d.configured = "http://" + host + ":" + std::to_string(l.port);
    if (d.url.empty()) {
      d.url = d.configured;
    }
    if (d.key.empty() && !load.config.auth.client_keys.empty()) {
      d.key = load.config.auth.client_keys.front().value;
    }
  }
  if (d.url.empty()) {
    d.url = "http://127.0.0.1:8080";
  }
  while (!d.url.empty() && d.url.back() == '/') {
    d.url.pop_back();
  }
  return d;
}

int run_status(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const auto daemon = daemon_address(args);
  const std::string& url = daemon.url;
  const std::string& key = daemon.key;
  httplib::Client client(url);
  client.set_connection_timeout(std::chrono::seconds(3));
  client.set_read_timeout(std::chrono::seconds(10));
  httplib::Headers headers;
  if (!key.empty()) {
    headers.emplace("Authorization", "Bearer " + key);
  }
  const auto res = client.Get("/api/status", headers);
  if (!res) {
    err << "modelmux status: cannot reach " << url << ": " << httplib::to_string(res.error())
        << "\n";
    return 1;
  }
  if (res->status == 401) {
    err << "modelmux status: " << url
        << " wants a client key; set MODELMUX_CLIENT_KEY or give the config with -c\n";
    return 1;
  }
  if (res->status != 200) {
    err << "modelmux status: " << url << " answered " << res->status << "\n";
    return 1;
  }
  const auto text = status_text(res->body);
  if (!text) {
    err << "modelmux status: " << text.error().message << "\n";
    return 1;
  }
  out << text.value();
  return 0;
}

int run_version(std::ostream& out) {
  out << "modelmux " << MODELMUX_VERSION << "\n";
  return 0;
}

int run_check(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string path = resolve_config_path(args);
  const auto load = load_snapshot_file(path, ConfigEnvironment::process());
  if (!load.snapshot) {
    print_errors(load.errors, err);
    return 1;
  }
  const auto& c = *load.snapshot->config;
  const auto& r = *load.snapshot->registry;
  out << path << ": valid\n\n";
  out << "listen:    " << c.listen.host << ":" << c.listen.port << "\n";
  out << "state_dir: " << c.state_dir << "\n";
  out << "client keys: " << keys_summary(c.auth.client_keys) << "\n";
  out << "admin key:   "
      << (c.auth.admin_key ? redacted(*c.auth.admin_key) : "not set (admin writes disabled)")
      << "\n\n";
  out << "targets:\n";
  for (const auto& t : r.targets()) {
    out << "  " << std::left << std::setw(24) << t.name << " " << std::setw(13)
        << to_string(t.endpoint.type) << " " << where(t) << "\n";
    if (t.is_custom) {
      out << "      model: " << t.upstream_model << price(t.cost);
      if (t.context_window) {
        out << "  context: " << *t.context_window;
      }
      out << "\n";
      if (!t.fallback.empty()) {
        std::vector<std::string> fb;
        for (const auto& f : t.fallback) {
          fb.push_back(f.text);
        }
        out << "      fallback: " << join_alternatives(fb, ", ") << "\n";
      }
    }
    for (const auto& e : t.catalog) {
      out << "      " << t.name << ":" << e.name << price(e.cost);
      if (e.context_window) {
        out << "  context: " << *e.context_window;
      }
      out << "\n";
    }
    if (t.endpoint.type != TargetType::mock) {
      out << "      keys: " << keys_summary(t.endpoint.api_keys)
          << "  timeout: " << t.timeout.count() << "ms  idle_timeout: " << t.idle_timeout.count()
          << "ms\n";
    }
  }
  if (!r.aliases().empty()) {
    out << "\naliases:\n";
    for (const auto& a : r.aliases()) {
      out << "  " << std::left << std::setw(24) << a.name << " -> " << a.target.text << "\n";
    }
  }
  out << "\nrouting:\n";
  std::vector<std::string> chain;
  for (const auto& ref : c.routing.auto_chain) {
    chain.push_back(ref.text);
  }
  out << "  auto: "
      << (chain.empty() ? "(every custom model, then every catalog entry)"
                        : join_alternatives(chain, ", "))
      << "\n";
  out << "  fallback: " << (c.routing.fallback ? "on" : "off") << "\n";
  if (c.routing.reference_model) {
    out << "  reference_model: " << c.routing.reference_model->text << "\n";
  }
  if (c.routing.passthrough) {
    out << "  passthrough: " << c.routing.passthrough->text << "\n";
  }
  return 0;
}

int run_health(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string path = resolve_config_path(args);
  const auto load = load_snapshot_file(path, ConfigEnvironment::process());
  if (!load.snapshot) {
    print_errors(load.errors, err);
    return 1;
  }
  const auto& snapshot = *load.snapshot;
  // Which targets, and the model to ask each for one token with --deep.
  std::vector<std::pair<const Target*, std::string>> targets;
  auto add = [&](const Target* t, const std::string& model) {
    for (const auto& [seen, m] : targets) {
      if (seen == t) {
        return;
      }
    }
    targets.emplace_back(t, model);
  };
  for (const auto& model : args.positional) {
    const auto route = resolve_route(*snapshot.registry, model);
    if (!route) {
      err << "modelmux health: " << route.error().message << "\n";
      return 1;
    }
    for (const auto& step : route->chain) {
      add(step.target, step.upstream_model);
    }
  }
  if (args.positional.empty()) {
    for (const auto& t : snapshot.registry->targets()) {
      add(&t, t.upstream_model);
    }
  }
  const auto timeout = snapshot.config->health.active_timeout;
  out << std::left << std::setw(32) << "TARGET"
      << " " << std::setw(10) << "STATE"
      << " " << std::setw(9) << "LATENCY"
      << " DETAIL\n";
  bool all_healthy = true;
  for (const auto& [target, model] : targets) {
    auto& pool = *snapshot.pools[target->index];
    auto r = probe_target(*target, pool, timeout);
    if (r.passed && args.deep && !model.empty()) {
      r = deep_probe_target(*target, pool, model, timeout);
    }
    all_healthy = all_healthy && r.passed;
    const std::string latency = r.skipped ? "-" : std::to_string(r.latency.count()) + " ms";
    out << std::left << std::setw(32) << target->name << " " << std::setw(10)
        << (r.passed ? "healthy" : "unhealthy") << " " << std::setw(9) << latency << " " << r.detail
        << "\n";
  }
  return all_healthy ? 0 : 1;
}

int run_report(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string path = resolve_config_path(args);
  const auto load = load_config_file(path, ConfigEnvironment::process());
  if (!load.ok()) {
    print_errors(load.errors, err);
    return 1;
  }
  std::string month = args.month;
  if (month.empty()) {
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    month = rfc3339_utc(now).substr(0, 7);
  }
  if (month.size() != 7 || month[4] != '-') {
    err << "modelmux report: --month takes YYYY-MM\n";
    return 2;
  }
  Report report(month);
  const std::string log_path = load.config.state_dir + "/usage.jsonl";
  const auto read = read_usage_log(log_path, [&](const UsageRecord& r) { report.add(r); });
  if (read.skipped > 0) {
    err << "modelmux report: skipped " << read.skipped << " unreadable line(s) in " << log_path
        << "\n";
  }
  out << (args.json ? report.json() : report.table());
  return 0;
}

int run_route(const CliArgs& args, std::ostream& out, std::ostream& err) {
  const std::string path = resolve_config_path(args);
  const auto load = load_snapshot_file(path, ConfigEnvironment::process());
  if (!load.snapshot) {
    print_errors(load.errors, err);
    return 1;
  }
  const auto policy = parse_policy(args.policy);
  if (!policy) {
    err << "modelmux route: " << policy.error().message << "\n";
    return 1;
  }
  RouteOptions options;
  options.policy = policy.value();
  options.needs = args.needs;
  options.explain = true;
  const std::string& model = args.positional.front();
  const auto route = resolve_route(*load.snapshot->registry, model, options);
  if (!route) {
    err << "modelmux route: " << route.error().message << "\n";
    return 1;
  }
  out << "\"" << model << "\" tries, in order:\n";
  for (size_t i = 0; i < route->chain.size(); ++i) {
    const auto& s = route->chain[i];
    out << "  " << (i + 1) << ". " << std::left << std::setw(32) << s.label << " "
        << to_string(s.target->endpoint.type) << " " << where(*s.target) << "\n";
    const auto& e = s.target->endpoint;
    if (e.capabilities) {
      out << "       can: " << (e.capabilities->empty() ? "text only" : to_string(*e.capabilities))
          << "\n";
    }
    if (const auto limits = e.slot_limits(); limits.max_concurrency > 0) {
      out << "       at most " << limits.max_concurrency << " in flight; then waits in a queue of "
          << limits.max_queue << " for up to " << format_duration(limits.queue_timeout);
      const auto spill = load.snapshot->config->routing.spill_after;
      if (spill.count() > 0) {
        out << ", or moves on at once when its expected wait is over spill_after ("
            << format_duration(spill) << ")";
      }
      out << "; a busy target is skipped, not failed\n";
    }
  }
  out << "because:\n";
  for (const auto& why : route->explanation) {
    out << "  - " << why << "\n";
  }
  for (const auto& s : route->skipped) {
    out << "skipped " << s.label << ": " << s.reason << "\n";
  }
  return 0;
}

} // namespace modelmux

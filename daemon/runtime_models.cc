// Runtime custom models: validation by the config loader, sealed persistence.
#include "modelmux/runtime_models.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace modelmux {

namespace {

// No ${env:...}, ${file:...} or ${cred:...} resolves in an API body.
ConfigEnvironment no_references() {
  ConfigEnvironment env;
  env.getenv = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
  return env;
}

std::string emit(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

// Loads entries (as YAML texts) the way the config loads custom_models.
ConfigLoad load_entries(const std::vector<std::string>& yaml_entries, const std::string& base_dir) {
  YAML::Node doc;
  for (const auto& e : yaml_entries) {
    doc["custom_models"].push_back(YAML::Load(e));
  }
  return load_config_text(emit(doc), base_dir + "/models.yaml", no_references());
}

std::string models_path(const std::string& dir) {
  return dir + "/models.yaml";
}

std::string key_path(const std::string& dir) {
  return dir + "/secret.key";
}

bool ends_with(const std::string& s, std::string_view suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The registration shape of the routers modelmux replaces, {"model_name", "model_id",
// "endpoint_url", "provider", "api_key"}, as a custom_models entry: model_id is the id clients
// address (custom:<model_id>) and the model sent upstream, model_name its display name; an
// endpoint URL ending in /chat/completions or /messages gives the base URL and the protocol.
Result<YAML::Node> from_router_shape(const YAML::Node& in) {
  static const std::vector<std::string> k_fields = {"model_name", "model_id", "endpoint_url",
                                                    "provider", "api_key"};
  YAML::Node out;
  for (const auto& field : in) {
    const auto key = field.first.as<std::string>();
    if (std::find(k_fields.begin(), k_fields.end(), key) == k_fields.end()) {
      return make_error(ErrorKind::invalid_request,
                        key + ": unknown key (this shape takes model_name, model_id, "
                              "endpoint_url, provider and api_key)",
                        key);
    }
    if (!field.second.IsScalar()) {
      return make_error(ErrorKind::invalid_request, key + ": expected a string", key);
    }
  }
  if (!in["model_id"] || !in["endpoint_url"]) {
    return make_error(ErrorKind::invalid_request,
                      "model_id and endpoint_url are required (model_id is what clients send, "
                      "as custom:<model_id>)");
  }
  std::string url = in["endpoint_url"].as<std::string>();
  std::string type;
  for (const auto& [suffix, protocol] :
       {std::pair<std::string_view, std::string_view>{"/chat/completions", "openai"},
        {"/messages", "anthropic"}}) {
    if (ends_with(url, suffix)) {
      url.resize(url.size() - suffix.size());
      type = protocol;
    }
  }
  if (in["provider"]) {
    const auto provider = in["provider"].as<std::string>();
    const std::string named = provider == "openai-compatible"      ? "openai"
                              : provider == "anthropic-compatible" ? "anthropic"
                                                                   : "";
    if (named.empty()) {
      return make_error(ErrorKind::invalid_request,
                        "provider: expected \"openai-compatible\" or \"anthropic-compatible\"",
                        "provider");
    }
    if (!type.empty() && type != named) {
      return make_error(
          ErrorKind::invalid_request,
          "provider: \"" + provider + "\" but endpoint_url is " +
              (type == "anthropic" ? "an Anthropic /messages" : "an OpenAI /chat/completions") +
              " URL",
          "provider");
    }
    type = named;
  }
  out["id"] = in["model_id"].as<std::string>();
  out["model"] = in["model_id"].as<std::string>();
  out["type"] = type.empty() ? std::string("openai") : type;
  out["endpoint"] = url;
  if (in["model_name"]) {
    out["display_name"] = in["model_name"].as<std::string>();
  }
  if (in["api_key"]) {
    out["api_key"] = in["api_key"].as<std::string>();
  }
  return out;
}

} // namespace

Result<RuntimeModels> RuntimeModels::open(const std::string& state_dir) {
  RuntimeModels out;
  out.m_state_dir = state_dir;
  std::ifstream in(models_path(state_dir));
  if (!in) {
    return out; // none registered yet
  }
  std::stringstream text;
  text << in.rdbuf();
  YAML::Node list;
  try {
    list = YAML::Load(text.str());
  } catch (const YAML::Exception& e) {
    return make_error(ErrorKind::internal, models_path(state_dir) + ": " + e.what());
  }
  if (!list.IsDefined() || list.IsNull()) {
    return out;
  }
  std::optional<SecretKey> key;
  for (auto node : list) {
    for (const char* field : {"api_key", "api_keys"}) {
      const std::string sealed_field = std::string(field) + "_sealed";
      const YAML::Node sealed = node[sealed_field];
      if (!sealed) {
        continue;
      }
      if (!key) {
        auto loaded = load_or_create_secret_key(key_path(state_dir));
        if (!loaded) {
          return loaded.error();
        }
        key = loaded.value();
      }
      auto open_one = [&](const YAML::Node& s) -> std::optional<std::string> {
        return open_sealed(*key, s.as<std::string>());
      };
      YAML::Node clear;
      bool ok = true;
      if (sealed.IsSequence()) {
        clear = YAML::Node(YAML::NodeType::Sequence);
        for (const auto& s : sealed) {
          const auto opened = open_one(s);
          ok = ok && opened.has_value();
          clear.push_back(opened.value_or(""));
        }
      } else {
        const auto opened = open_one(sealed);
        ok = opened.has_value();
        clear = opened.value_or("");
      }
      if (!ok) {
        return make_error(ErrorKind::internal,
                          models_path(state_dir) + ": a sealed key of \"" +
                              node["id"].as<std::string>("") +
                              "\" does not open with secret.key (changed, or another key)");
      }
      node.remove(sealed_field);
      node[field] = clear;
    }
    out.m_entries[node["id"].as<std::string>("")] = emit(node);
  }
  return out;
}

Result<std::string> RuntimeModels::add(std::string_view json_body, const Config& config) {
  if (json_body.find("${") != std::string_view::npos) {
    return make_error(ErrorKind::invalid_request,
                      "references (${env:...}, ${file:...}, ${cred:...}) are not taken through "
                      "the API; send values");
  }
  YAML::Node node;
  try {
    node = YAML::Load(std::string(json_body));
  } catch (const YAML::Exception&) {
    return make_error(ErrorKind::invalid_request, "the request body is not valid JSON");
  }
  if (!node.IsMap()) {
    return make_error(ErrorKind::invalid_request,
                      "the request body must be a JSON object shaped like a custom_models entry");
  }
  if (node["model_id"] || node["endpoint_url"] || node["model_name"]) {
    auto converted = from_router_shape(node);
    if (!converted) {
      return converted.error();
    }
    node = converted.value();
  }
  const std::string entry = emit(node);
  const auto load = load_entries({entry}, config.base_dir);
  if (!load.ok()) {
    std::string message;
    for (const auto& e : load.errors) {
      // The entry is the whole body: its fields are named without the synthetic list around it.
      std::string path = e.path;
      const std::string wrapper = "custom_models[0]";
      if (path.rfind(wrapper, 0) == 0) {
        path = path.substr(std::min(path.size(), wrapper.size() + 1));
      }
      message += (message.empty() ? "" : "; ") + (path.empty() ? "" : path + ": ") + e.message;
    }
    return make_error(ErrorKind::invalid_request, message);
  }
  const std::string id = load.config.custom_models.front().id;
  for (const auto& m : config.custom_models) {
    if (m.id == id && !m.from_api) {
      return make_error(ErrorKind::invalid_request,
                        "custom:" + id + " is defined in the config file; choose another id", "id");
    }
  }
  if (m_entries.count(id)) {
    return make_error(ErrorKind::invalid_request,
                      "custom:" + id + " is already registered; DELETE it first", "id");
  }
  m_entries[id] = entry;
  if (auto st = persist(); !st) {
    m_entries.erase(id);
    return st.error();
  }
  return id;
}

Result<bool> RuntimeModels::remove(const std::string& id) {
  const auto it = m_entries.find(id);
  if (it == m_entries.end()) {
    return false;
  }
  const std::string saved = it->second;
  m_entries.erase(it);
  if (auto st = persist(); !st) {
    m_entries[id] = saved;
    return st.error();
  }
  return true;
}

std::vector<CustomModelConfig> RuntimeModels::entries() const {
  std::vector<std::string> texts;
  for (const auto& [id, text] : m_entries) {
    texts.push_back(text);
  }
  auto load = load_entries(texts, m_state_dir.empty() ? "." : m_state_dir);
  for (auto& m : load.config.custom_models) {
    m.from_api = true;
  }
  return load.config.custom_models;
}

Status RuntimeModels::persist() {
  if (m_state_dir.empty()) {
    return ok();
  }
  std::optional<SecretKey> key;
  YAML::Node list(YAML::NodeType::Sequence);
  for (const auto& [id, text] : m_entries) {
    YAML::Node node = YAML::Load(text);
    for (const char* field : {"api_key", "api_keys"}) {
      const YAML::Node keys = node[field];
      if (!keys) {
        continue;
      }
      if (!key) {
        auto loaded = load_or_create_secret_key(key_path(m_state_dir));
        if (!loaded) {
          return loaded.error();
        }
        key = loaded.value();
      }
      YAML::Node sealed;
      if (keys.IsSequence()) {
        sealed = YAML::Node(YAML::NodeType::Sequence);
        for (const auto& k : keys) {
          sealed.push_back(seal(*key, k.as<std::string>()));
        }
      } else {
        sealed = seal(*key, keys.as<std::string>());
      }
      node.remove(field);
      node[std::string(field) + "_sealed"] = sealed;
    }
    list.push_back(node);
  }
  const std::string text = "# Custom models registered through modelmux's admin API. Their keys "
                           "are sealed\n# with AES-256-GCM under secret.key; edit with the API, "
                           "not by hand.\n" +
                           emit(list) + "\n";
  return write_file_atomically(models_path(m_state_dir), text, 0600);
}

} // namespace modelmux

// The shared state's pure parts: names, key fingerprints and the cooldown message.
#include "modelmux/shared_state.h"

#include "modelmux/text.h"

#include <openssl/evp.h>

namespace modelmux {

std::string_view state_name(SharedStatus::State state) {
  switch (state) {
  case SharedStatus::State::connecting:
    return "connecting";
  case SharedStatus::State::up:
    return "up";
  case SharedStatus::State::down:
    return "down";
  }
  return "down";
}

std::string key_fingerprint(std::string_view key) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(key.data(), key.size(), digest, &length, EVP_sha256(), nullptr);
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < 8 && i < length; ++i) {
    out.push_back(k_hex[digest[i] >> 4]);
    out.push_back(k_hex[digest[i] & 15]);
  }
  return out;
}

std::string encode_cooldown(const SharedCooldown& c) {
  return c.entry + '\t' + c.model + '\t' + c.key_id + '\t' + std::to_string(c.until_ms);
}

std::optional<SharedCooldown> decode_cooldown(std::string_view message) {
  std::string_view parts[4];
  for (int i = 0; i < 3; ++i) {
    const size_t tab = message.find('\t');
    if (tab == std::string_view::npos) {
      return std::nullopt;
    }
    parts[i] = message.substr(0, tab);
    message.remove_prefix(tab + 1);
  }
  parts[3] = message;
  const auto until = parse_int(parts[3]);
  if (parts[0].empty() || parts[2].size() != 16 || !until || *until <= 0) {
    return std::nullopt;
  }
  return SharedCooldown{std::string(parts[0]), std::string(parts[1]), std::string(parts[2]),
                        *until};
}

} // namespace modelmux

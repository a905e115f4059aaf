// Secrets at rest: AES-256-GCM (OpenSSL EVP) with a random 96-bit nonce per value, under a
// 32-byte key kept in its own file (mode 0600, made on first use). A sealed value is text,
// "v1:" and base64 of nonce, ciphertext and tag, so it can sit in a YAML file; opening it
// checks the tag, so a changed byte is an error, never a wrong key handed to an upstream.
// Files are replaced atomically: a temporary file, fsync, rename, fsync of the directory.
#pragma once

#include "modelmux/result.h"

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace modelmux {

using SecretKey = std::array<unsigned char, 32>;

// Reads the key at path, or makes one (from the system's random source) if there is none.
Result<SecretKey> load_or_create_secret_key(const std::string& path);

std::string seal(const SecretKey& key, std::string_view plaintext);
// nullopt when the value is not one seal() made with this key, or was changed.
std::optional<std::string> open_sealed(const SecretKey& key, std::string_view sealed);

// Replaces path with content, atomically, with the given mode.
Status write_file_atomically(const std::string& path, std::string_view content, int mode);

} // namespace modelmux

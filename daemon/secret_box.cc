// AES-256-GCM sealing and atomic file replacement.
#include "modelmux/secret_box.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace modelmux {

namespace {

constexpr size_t k_nonce = 12;
constexpr size_t k_tag = 16;

Error io_error(const std::string& what, const std::string& path) {
  return make_error(ErrorKind::internal, what + " " + path + ": " + std::strerror(errno));
}

std::string base64(const unsigned char* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::optional<std::vector<unsigned char>> unbase64(std::string_view text) {
  if (text.empty() || text.size() % 4 != 0) {
    return std::nullopt;
  }
  std::vector<unsigned char> out(text.size() / 4 * 3);
  const int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) {
    return std::nullopt;
  }
  size_t size = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes.
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) {
    --size;
  }
  out.resize(size);
  return out;
}

} // namespace

Result<SecretKey> load_or_create_secret_key(const std::string& path) {
  SecretKey key{};
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    const ssize_t n = ::read(fd, key.data(), key.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(key.size())) {
      return make_error(ErrorKind::internal, "the key file " + path + " is not a 32-byte key");
    }
    return key;
  }
  if (errno != ENOENT) {
    return io_error("cannot read", path);
  }
  if (RAND_bytes(key.data(), static_cast<int>(key.size())) != 1) {
    return make_error(ErrorKind::internal, "the system's random source failed");
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return io_error("cannot create", path);
  }
  const bool written =
      ::write(fd, key.data(), key.size()) == static_cast<ssize_t>(key.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written) {
    return io_error("cannot write", path);
  }
  return key;
}

std::string seal(const SecretKey& key, std::string_view plaintext) {
  std::vector<unsigned char> out(k_nonce + plaintext.size() + k_tag);
  RAND_bytes(out.data(), static_cast<int>(k_nonce));
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), out.data());
  EVP_EncryptUpdate(ctx, out.data() + k_nonce, &len,
                    reinterpret_cast<const unsigned char*>(plaintext.data()),
                    static_cast<int>(plaintext.size()));
  EVP_EncryptFinal_ex(ctx, out.data() + k_nonce + len, &len);
  EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(k_tag),
                      out.data() + k_nonce + plaintext.size());
  EVP_CIPHER_CTX_free(ctx);
  return "v1:" + base64(out.data(), out.size());
}

std::optional<std::string> open_sealed(const SecretKey& key, std::string_view sealed) {
  if (sealed.substr(0, 3) != "v1:") {
    return std::nullopt;
  }
  auto raw = unbase64(sealed.substr(3));
  if (!raw || raw->size() < k_nonce + k_tag) {
    return std::nullopt;
  }
  const size_t size = raw->size() - k_nonce - k_tag;
  std::string plaintext(size, '\0');
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), raw->data()) == 1 &&
            EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(plaintext.data()), &len,
                              raw->data() + k_nonce, static_cast<int>(size)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, static_cast<int>(k_tag),
                                raw->data() + k_nonce + size) == 1;
  ok = ok && EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(plaintext.data()) + len,
                                 &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    return std::nullopt;
  }
  return plaintext;
}

Status write_file_atomically(const std::string& path, std::string_view content, int mode) {
  const std::string temp = path + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    return io_error("cannot create", temp);
  }
  const bool written =
      ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()) &&
      ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return io_error("cannot write", path);
  }
  // The rename is durable once the directory is.
  const auto dir = std::filesystem::path(path).parent_path().string();
  const int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ok();
}

} // namespace modelmux

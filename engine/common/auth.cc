#include "engine/common/auth.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

namespace sluice::auth {

namespace {

constexpr char kHex[] = "0123456789abcdef";

std::string to_hex(std::string_view raw) {
  std::string out;
  out.reserve(raw.size() * 2);
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string call_message(std::string_view method, std::string_view ts, std::string_view nonce) {
  std::string m = "v1|";
  m += method;
  m += '|';
  m += ts;
  m += '|';
  m += nonce;
  return m;
}

}  // namespace

std::string hmac_sha256(std::string_view key, std::string_view msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
            reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len)) {
    throw std::runtime_error("HMAC-SHA256 failed");  // OpenSSL out of memory: nothing sane to do
  }
  return std::string(reinterpret_cast<char*>(out), len);
}

std::string hmac_sha256_hex(std::string_view key, std::string_view msg) { return to_hex(hmac_sha256(key, msg)); }

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    // Still touch the bytes, so the time depends on the length only.
    (void)CRYPTO_memcmp(a.data(), a.data(), a.size());
    return false;
  }
  return a.empty() || CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (n && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    throw std::runtime_error("RAND_bytes failed");
  }
  return out;
}

std::string random_hex(size_t n) { return to_hex(random_bytes(n)); }

Result<std::string> read_secret_file(const std::string& path, bool allow_shared_mode) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::not_found("cannot read secret file '" + path + "'");
  if (!allow_shared_mode && (st.st_mode & 077) != 0) {
    return Status::permission_denied("secret file '" + path + "' is readable by others (mode " +
                                     std::to_string((st.st_mode & 0777) >> 6) + std::to_string((st.st_mode & 070) >> 3) +
                                     std::to_string(st.st_mode & 7) + "); chmod 600 it");
  }
  std::ifstream in(path);
  if (!in) return Status::not_found("cannot read secret file '" + path + "'");
  std::string t;
  std::getline(in, t);
  while (!t.empty() && (t.back() == '\r' || t.back() == ' ' || t.back() == '\t')) t.pop_back();
  if (t.empty()) return Status::invalid_argument("secret file '" + path + "' is empty");
  return t;
}

std::string derive_attempt_key(std::string_view secret, std::string_view job_id, int attempt) {
  std::string m = "sluice-data-plane|";
  m += job_id;
  m += '|';
  m += std::to_string(attempt);
  return hmac_sha256(secret, m);
}

CallAuthenticator::CallAuthenticator(std::string secret, std::chrono::milliseconds window)
    : secret_(std::move(secret)), window_(window) {}

std::string CallAuthenticator::sign(std::string_view method) const {
  std::string ts = std::to_string(unix_ms());
  std::string nonce = random_hex(12);
  return "v1:" + ts + ":" + nonce + ":" + hmac_sha256_hex(secret_, call_message(method, ts, nonce));
}

std::string CallAuthenticator::attempt_key(std::string_view job_id, int attempt) const {
  return derive_attempt_key(secret_, job_id, attempt);
}

Status CallAuthenticator::verify(std::string_view method, std::string_view value) {
  if (value.empty()) return Status::permission_denied("no credentials");
  // v1:<ts>:<nonce>:<mac>
  if (value.size() > 256 || value.substr(0, 3) != "v1:") return Status::permission_denied("malformed credentials");
  std::string_view rest = value.substr(3);
  size_t a = rest.find(':');
  size_t b = a == std::string_view::npos ? a : rest.find(':', a + 1);
  if (b == std::string_view::npos) return Status::permission_denied("malformed credentials");
  std::string_view ts = rest.substr(0, a), nonce = rest.substr(a + 1, b - a - 1), mac = rest.substr(b + 1);
  if (ts.empty() || ts.size() > 18 || nonce.size() < 16 || nonce.size() > 64) {
    return Status::permission_denied("malformed credentials");
  }
  int64_t t = 0;
  for (char c : ts) {
    if (c < '0' || c > '9') return Status::permission_denied("malformed credentials");
    t = t * 10 + (c - '0');
  }
  std::string want = hmac_sha256_hex(secret_, call_message(method, ts, nonce));
  if (!constant_time_equal(want, mac)) return Status::permission_denied("wrong secret");
  int64_t now = unix_ms();
  if (t < now - window_.count() || t > now + window_.count()) {
    return Status::permission_denied("credentials outside the clock window (" + std::to_string(now - t) +
                                     " ms old; are the clocks in sync?)");
  }
  std::lock_guard lk(mu_);
  while (!nonce_order_.empty() && nonce_order_.front().first < now) {
    nonces_.erase(nonce_order_.front().second);
    nonce_order_.pop_front();
  }
  if (nonces_.size() >= kMaxNonces) return Status::resource_exhausted("too many calls; try again later");
  std::string n(nonce);
  if (!nonces_.insert(n).second) return Status::permission_denied("replayed credentials");
  // Kept until the timestamp leaves the window: a replay after that fails the clock check.
  nonce_order_.emplace_back(std::max(now, t) + window_.count(), std::move(n));
  return Status::ok();
}

}  // namespace sluice::auth

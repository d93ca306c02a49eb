// Request-body and header encodings for HTTP push clients (gzip, basic
// authorization); declared in http_client.h.
#include <openssl/evp.h>
#include <zlib.h>

#include "operators/async/http/http_client.h"

namespace sluice::http_client {

Result<std::string> gzip(std::string_view body, int level) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
  if (deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Status::internal("gzip: deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(body.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(body.data()));
  zs.avail_in = static_cast<uInt>(body.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&zs, Z_FINISH);
  size_t n = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return Status::internal("gzip: deflate did not finish (" + std::to_string(rc) + ")");
  out.resize(n);
  return out;
}

std::string basic_authorization(std::string_view user, std::string_view password) {
  std::string plain;
  plain.reserve(user.size() + 1 + password.size());
  plain.append(user).append(1, ':').append(password);
  std::string b64(4 * ((plain.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()),
                          reinterpret_cast<const unsigned char*>(plain.data()), static_cast<int>(plain.size()));
  b64.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return "Basic " + b64;
}

}  // namespace sluice::http_client

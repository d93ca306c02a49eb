// SHA-256 (OpenSSL) for graph hashes and job artifact checks.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

}  // namespace sluice

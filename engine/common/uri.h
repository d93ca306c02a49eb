// Pieces of the URIs that connectors take as job arguments
// (kafka://..., postgres://..., influxdb://...): percent-encoding and
// query strings. Pure functions; any thread.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/common/status.h"

namespace sluice {

/// Decodes %XX escapes (a '+' stays a '+'). A malformed escape is an
/// error naming `what` (e.g. "influxdb sink parameter tags").
Result<std::string> percent_decode(std::string_view s, std::string_view what);

/// Escapes every byte outside RFC 3986's unreserved characters
/// (A-Z a-z 0-9 - . _ ~), for query values and path segments.
std::string percent_encode(std::string_view s);

/// `a=1&b=x%20y` as decoded (name, value) pairs in order. An item without
/// '=' or with an empty name is an error naming `what`; empty items
/// (`a=1&&b=2`) are skipped.
Result<std::vector<std::pair<std::string, std::string>>> parse_query(std::string_view query, std::string_view what);

/// `a,b,,c` -> {"a", "b", "c"}: comma-separated names, empty items dropped.
std::vector<std::string> split_list(std::string_view s);

}  // namespace sluice

#include "engine/common/config.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>

namespace sluice {

std::optional<std::string> Configuration::get(std::string_view key) const {
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second;
}

std::string Configuration::get_string(std::string_view key, std::string_view fallback) const {
  auto v = get(key);
  return v ? *v : std::string(fallback);
}

namespace {
template <class T>
Result<T> with_key(std::string_view key, Result<T> r) {
  if (r.is_ok()) return r;
  return r.status().with_context("setting '" + std::string(key) + "'");
}
}  // namespace

Result<int64_t> Configuration::get_int(std::string_view key, int64_t fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  return with_key(key, parse_int(*v));
}

Result<double> Configuration::get_double(std::string_view key, double fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  char* end = nullptr;
  double d = std::strtod(v->c_str(), &end);
  // strtod also takes leading blanks, "nan" and "inf": refuse them as get_int does.
  if (v->empty() || end != v->c_str() + v->size() || std::isspace(static_cast<unsigned char>((*v)[0])) ||
      !std::isfinite(d)) {
    return Status::invalid_argument("setting '" + std::string(key) + "': '" + *v +
                                    "' is not a number");
  }
  return d;
}

Result<bool> Configuration::get_bool(std::string_view key, bool fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  return with_key(key, parse_bool(*v));
}

Result<Duration> Configuration::get_duration(std::string_view key, Duration fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  return with_key(key, parse_duration(*v));
}

Result<int64_t> Configuration::get_bytes(std::string_view key, int64_t fallback) const {
  auto v = get(key);
  if (!v) return fallback;
  return with_key(key, parse_bytes(*v));
}

void Configuration::merge_from(const Configuration& other) {
  for (const auto& [k, v] : other.entries_) entries_[k] = v;
}

Result<bool> parse_bool(std::string_view text) {
  std::string t(text);
  for (char& c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (t == "true" || t == "yes" || t == "1" || t == "on") return true;
  if (t == "false" || t == "no" || t == "0" || t == "off") return false;
  return Status::invalid_argument("'" + std::string(text) + "' is not a boolean; use true or false");
}

Result<int64_t> parse_int(std::string_view text) {
  int64_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size()) {
    return Status::invalid_argument("'" + std::string(text) + "' is not an integer");
  }
  return v;
}

}  // namespace sluice

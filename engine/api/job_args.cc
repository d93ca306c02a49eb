#include "engine/api/job_args.h"

#include "engine/common/config.h"

namespace sluice::api {

const std::string* JobArgs::find(const std::string& key) const {
  read_.insert(key);
  auto it = values_.find(key);
  return it == values_.end() ? nullptr : &it->second;
}

bool JobArgs::has(const std::string& key) const { return find(key) != nullptr; }

std::string JobArgs::get(const std::string& key, const std::string& fallback) const {
  const std::string* v = find(key);
  return v ? *v : fallback;
}

std::string JobArgs::require(const std::string& key, const std::string& what) const {
  const std::string* v = find(key);
  if (!v || v->empty()) {
    throw JobArgError("missing job argument '" + key + "': pass --arg " + key + "=<" + what + ">");
  }
  return *v;
}

namespace {
[[noreturn]] void bad(const std::string& key, const std::string& value, const std::string& msg) {
  throw JobArgError("invalid job argument --arg " + key + "=" + value + ": " + msg);
}
}  // namespace

int64_t JobArgs::get_int(const std::string& key, int64_t fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto r = parse_int(*v);
  if (!r.is_ok()) bad(key, *v, "expected an integer");
  return *r;
}

double JobArgs::get_double(const std::string& key, double fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  Configuration c;
  c.set(key, *v);
  auto r = c.get_double(key, fallback);
  if (!r.is_ok()) bad(key, *v, "expected a number");
  return *r;
}

bool JobArgs::get_bool(const std::string& key, bool fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto r = parse_bool(*v);
  if (!r.is_ok()) bad(key, *v, "expected true or false");
  return *r;
}

Duration JobArgs::get_duration(const std::string& key, Duration fallback) const {
  const std::string* v = find(key);
  if (!v) return fallback;
  auto r = parse_duration(*v);
  if (!r.is_ok()) bad(key, *v, "expected a duration such as 60s, 500ms, 2m");
  return *r;
}

std::vector<std::string> JobArgs::unread() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : values_)
    if (!read_.count(k)) out.push_back(k);
  return out;
}

bool parse_key_value(const std::string& text, std::string& key, std::string& value) {
  auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0) return false;
  key = text.substr(0, eq);
  value = text.substr(eq + 1);
  return true;
}

}  // namespace sluice::api

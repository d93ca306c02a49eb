// Settings files for the long-running commands (jobmanager, taskmanager):
// TOML, read with toml++ (Debian's libtomlplusplus-dev).
#include <toml++/toml.h>

#include <set>
#include <sstream>

#include "engine/cli/commands.h"

namespace sluice::cli {

namespace {

std::string where(const std::string& path, const toml::source_region& r) {
  return "--config " + path + ":" + std::to_string(r.begin.line);
}

/// The flag values of one TOML value: scalars as text, arrays as one value
/// per element; anything else is an error naming the key.
Result<std::vector<std::string>> values_of(const std::string& path, const std::string& key, const toml::node& n) {
  std::vector<std::string> out;
  auto scalar = [&](const toml::node& v) -> Status {
    if (auto s = v.as_string()) {
      out.push_back(s->get());
    } else if (auto i = v.as_integer()) {
      out.push_back(std::to_string(i->get()));
    } else if (auto f = v.as_floating_point()) {
      std::ostringstream o;
      o << f->get();
      out.push_back(o.str());
    } else if (auto b = v.as_boolean()) {
      out.push_back(b->get() ? "true" : "false");
    } else {
      return Status::invalid_argument(where(path, v.source()) + ": key '" + key +
                                      "': expected a string, a number, a boolean or an array of them");
    }
    return Status::ok();
  };
  if (auto arr = n.as_array()) {
    for (const auto& e : *arr) SLUICE_RETURN_IF_ERROR(scalar(e));
  } else {
    SLUICE_RETURN_IF_ERROR(scalar(n));
  }
  return out;
}

}  // namespace

Result<ConfigExpansion> expand_config_file(const std::vector<std::string>& args, const OptionCheck& known) {
  ConfigExpansion ex;
  ex.args = args;
  std::string path;
  std::string command;
  std::set<std::string> given;  // long options on the command line
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (command.empty() && !a.empty() && a[0] != '-' && (i == 0 || args[i - 1].rfind("--log-", 0) != 0)) command = a;
    if (a.rfind("--", 0) != 0) continue;
    std::string name = a.substr(2, a.find('=') == std::string::npos ? std::string::npos : a.find('=') - 2);
    given.insert(name);
    if (name == "config") {
      if (a.find('=') != std::string::npos) {
        path = a.substr(a.find('=') + 1);
      } else if (i + 1 < args.size()) {
        path = args[i + 1];
      }
    }
  }
  if (path.empty()) return ex;
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (e.source().begin.line == 0) return Status::not_found("--config: cannot read '" + path + "': " + std::string(e.description()));
    return Status::invalid_argument("--config " + path + ":" + std::to_string(e.source().begin.line) + ":" +
                                    std::to_string(e.source().begin.column) + ": " + std::string(e.description()));
  }
  // Root keys are for the command run; [command] tables for that command only.
  auto add = [&](const std::string& raw_key, const toml::node& value) -> Status {
    std::string key = raw_key;
    for (char& c : key)
      if (c == '_') c = '-';
    if (key.empty() || key == "config") {
      return Status::invalid_argument(where(path, value.source()) + ": key '" + raw_key + "' is not a setting");
    }
    if (known && !known(command, key)) {
      return Status::invalid_argument(where(path, value.source()) + ": unknown key '" + raw_key + "' for `sluice " +
                                      command + "` (keys are its long options: see sluice " + command + " --help)");
    }
    SLUICE_ASSIGN_OR_RETURN(auto vals, values_of(path, raw_key, value));
    if (given.count(key)) return Status::ok();  // the flag wins
    for (auto& v : vals) ex.args.push_back("--" + key + "=" + v);
    ex.origins["--" + key] = where(path, value.source()).substr(9) + ", key '" + raw_key + "'";
    return Status::ok();
  };
  for (const auto& [k, v] : root) {
    const std::string key(k.str());
    if (const auto* section = v.as_table()) {
      if (known && !known(key, "")) {
        return Status::invalid_argument(where(path, v.source()) + ": unknown section [" + key +
                                        "]: sections are commands, e.g. [jobmanager] or [taskmanager]");
      }
      if (key != command) continue;  // another command's settings
      for (const auto& [sk, sv] : *section) {
        if (sv.is_table()) {
          return Status::invalid_argument(where(path, sv.source()) + ": [" + key + "." + std::string(sk.str()) +
                                          "]: settings do not nest");
        }
        SLUICE_RETURN_IF_ERROR(add(std::string(sk.str()), sv));
      }
      continue;
    }
    SLUICE_RETURN_IF_ERROR(add(key, v));
  }
  return ex;
}

}  // namespace sluice::cli

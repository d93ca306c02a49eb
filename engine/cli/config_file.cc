// Settings files for the long-running commands (jobmanager, taskmanager).
#include <fstream>
#include <set>

#include "engine/cli/commands.h"

namespace sluice::cli {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

}  // namespace

Result<std::vector<std::string>> expand_config_file(const std::vector<std::string>& args) {
  std::string path;
  std::string command;
  std::set<std::string> given;  // long options on the command line
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (command.empty() && !a.empty() && a[0] != '-') command = a;
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
  if (path.empty()) return args;
  std::ifstream in(path);
  if (!in) return Status::not_found("--config: cannot read '" + path + "'");
  std::vector<std::string> out = args;
  std::string line, section;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    std::string t = trim(line);
    if (t.empty() || t[0] == '#' || t[0] == ';') continue;
    if (t.front() == '[') {
      if (t.back() != ']') return Status::invalid_argument(path + ":" + std::to_string(n) + ": unclosed section");
      section = trim(t.substr(1, t.size() - 2));
      continue;
    }
    if (!section.empty() && section != command) continue;  // another command's settings
    auto eq = t.find('=');
    if (eq == std::string::npos) {
      return Status::invalid_argument(path + ":" + std::to_string(n) + ": expected `key = value`, got '" + t + "'");
    }
    std::string key = trim(t.substr(0, eq));
    std::string value = trim(t.substr(eq + 1));
    if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front()) {
      value = value.substr(1, value.size() - 2);
    }
    for (char& c : key)
      if (c == '_') c = '-';
    if (key.empty()) return Status::invalid_argument(path + ":" + std::to_string(n) + ": empty key");
    if (given.count(key)) continue;  // the flag wins
    out.push_back("--" + key + "=" + value);
  }
  return out;
}

}  // namespace sluice::cli

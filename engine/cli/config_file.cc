// Settings files for the long-running commands (jobmanager, taskmanager):
// TOML, read with toml++ (Debian's libtomlplusplus-dev).
#include <toml++/toml.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
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

/// Refuses, with its line and column, what TOML 1.0 never allows and
/// toml++ 3.3 does not always report cleanly: control characters (NUL,
/// C0 but tab and line ends, DEL) anywhere, and non-ASCII characters
/// outside strings and comments (bare keys and whitespace are ASCII; some
/// non-ASCII characters there reach an unreachable branch of toml++'s
/// whitespace table). A bare value (a number, date, boolean: a value that
/// does not start with a quote, `[` or `{`) is read by toml++ up to the next
/// blank, `,`, `]`, `}` or `#` whatever it holds, quotes included, so
/// non-ASCII characters are refused there too. A small lexer: tracks
/// comments, the four string kinds, where a value starts and the arrays and
/// inline tables open in values, nothing else; the grammar is left to toml++.
Status check_settings_text(const std::string& path, const std::string& text) {
  enum class In { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral };
  In in = In::kCode;
  char last = '\n';  // the last character of code (not blank, not a comment); '"' after a string
  bool value_start = false;  // the next character of code starts a value
  bool bare = false;         // inside a bare value
  std::string nested;        // the arrays ('[') and inline tables ('{') open in a value
  size_t line = 1;
  size_t column = 0;
  auto at = [&](const std::string& what) {
    return Status::invalid_argument("--config " + path + ":" + std::to_string(line) + ":" + std::to_string(column) +
                                    ": " + what);
  };
  auto starts = [&](size_t i, const char* s3) { return text.compare(i, 3, s3) == 0; };
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  // At the closing triple quote of a multi-line string (up to two more
  // quotes still belong to its content): past it, back in code.
  auto close_multi = [&](size_t& i, char quote) {
    while (i + 3 < text.size() && text[i + 3] == quote) ++i;
    i += 2;
    column += 2;
    in = In::kCode;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    ++column;
    if ((c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return at(std::string("control character ") + hex + " is not allowed in a TOML file");
    }
    if (c == '\n') {
      if (in == In::kBasic || in == In::kLiteral) return at("a string does not end on its line");
      if (in == In::kComment) in = In::kCode;
      if (in == In::kCode) last = '\n';
      bare = false;
      if (nested.empty()) value_start = false;
      ++line;
      column = 0;
      continue;
    }
    switch (in) {
      case In::kCode: {
        if (bare) {
          if (blank(static_cast<char>(c)) || std::strchr(",]}#", c) != nullptr) {
            bare = false;  // the character after the value: read as code below
          } else {
            if (c >= 0x80) return at("non-ASCII character in a value that is not a string (quote the value)");
            last = static_cast<char>(c);
            break;
          }
        }
        if (c >= 0x80) return at("non-ASCII character outside a string or comment (quote the key or value)");
        if (value_start && !blank(static_cast<char>(c)) && std::strchr("#]}", c) == nullptr) {
          value_start = c == '[';
          if (c == '[' || c == '{') {
            nested.push_back(static_cast<char>(c));
          } else if (c != '"' && c != '\'') {
            bare = true;
            last = static_cast<char>(c);
            break;
          }
        } else if (c == '=') {
          value_start = true;
        } else if (c == ',' && !nested.empty()) {
          value_start = nested.back() == '[';
        } else if ((c == ']' || c == '}') && !nested.empty()) {
          nested.pop_back();
          value_start = false;
        }
        // A quote opens a string only where TOML has one (a key or a value);
        // inside another token it is part of that token, as for toml++.
        const bool string_may_start = std::strchr("=[,{.\n", last) != nullptr;
        if (!blank(static_cast<char>(c)) && c != '#') last = static_cast<char>(c);
        if (c == '#') {
          in = In::kComment;
        } else if ((c == '"' || c == '\'') && !string_may_start) {
          // part of a malformed token: left to toml++ to refuse
        } else if (starts(i, "\"\"\"")) {
          in = In::kMultiBasic;
          i += 2;
          column += 2;
        } else if (starts(i, "'''")) {
          in = In::kMultiLiteral;
          i += 2;
          column += 2;
        } else if (c == '"') {
          in = In::kBasic;
        } else if (c == '\'') {
          in = In::kLiteral;
        }
        break;
      }
      case In::kComment:
        break;
      case In::kBasic:
      case In::kMultiBasic:
        if (c == '\\' && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) >= 0x80) {
          ++column;
          return at("a backslash followed by a non-ASCII character is not an escape (escapes are \\n, \\t, \\uXXXX, ...)");
        }
        if (in == In::kMultiBasic && c == '\\' && i + 1 < text.size() && blank(text[i + 1])) {
          // A line-ending backslash: toml++ trims the blanks and line ends
          // after it, testing the first other character as whitespace.
          size_t j = i + 1;
          while (j < text.size() && blank(text[j])) {
            if (text[j] == '\n') {
              ++line;
              column = 0;
            } else {
              ++column;
            }
            ++j;
          }
          i = j - 1;
          if (j < text.size() && static_cast<unsigned char>(text[j]) >= 0x80) {
            ++column;
            return at("non-ASCII character right after a line-ending backslash (put an ASCII character first)");
          }
        } else if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n') {
          ++i;  // an escaped character, e.g. \" (a line-ending backslash is left to the newline branch)
          ++column;
        } else if (in == In::kBasic && c == '"') {
          in = In::kCode;
        } else if (in == In::kMultiBasic && starts(i, "\"\"\"")) {
          close_multi(i, '"');
        }
        break;
      case In::kLiteral:
      case In::kMultiLiteral:
        if (in == In::kLiteral && c == '\'') {
          in = In::kCode;
        } else if (in == In::kMultiLiteral && starts(i, "'''")) {
          close_multi(i, '\'');
        }
        break;
    }
  }
  return Status::ok();
}

/// A settings file's text, bounded in size and lexically checked.
Result<std::string> read_settings_text(const std::string& path) {
  constexpr std::uintmax_t kMaxBytes = 1 << 20;
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return Status::not_found("--config: cannot read '" + path + "': " + ec.message());
  if (size > kMaxBytes) {
    return Status::invalid_argument("--config " + path + ": " + std::to_string(size) +
                                    " bytes; a settings file is at most 1 MiB");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::not_found("--config: cannot read '" + path + "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  SLUICE_RETURN_IF_ERROR(check_settings_text(path, text));
  return text;
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
  SLUICE_ASSIGN_OR_RETURN(std::string text, read_settings_text(path));
  toml::table root;
  try {
    root = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
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

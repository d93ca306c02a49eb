#include "engine/common/logging.h"

#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "engine/common/assert.h"

namespace sluice {

namespace {

constexpr const char* kPattern = "%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%t] %v";

/// The process's sinks: stderr, the in-memory ring, and a file once asked for.
struct Sinks {
  std::shared_ptr<spdlog::sinks::dist_sink_mt> all = std::make_shared<spdlog::sinks::dist_sink_mt>();
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> ring =
      std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kRecentLogLines);
  std::string file;
};

Sinks& sinks() {
  static Sinks s;
  static std::once_flag once;
  std::call_once(once, [] {
    s.all->add_sink(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    s.all->add_sink(s.ring);
    auto logger = std::make_shared<spdlog::logger>("sluice", s.all);
    spdlog::set_default_logger(logger);
  });
  return s;
}

}  // namespace

Status init_logging(const LoggingOptions& o) {
  auto lvl = spdlog::level::from_str(o.level);
  if (lvl == spdlog::level::off && o.level != "off") {
    return Status::invalid_argument("unknown log level '" + o.level + "'; use trace, debug, info, warn, error or off");
  }
  auto& s = sinks();
  if (!o.file.empty() && s.file != o.file) {
    if (!s.file.empty()) return Status::failed_precondition("the log file is already " + s.file);
    try {
      auto f = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(o.file, o.file_max_bytes, o.file_keep);
      s.all->add_sink(f);
      s.file = o.file;
    } catch (const spdlog::spdlog_ex& e) {
      return Status::invalid_argument("--log-file '" + o.file + "': " + e.what());
    }
  }
  // Every sink (colour markers only colour the terminal's).
  spdlog::set_pattern(kPattern);
  spdlog::set_level(lvl);
  // Warnings and errors reach the file at once (a crash loses nothing said before).
  spdlog::flush_on(spdlog::level::warn);
  return Status::ok();
}

Status init_logging(std::string_view level) {
  LoggingOptions o;
  o.level = std::string(level);
  return init_logging(o);
}

std::vector<std::string> recent_log_lines(std::string_view filter, size_t max_lines) {
  auto lines = sinks().ring->last_formatted();
  std::vector<std::string> out;
  for (auto it = lines.rbegin(); it != lines.rend() && out.size() < max_lines; ++it) {
    if (filter.empty() || it->find(filter) != std::string::npos) {
      std::string l = std::move(*it);
      while (!l.empty() && (l.back() == '\n' || l.back() == '\r')) l.pop_back();
      out.push_back(std::move(l));
    }
  }
  return {out.rbegin(), out.rend()};
}

namespace detail {
void assert_failed(const char* expr, const char* file, int line, const char* msg) {
  std::fprintf(stderr, "sluice: invariant broken at %s:%d: %s (%s)\n", file, line, msg, expr);
  spdlog::critical("invariant broken at {}:{}: {} ({})", file, line, msg, expr);
  spdlog::shutdown();
  std::abort();
}
}  // namespace detail

}  // namespace sluice

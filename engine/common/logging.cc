#include "engine/common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/common/assert.h"

namespace sluice {

Status init_logging(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") {
    return Status::invalid_argument("unknown log level '" + std::string(level) +
                                    "'; use trace, debug, info, warn, error or off");
  }
  static bool initialised = false;
  if (!initialised) {
    auto logger = spdlog::stderr_color_mt("sluice");
    spdlog::set_default_logger(logger);
    initialised = true;
  }
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%-5l%$ [%t] %v");
  spdlog::set_level(lvl);
  return Status::ok();
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

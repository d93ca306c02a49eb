// Settings files (`--config FILE` of the jobmanager and taskmanager, TOML
// read with toml++): any file content is either expanded into flags or
// refused with a message; durations and timestamps parse or are refused.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <string>

#include "engine/cli/commands.h"
#include "engine/common/time.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = "/tmp/sluice-fuzz-config-" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto r = sluice::cli::expand_config_file({"sluice", "taskmanager", "--config", path, "--slots", "2"});
  if (r.is_ok()) {
    for (const auto& a : r->args) (void)a.size();
  } else if (r.status().message().empty()) {
    __builtin_trap();  // a refusal says why
  }
  std::string_view text(reinterpret_cast<const char*>(data), std::min<size_t>(size, 64));
  (void)sluice::parse_duration(std::string(text));
  (void)sluice::parse_timestamp_ms(text);
  return 0;
}

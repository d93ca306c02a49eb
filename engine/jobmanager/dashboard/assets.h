// The web dashboard's static files (index.html, app.js, style.css), compiled
// into the binary at build time (cmake/EmbedFiles.cmake): plain HTML, CSS
// and JavaScript, no front-end build step, nothing to install beside the
// `sluice` binary.
#pragma once

#include <string_view>

namespace sluice::jobmanager::dashboard {

/// One embedded file; the bytes live in the binary's read-only data.
struct Asset {
  std::string_view name;  // e.g. "app.js"
  std::string_view content;
  std::string_view content_type;
};

/// The file called `name`, or null.
const Asset* find_asset(std::string_view name);

}  // namespace sluice::jobmanager::dashboard

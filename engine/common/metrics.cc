#include "engine/common/metrics.h"

namespace sluice::metrics {

std::shared_ptr<prometheus::Registry> registry_ptr() {
  // shared: the HTTP exposer and every component hold the one registry.
  static const auto r = std::make_shared<prometheus::Registry>();
  return r;
}

prometheus::Registry& registry() { return *registry_ptr(); }

}  // namespace sluice::metrics

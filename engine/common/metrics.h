// The process-wide metrics registry (prometheus-cpp). Every component
// registers its metric families here; the /metrics endpoint of each
// process serves it. Names follow Prometheus conventions:
// sluice_<area>_<what>_<unit>[_total], labels job/vertex/subtask/...
//
//   auto& family = prometheus::BuildCounter()
//                      .Name("sluice_dead_letters_total")
//                      .Help("Records sent to the dead-letter output")
//                      .Register(sluice::metrics::registry());
//   auto& c = family.Add({{"job", job}, {"operator", op}});
//   c.Increment();
//
// Families and metrics are thread-safe. Hot loops count in plain locals
// and add to the metric now and then (see the task's metrics publishing).
#pragma once

#include <prometheus/registry.h>

#include <memory>

namespace sluice::metrics {

prometheus::Registry& registry();
/// The same registry as a shared_ptr (what prometheus::Exposer wants).
std::shared_ptr<prometheus::Registry> registry_ptr();

}  // namespace sluice::metrics

// The Kafka connector: include this for sources, sinks and dead-letter
// topics by URI (connectors/connectors.h dispatches kafka:// here).
#pragma once

#include <memory>
#include <string>

#include "connectors/kafka/kafka_sink.h"
#include "connectors/kafka/kafka_source.h"

namespace sluice::kafka {

template <class T>
Result<std::shared_ptr<const runtime::Source<T>>> source_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, KafkaSource<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Source<T>>(std::move(s));
}

template <class T>
Result<std::shared_ptr<const runtime::Sink<T>>> sink_from_uri(const std::string& uri) {
  SLUICE_ASSIGN_OR_RETURN(auto s, KafkaSink<T>::from_uri(uri));
  return std::shared_ptr<const runtime::Sink<T>>(std::move(s));
}

}  // namespace sluice::kafka

// The one header a job includes: the DataStream API, functions, windows,
// connected and broadcast streams, interval and window joins, state
// descriptors (ordered map state included), and the names jobs
// use most, in namespace sluice.
#pragma once

#include "engine/api/async_datastream.h"
#include "engine/api/cep.h"
#include "engine/api/datastream.h"
#include "engine/api/job.h"
#include "engine/common/json.h"
#include "engine/common/serde.h"
#include "operators/async/http_json_function.h"
#include "operators/basic/top_n.h"

namespace sluice {
using api::AsyncDataStream;
using api::CEP;
using api::DataStream;
using api::JobArgs;
using api::KeyedStream;
using api::PatternStream;
using api::StreamExecutionEnvironment;
using api::WindowedStream;
using api::BroadcastStream;
using api::ConnectedStreams;
using api::KeyedConnectedStreams;
using async_io::AsyncFunction;
using async_io::AsyncOptions;
using async_io::AsyncRetryStrategy;
using async_io::HttpJsonFunction;
using async_io::HttpJsonOptions;
using async_io::OutputMode;
using async_io::ResultFuture;
using basic::Collector;
using basic::KeyedProcessFunction;
using basic::OutputTag;
using basic::Ranked;
using basic::RuntimeContext;
using basic::TimeDomain;
using basic::TimerService;
using basic::TopNFunction;
using cep::AfterMatchSkipStrategy;
using cep::Match;
using cep::MatchContext;
using cep::Pattern;
using cep::PatternProcessFunction;
using cep::TimedOutMatch;
using cep::WithinType;
using join::BroadcastProcessFunction;
using join::BroadcastState;
using join::CoProcessFunction;
using join::KeyedBroadcastProcessFunction;
using join::KeyedCoProcessFunction;
using join::ProcessJoinFunction;
using join::ReadOnlyBroadcastState;
using runtime::Sink;
using runtime::SinkWriter;
using runtime::Source;
using runtime::SourceOutput;
using runtime::SourceReader;
using runtime::WatermarkStrategy;
using state::ListStateDescriptor;
using state::KeyRange;
using state::MapStateDescriptor;
using state::OrderedMapState;
using state::OrderedMapStateDescriptor;
using state::ReducingStateDescriptor;
using state::StateTtl;
using state::ValueStateDescriptor;
using state::CachedValueStateDescriptor;
using window::AggregateFunction;
using window::JoinInput;
using window::AvgAggregate;
using window::CountAggregate;
using window::EventTimeSessionWindows;
using window::MaxAggregate;
using window::MinAggregate;
using window::ProcessWindowFunction;
using window::SlidingEventTimeWindows;
using window::SlidingProcessingTimeWindows;
using window::SumAggregate;
using window::TimeWindow;
using window::TumblingEventTimeWindows;
using window::TumblingProcessingTimeWindows;
}  // namespace sluice

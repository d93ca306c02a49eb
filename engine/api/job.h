// SLUICE_JOB: the entry point of a job library.
//
//   SLUICE_JOB(clickstream) {
//     auto window = args.get_duration("window", std::chrono::seconds(60));
//     auto clicks = env.from_source(...);
//     ...
//   }
//
// The body is the build function: it receives `env`
// (StreamExecutionEnvironment&) and `args` (const JobArgs&) and describes
// the pipeline. It runs in `sluice submit`/`run-local` and again on every
// taskmanager, so it must build the same graph from the same arguments.
// Exceptions thrown in it (a bad argument) become an error message here, in
// the job library, and never cross into the engine.
#pragma once

#include <exception>
#include <map>
#include <string>

#include "engine/api/datastream.h"
#include "engine/api/job_args.h"

namespace sluice::api {

/// What the engine passes to a job library's entry point (ABI v1).
struct JobBuildCall {
  const std::map<std::string, std::string>* args = nullptr;
  runtime::StreamGraph* graph = nullptr;  // filled in
  std::string* error = nullptr;           // set when the build fails
  std::vector<std::string>* unread_args = nullptr;
  std::vector<std::string>* read_args = nullptr;
};

using BuildFn = void (*)(StreamExecutionEnvironment&, const JobArgs&);

namespace detail {
inline int run_build(JobBuildCall* call, const char* name, BuildFn fn) {
  try {
    call->graph->job_name = name;
    StreamExecutionEnvironment env(*call->graph);
    JobArgs args(*call->args);
    fn(env, args);
    *call->unread_args = args.unread();
    *call->read_args = args.read_keys();
    return 0;
  } catch (const JobArgError& e) {
    *call->error = e.what();
  } catch (const std::exception& e) {
    *call->error = std::string("the job's build function failed: ") + e.what();
  } catch (...) {
    *call->error = "the job's build function threw a non-standard exception";
  }
  return 1;
}
}  // namespace detail

}  // namespace sluice::api

#define SLUICE_JOB_ENTRY_SYMBOL "sluice_job_entry_v1"

#define SLUICE_JOB(NAME)                                                                    \
  static void sluice_job_build_##NAME(::sluice::api::StreamExecutionEnvironment& env,        \
                                      const ::sluice::api::JobArgs& args);                   \
  extern "C" __attribute__((visibility("default"))) int sluice_job_entry_v1(               \
      ::sluice::api::JobBuildCall* call) {                                                   \
    return ::sluice::api::detail::run_build(call, #NAME, &sluice_job_build_##NAME);         \
  }                                                                                          \
  static void sluice_job_build_##NAME(::sluice::api::StreamExecutionEnvironment& env,        \
                                      [[maybe_unused]] const ::sluice::api::JobArgs& args)

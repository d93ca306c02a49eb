// Loading a job library and turning it into a runnable job.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "engine/common/status.h"
#include "engine/proto/jobgraph.pb.h"
#include "engine/runtime/task.h"

namespace sluice::api {

/// A dlopen()ed job library. Shared (shared_ptr) by every graph built from
/// it: their operator factories are code inside the library, so it stays
/// loaded until the last of them is gone.
class JobLibrary {
 public:
  /// Loads `path`; errors say whether the file is missing, not loadable
  /// (with the loader's reason) or not a Sluice job.
  static Result<std::shared_ptr<JobLibrary>> load(const std::string& path);
  ~JobLibrary();
  JobLibrary(const JobLibrary&) = delete;
  JobLibrary& operator=(const JobLibrary&) = delete;

  const std::string& path() const { return path_; }

  /// Runs the build function with `args`. Arguments the job never read are
  /// an error (a typo would otherwise be ignored silently).
  Result<std::unique_ptr<runtime::StreamGraph>> build(
      const std::map<std::string, std::string>& args) const;

 private:
  JobLibrary(std::string path, void* handle, void* entry)
      : path_(std::move(path)), handle_(handle), entry_(entry) {}
  std::string path_;
  void* handle_;
  void* entry_;
};

/// A job ready to deploy: its graph, JobGraph and the library behind them.
struct PreparedJob {
  std::shared_ptr<runtime::JobInstance> instance;
  std::shared_ptr<JobLibrary> library;
};

struct PrepareOptions {
  /// Empty: the job's name (run-local). Names the job's checkpoint directory.
  std::string job_id;
  int parallelism = 1;
  std::map<std::string, std::string> args;
  /// Overrides of the job's configuration (from the command line).
  Configuration config;
};

/// load -> build -> JobGraph, with every error phrased for the CLI.
Result<PreparedJob> prepare_job(std::shared_ptr<JobLibrary> library, const PrepareOptions& options);

/// Runs every source's check_input (e.g. a file source's path exists);
/// the first error names the source.
Status check_sources(const PreparedJob& job);

}  // namespace sluice::api

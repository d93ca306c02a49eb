#include "engine/api/job_library.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include "engine/api/job.h"
#include "engine/graph/job_graph_builder.h"

namespace sluice::api {

Result<std::shared_ptr<JobLibrary>> JobLibrary::load(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::not_found("job library '" + path +
                             "' does not exist; build it first (e.g. cmake --build build)");
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::invalid_argument("job library '" + path + "' is not a regular file");
  }
  // A path without '/' would make dlopen search the library path instead.
  std::string p = path.find('/') == std::string::npos ? "./" + path : path;
  void* handle = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* err = ::dlerror();
    return Status::invalid_argument("cannot load job library '" + path +
                                    "': " + (err ? err : "unknown loader error") +
                                    "; pass a shared library built with SLUICE_JOB "
                                    "(see jobs/clickstream)");
  }
  void* entry = ::dlsym(handle, SLUICE_JOB_ENTRY_SYMBOL);
  if (!entry) {
    ::dlclose(handle);
    return Status::invalid_argument("'" + path +
                                    "' is not a Sluice job library: it has no SLUICE_JOB entry point");
  }
  return std::shared_ptr<JobLibrary>(new JobLibrary(path, handle, entry));
}

JobLibrary::~JobLibrary() {
  if (handle_) ::dlclose(handle_);
}

Result<std::unique_ptr<runtime::StreamGraph>> JobLibrary::build(
    const std::map<std::string, std::string>& args) const {
  auto graph = std::make_unique<runtime::StreamGraph>();
  std::string error;
  std::vector<std::string> unread, read;
  JobBuildCall call;
  call.args = &args;
  call.graph = graph.get();
  call.error = &error;
  call.unread_args = &unread;
  call.read_args = &read;
  auto fn = reinterpret_cast<int (*)(JobBuildCall*)>(entry_);
  if (fn(&call) != 0) return Status::invalid_argument(error);
  if (!unread.empty()) {
    std::string msg = "unknown job argument";
    msg += unread.size() > 1 ? "s " : " ";
    for (size_t i = 0; i < unread.size(); ++i) msg += (i ? ", '" : "'") + unread[i] + "'";
    msg += "; this job reads: ";
    for (size_t i = 0; i < read.size(); ++i) msg += (i ? ", " : "") + read[i];
    return Status::invalid_argument(msg);
  }
  return graph;
}

Status check_sources(const PreparedJob& job) {
  for (const auto& node : job.instance->graph->nodes()) {
    if (!node.check_input) continue;
    SLUICE_RETURN_IF_ERROR(node.check_input().with_context("source '" + node.name + "'"));
  }
  return Status::ok();
}

Result<PreparedJob> prepare_job(std::shared_ptr<JobLibrary> library, const PrepareOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<runtime::StreamGraph> graph, library->build(options.args));
  graph->config.merge_from(options.config);
  for (const auto& node : graph->nodes()) {
    if (!node.validate) continue;
    SLUICE_RETURN_IF_ERROR(node.validate(graph->config).with_context("sink '" + node.name + "'"));
  }
  graph::JobGraphOptions go;
  go.default_parallelism = options.parallelism;
  go.args = options.args;
  SLUICE_ASSIGN_OR_RETURN(proto::JobGraph jg, graph::build_job_graph(*graph, go));
  auto instance = std::make_shared<runtime::JobInstance>();
  instance->job_id = options.job_id.empty() ? graph->job_name : options.job_id;
  instance->config = graph->config;
  if (auto dir = graph->config.get("checkpoint.dir"); dir && !dir->empty()) {
    instance->checkpoints = std::make_shared<const state::CheckpointStorage>(*dir, instance->job_id);
  }
  instance->graph = std::shared_ptr<const runtime::StreamGraph>(std::move(graph));
  instance->job_graph = std::make_shared<const proto::JobGraph>(std::move(jg));
  return PreparedJob{std::move(instance), std::move(library)};
}

}  // namespace sluice::api

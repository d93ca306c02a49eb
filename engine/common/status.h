// Status and Result<T>: how expected failures travel in Sluice.
//
// Functions that can fail for reasons outside the programmer's control (I/O,
// bad input, a peer that went away) return Status or Result<T>. Exceptions
// are used only inside a component and are translated at its edge.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace sluice {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kIoError,
  kCorruption,
  kUnavailable,
  kCancelled,
  kFailedPrecondition,
  kTimeout,
  kPermissionDenied,
  kResourceExhausted,
  kUnimplemented,
  kInternal,
};

std::string_view status_code_name(StatusCode code);

/// The outcome of an operation: ok, or a code with a message meant for the
/// person who has to fix it. Cheap to copy when ok (no allocation).
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message);

  static Status ok() { return Status(); }
  static Status invalid_argument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status not_found(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status already_exists(std::string msg) {
    return {StatusCode::kAlreadyExists, std::move(msg)};
  }
  static Status io_error(std::string msg) { return {StatusCode::kIoError, std::move(msg)}; }
  static Status corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status unavailable(std::string msg) {
    return {StatusCode::kUnavailable, std::move(msg)};
  }
  static Status cancelled(std::string msg) { return {StatusCode::kCancelled, std::move(msg)}; }
  static Status failed_precondition(std::string msg) {
    return {StatusCode::kFailedPrecondition, std::move(msg)};
  }
  static Status timeout(std::string msg) { return {StatusCode::kTimeout, std::move(msg)}; }
  static Status permission_denied(std::string msg) {
    return {StatusCode::kPermissionDenied, std::move(msg)};
  }
  static Status resource_exhausted(std::string msg) {
    return {StatusCode::kResourceExhausted, std::move(msg)};
  }
  static Status unimplemented(std::string msg) {
    return {StatusCode::kUnimplemented, std::move(msg)};
  }
  static Status internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
  /// errno-based I/O error: "<what>: <strerror(err)>".
  static Status from_errno(std::string_view what, int err);

  bool is_ok() const { return state_ == nullptr; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return state_ ? state_->code : StatusCode::kOk; }
  const std::string& message() const;
  /// "CODE: message" (or "OK").
  std::string to_string() const;
  /// The same status with "context: " in front of the message.
  Status with_context(std::string_view context) const;

 private:
  struct State {
    StatusCode code;
    std::string message;
  };
  // shared: copies of an error status are common (fan-out to callers) and
  // the state is immutable.
  std::shared_ptr<const State> state_;
};

/// A value or the Status that explains why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: implicit by design

  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const {
    static const Status kOk;
    return is_ok() ? kOk : std::get<1>(v_);
  }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T value_or(T fallback) const& { return is_ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

/// Whether a task that failed with `st` would fail the same way after a
/// restart, so that the job fails instead of restarting: the input or the
/// configuration is wrong (kInvalidArgument, kFailedPrecondition,
/// kUnimplemented), something named does not exist (kNotFound: an input
/// file, a topic, a table) or credentials are refused (kPermissionDenied).
/// I/O errors, unreachable peers, timeouts, lost connections and internal
/// errors are transient: the job restarts from its last checkpoint.
bool is_permanent_error(const Status& st);

}  // namespace sluice

#define SLUICE_CONCAT_INNER(a, b) a##b
#define SLUICE_CONCAT(a, b) SLUICE_CONCAT_INNER(a, b)

/// Returns the status from the enclosing function if it is not ok.
#define SLUICE_RETURN_IF_ERROR(expr)          \
  do {                                        \
    ::sluice::Status _sluice_st = (expr);     \
    if (!_sluice_st.is_ok()) return _sluice_st; \
  } while (0)

/// `SLUICE_ASSIGN_OR_RETURN(auto x, f());` declares x from an ok Result or
/// returns its status.
#define SLUICE_ASSIGN_OR_RETURN(lhs, expr) \
  SLUICE_ASSIGN_OR_RETURN_IMPL(SLUICE_CONCAT(_sluice_res_, __LINE__), lhs, expr)
#define SLUICE_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

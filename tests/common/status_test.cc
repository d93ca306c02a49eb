#include "engine/common/status.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace sluice {
namespace {

TEST(Status, DefaultIsOkWithEmptyMessage) {
  Status st;
  EXPECT_TRUE(st.is_ok());
  EXPECT_TRUE(static_cast<bool>(st));
  EXPECT_EQ(st.code(), StatusCode::kOk);
  EXPECT_EQ(st.message(), "");
  EXPECT_EQ(st.to_string(), "OK");
  EXPECT_TRUE(Status::ok().is_ok());
}

TEST(Status, ConstructingWithOkCodeDropsTheMessage) {
  Status st(StatusCode::kOk, "ignored");
  EXPECT_TRUE(st.is_ok());
  EXPECT_EQ(st.message(), "");
}

TEST(Status, FactoriesSetCodeAndMessage) {
  struct Case {
    Status st;
    StatusCode code;
    const char* name;
  };
  std::vector<Case> cases = {
      {Status::invalid_argument("m"), StatusCode::kInvalidArgument, "INVALID_ARGUMENT"},
      {Status::not_found("m"), StatusCode::kNotFound, "NOT_FOUND"},
      {Status::already_exists("m"), StatusCode::kAlreadyExists, "ALREADY_EXISTS"},
      {Status::io_error("m"), StatusCode::kIoError, "IO_ERROR"},
      {Status::corruption("m"), StatusCode::kCorruption, "CORRUPTION"},
      {Status::unavailable("m"), StatusCode::kUnavailable, "UNAVAILABLE"},
      {Status::cancelled("m"), StatusCode::kCancelled, "CANCELLED"},
      {Status::failed_precondition("m"), StatusCode::kFailedPrecondition, "FAILED_PRECONDITION"},
      {Status::timeout("m"), StatusCode::kTimeout, "TIMEOUT"},
      {Status::permission_denied("m"), StatusCode::kPermissionDenied, "PERMISSION_DENIED"},
      {Status::resource_exhausted("m"), StatusCode::kResourceExhausted, "RESOURCE_EXHAUSTED"},
      {Status::unimplemented("m"), StatusCode::kUnimplemented, "UNIMPLEMENTED"},
      {Status::internal("m"), StatusCode::kInternal, "INTERNAL"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_FALSE(c.st.is_ok());
    EXPECT_FALSE(static_cast<bool>(c.st));
    EXPECT_EQ(c.st.code(), c.code);
    EXPECT_EQ(c.st.message(), "m");
    EXPECT_EQ(status_code_name(c.code), c.name);
    EXPECT_EQ(c.st.to_string(), std::string(c.name) + ": m");
  }
}

TEST(Status, FromErrnoIsAnIoErrorWithTheSystemMessage) {
  Status st = Status::from_errno("open /nope", ENOENT);
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_EQ(st.message(), std::string("open /nope: ") + std::strerror(ENOENT));
}

TEST(Status, WithContextPrefixesTheMessageAndKeepsTheCode) {
  Status st = Status::not_found("no such topic").with_context("kafka source 'clicks'");
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_EQ(st.message(), "kafka source 'clicks': no such topic");
  // Nested contexts read outermost first.
  EXPECT_EQ(st.with_context("job").message(), "job: kafka source 'clicks': no such topic");
}

TEST(Status, WithContextOnOkStaysOk) {
  Status st = Status::ok().with_context("ctx");
  EXPECT_TRUE(st.is_ok());
  EXPECT_EQ(st.message(), "");
}

TEST(Status, CopiesAreIndependentValues) {
  Status a = Status::corruption("bad");
  Status b = a;
  Status c = b.with_context("x");
  EXPECT_EQ(a.message(), "bad");
  EXPECT_EQ(b.message(), "bad");
  EXPECT_EQ(c.message(), "x: bad");
  b = Status::ok();
  EXPECT_FALSE(a.is_ok());
  EXPECT_TRUE(b.is_ok());
}

TEST(Result, HoldsAValue) {
  Result<int> r = 42;
  ASSERT_TRUE(r.is_ok());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_TRUE(r.status().is_ok());
  EXPECT_EQ(r.value_or(7), 42);
}

TEST(Result, HoldsAStatus) {
  Result<int> r = Status::not_found("missing");
  EXPECT_FALSE(r.is_ok());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), "missing");
  EXPECT_EQ(r.value_or(7), 7);
}

TEST(Result, ArrowAndMoveOutOfValue) {
  Result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  r->append("!");
  std::string moved = std::move(r).value();
  EXPECT_EQ(moved, "hello!");
}

TEST(Result, WorksWithMoveOnlyTypes) {
  Result<std::unique_ptr<int>> r = std::make_unique<int>(3);
  ASSERT_TRUE(r.is_ok());
  std::unique_ptr<int> p = std::move(r).value();
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 3);
}

// --- macros ----------------------------------------------------------------

Status fails_with(StatusCode code, int* calls) {
  ++*calls;
  return Status(code, "inner");
}

Status uses_return_if_error(bool fail, int* after) {
  int calls = 0;
  SLUICE_RETURN_IF_ERROR(fail ? fails_with(StatusCode::kTimeout, &calls) : Status::ok());
  ++*after;
  return Status::ok();
}

TEST(StatusMacros, ReturnIfErrorPropagatesTheErrorAndStops) {
  int after = 0;
  Status st = uses_return_if_error(true, &after);
  EXPECT_EQ(st.code(), StatusCode::kTimeout);
  EXPECT_EQ(st.message(), "inner");
  EXPECT_EQ(after, 0);
}

TEST(StatusMacros, ReturnIfErrorContinuesOnOk) {
  int after = 0;
  EXPECT_TRUE(uses_return_if_error(false, &after).is_ok());
  EXPECT_EQ(after, 1);
}

TEST(StatusMacros, ReturnIfErrorEvaluatesItsArgumentOnce) {
  int calls = 0;
  auto f = [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(fails_with(StatusCode::kInternal, &calls));
    return Status::ok();
  };
  (void)f();
  EXPECT_EQ(calls, 1);
}

TEST(StatusMacros, ReturnIfErrorWorksAsASingleStatementInIfElse) {
  // The do/while(0) wrapper makes the macro one statement.
  auto f = [](bool a) -> Status {
    if (a)
      SLUICE_RETURN_IF_ERROR(Status::cancelled("a"));
    else
      SLUICE_RETURN_IF_ERROR(Status::unavailable("b"));
    return Status::ok();
  };
  EXPECT_EQ(f(true).code(), StatusCode::kCancelled);
  EXPECT_EQ(f(false).code(), StatusCode::kUnavailable);
}

Result<int> parse_positive(int v) {
  if (v <= 0) return Status::invalid_argument("not positive: " + std::to_string(v));
  return v;
}

Result<int> sum_two(int a, int b, int* reached) {
  SLUICE_ASSIGN_OR_RETURN(int x, parse_positive(a));
  ++*reached;
  // Two uses in one function must not clash (unique temporaries per line).
  SLUICE_ASSIGN_OR_RETURN(int y, parse_positive(b));
  ++*reached;
  return x + y;
}

TEST(StatusMacros, AssignOrReturnAssignsOnOk) {
  int reached = 0;
  Result<int> r = sum_two(2, 3, &reached);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(*r, 5);
  EXPECT_EQ(reached, 2);
}

TEST(StatusMacros, AssignOrReturnReturnsTheFirstError) {
  int reached = 0;
  Result<int> r = sum_two(-1, 3, &reached);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "not positive: -1");
  EXPECT_EQ(reached, 0);

  reached = 0;
  r = sum_two(1, 0, &reached);
  EXPECT_EQ(r.status().message(), "not positive: 0");
  EXPECT_EQ(reached, 1);
}

Status assign_existing(std::string& out, Result<std::string> in) {
  SLUICE_ASSIGN_OR_RETURN(out, std::move(in));
  return Status::ok();
}

TEST(StatusMacros, AssignOrReturnCanAssignToAnExistingVariable) {
  std::string s = "old";
  EXPECT_TRUE(assign_existing(s, std::string("new")).is_ok());
  EXPECT_EQ(s, "new");
  EXPECT_FALSE(assign_existing(s, Status::io_error("disk")).is_ok());
  EXPECT_EQ(s, "new");
}

Result<std::unique_ptr<int>> make_ptr(bool ok) {
  if (!ok) return Status::resource_exhausted("no memory");
  return std::make_unique<int>(9);
}

Result<int> deref_ptr(bool ok) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<int> p, make_ptr(ok));
  return *p;
}

TEST(StatusMacros, AssignOrReturnMovesMoveOnlyValues) {
  EXPECT_EQ(deref_ptr(true).value(), 9);
  EXPECT_EQ(deref_ptr(false).status().code(), StatusCode::kResourceExhausted);
}

TEST(Status, PermanentErrorsAreThoseARestartCannotFix) {
  for (const Status& st : {Status::invalid_argument("x"), Status::not_found("input missing"),
                           Status::failed_precondition("table"), Status::permission_denied("password"),
                           Status::invalid_argument("x").with_context("opening 'clicks'")}) {
    EXPECT_TRUE(is_permanent_error(st)) << st.to_string();
  }
  for (const Status& st : {Status::ok(), Status::io_error("disk"), Status::unavailable("broker"),
                           Status::timeout("slow"), Status::internal("user function threw"),
                           Status::cancelled("stop"), Status::corruption("frame")}) {
    EXPECT_FALSE(is_permanent_error(st)) << st.to_string();
  }
}

}  // namespace
}  // namespace sluice

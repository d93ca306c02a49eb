// What CEP conditions see. A simple condition looks at the event alone,
//   .where([](const Login& l) { return !l.success; })
// an iterative one also at the events the partial match has taken so far,
//   .where([](const Purchase& p, const cep::MatchContext<Purchase>& ctx) {
//     double sum = 0;
//     for (const Purchase& e : ctx.events("small")) sum += e.amount;
//     return p.amount > sum;
//   })
// Simple conditions are evaluated once per event for all partial matches;
// iterative ones once per partial match that could take or reject the
// event, so they cost work per partial match (see README.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace sluice::cep {

/// Events of one step of a partial match, in order. A view: valid during
/// the condition call only. Iterates `const E&`.
template <class E>
class EventsView {
 public:
  class iterator {
   public:
    using value_type = E;
    using difference_type = std::ptrdiff_t;
    using reference = const E&;
    explicit iterator(const E* const* p = nullptr) : p_(p) {}
    const E& operator*() const { return **p_; }
    const E* operator->() const { return *p_; }
    iterator& operator++() {
      ++p_;
      return *this;
    }
    iterator operator++(int) {
      iterator t = *this;
      ++p_;
      return t;
    }
    bool operator==(const iterator& o) const { return p_ == o.p_; }

   private:
    const E* const* p_;
  };

  EventsView() = default;
  explicit EventsView(const std::vector<const E*>* events) : events_(events) {}
  iterator begin() const { return iterator(events_ ? events_->data() : nullptr); }
  iterator end() const { return iterator(events_ ? events_->data() + events_->size() : nullptr); }
  size_t size() const { return events_ ? events_->size() : 0; }
  bool empty() const { return size() == 0; }
  const E& operator[](size_t i) const { return *(*events_)[i]; }
  const E& front() const { return *events_->front(); }
  const E& back() const { return *events_->back(); }

 private:
  const std::vector<const E*>* events_ = nullptr;
};

/// What an iterative condition sees besides the event: the partial match
/// it would extend. Implemented by the NFA; used on the task thread only.
template <class E>
class MatchContext {
 public:
  virtual ~MatchContext() = default;
  /// The events already matched under step `name` (for the step being
  /// evaluated: its earlier events), in order; empty if none.
  virtual EventsView<E> events(std::string_view name) const = 0;
  /// Timestamp of the event being evaluated.
  virtual int64_t timestamp() const = 0;
};

}  // namespace sluice::cep

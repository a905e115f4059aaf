// The attempt engine's decisions; see attempt_engine.h.
#include "modelmux/attempt_engine.h"

#include <algorithm>

namespace modelmux {

AdmittedSteps admit_steps(const std::vector<StepTraits>& traits, bool budget_exhausted) {
  AdmittedSteps admitted;
  for (size_t i = 0; i < traits.size(); ++i) {
    if (budget_exhausted && traits[i].priced) {
      admitted.priced_skipped = true;
    } else if (traits[i].compatible) {
      admitted.steps.push_back(i);
    } else if (!admitted.first_incompatible) {
      admitted.first_incompatible = i;
    }
  }
  return admitted;
}

namespace {

AttemptEngine::Action action(AttemptEngine::Action::Kind kind, size_t id = 0, size_t step = 0) {
  AttemptEngine::Action a;
  a.kind = kind;
  a.id = id;
  a.step = step;
  return a;
}

} // namespace

AttemptEngine::AttemptEngine(std::vector<AttemptStep> steps, Options options)
    : m_steps(std::move(steps)), m_options(options) {
  // A request without a hedge or a 429 opens one contender and takes a handful of actions.
  m_contenders.reserve(2);
  m_actions.reserve(4);
}

void AttemptEngine::start(Clock::time_point now) {
  open_next(now);
}

void AttemptEngine::open_next(Clock::time_point now) {
  if (m_next_step >= m_steps.size() || now >= m_options.deadline) {
    m_phase = Phase::failed;
    emit(action(Action::Kind::fail));
    return;
  }
  open(m_next_step++, 0, false, now);
}

bool AttemptEngine::may_hedge(size_t step) const {
  return m_options.hedge_after.count() > 0 && !m_draining && m_steps[step].hedgeable &&
         m_next_step < m_steps.size() && m_steps[m_next_step].hedgeable;
}

void AttemptEngine::open(size_t step, size_t key_try, bool hedge, Clock::time_point now) {
  Contender c;
  c.step = step;
  c.key_try = key_try;
  c.hedge = hedge;
  c.first_byte_deadline = std::min(m_options.deadline, now + m_steps[step].first_byte_timeout);
  // A first try that a hedge may race arms the hedge's timer; a key rotation keeps the timer
  // its step armed.
  if (!hedge && key_try == 0 && may_hedge(step)) {
    m_hedge_at = now + m_options.hedge_after;
  }
  m_contenders.push_back(c);
  Action a = action(Action::Kind::open, m_contenders.size() - 1, step);
  a.key_try = key_try;
  a.raced = hedge || m_hedge_at.has_value();
  a.hedge = hedge;
  a.first_byte_deadline = c.first_byte_deadline;
  emit(std::move(a));
}

AttemptEngine::Contender* AttemptEngine::running(size_t id) {
  if (m_phase != Phase::trying || id >= m_contenders.size() ||
      m_contenders[id].state != State::running) {
    return nullptr;
  }
  return &m_contenders[id];
}

size_t AttemptEngine::running_count() const {
  return static_cast<size_t>(
      std::count_if(m_contenders.begin(), m_contenders.end(),
                    [](const Contender& c) { return c.state == State::running; }));
}

void AttemptEngine::record(const Contender& c, Outcome outcome, std::string detail, bool counted) {
  Action a = action(Action::Kind::record, static_cast<size_t>(&c - m_contenders.data()), c.step);
  a.key_try = c.key_try;
  a.outcome = outcome;
  a.detail = std::move(detail);
  a.counted = counted;
  emit(std::move(a));
}

void AttemptEngine::drop(size_t id, Clock::time_point now) {
  Contender& c = m_contenders[id];
  c.state = State::done;
  if (running_count() > 0) {
    return; // the race goes on without it
  }
  m_hedge_at.reset();
  open_next(now);
}

void AttemptEngine::win(size_t id) {
  m_winner = id;
  m_contenders[id].state = State::won;
  m_hedge_at.reset();
  for (size_t other = 0; other < m_contenders.size(); ++other) {
    Contender& loser = m_contenders[other];
    if (loser.state != State::running) {
      continue;
    }
    // Cancelled: the upstream stops generating, and nothing of it is billed.
    loser.state = State::done;
    emit(action(Action::Kind::cancel, other, loser.step));
    record(loser, Outcome::timeout,
           "raced and lost to " + std::string(m_steps[m_contenders[id].step].label), false);
  }
}

AttemptEngine::Clock::time_point AttemptEngine::sent(size_t id, Clock::time_point now) {
  Contender* c = running(id);
  if (c == nullptr) {
    return now; // decided already: the transport's deadline no longer matters
  }
  c->first_byte_deadline = std::min(m_options.deadline, now + m_steps[c->step].first_byte_timeout);
  if (m_hedge_at && !c->hedge && c->key_try == 0) {
    m_hedge_at = now + m_options.hedge_after; // the hedge waits for a slow answer, not a queue
  }
  return c->first_byte_deadline;
}

void AttemptEngine::not_sent(size_t id, NotSent why, Clock::time_point now) {
  Contender* c = running(id);
  if (c == nullptr) {
    return;
  }
  if (why == NotSent::keys_cooling) {
    const bool rotated = m_steps[c->step].keys > 1;
    record(*c, Outcome::http_429,
           rotated ? "HTTP 429 on every key, cooling down" : "HTTP 429, cooling down");
  }
  if (c->hedge) {
    m_next_step = c->step; // never raced: its step is still to be tried
  }
  drop(id, now);
}

void AttemptEngine::head(size_t id, int status, Clock::time_point now) {
  Contender* c = running(id);
  if (c == nullptr) {
    return;
  }
  c->status = status;
  const Outcome outcome = outcome_from(status);
  switch (outcome) {
  case Outcome::ok:
    if (!m_options.stream) {
      win(id);
      m_phase = Phase::serving;
      emit(action(Action::Kind::serve, id, c->step));
    }
    return; // a stream wins with its first output
  case Outcome::http_4xx:
    // The client's own error: its body goes back, and no other target would answer better.
    win(id);
    m_phase = Phase::serving;
    emit(action(Action::Kind::serve, id, c->step));
    return;
  case Outcome::http_429: {
    // The target's next key, before the 429 counts against the target; a racer gets one key.
    c->state = State::done;
    emit(action(Action::Kind::cancel, id, c->step));
    const size_t keys = std::max<size_t>(1, m_steps[c->step].keys);
    if (!c->hedge && running_count() == 0 && c->key_try + 1 < keys) {
      const size_t step = c->step;
      const size_t key_try = c->key_try + 1;
      open(step, key_try, false, now);
      return;
    }
    record(*c, Outcome::http_429,
           keys > 1 && c->key_try + 1 >= keys ? "HTTP 429 on every key, cooling down"
                                              : "HTTP 429, cooling down");
    drop(id, now);
    return;
  }
  default:
    c->state = State::done;
    emit(action(Action::Kind::cancel, id, c->step));
    record(*c, outcome, "HTTP " + std::to_string(status));
    drop(id, now);
    return;
  }
}

void AttemptEngine::first_output(size_t id, Clock::time_point now) {
  Contender* c = running(id);
  if (c == nullptr) {
    return;
  }
  win(id);
  // On the attempt list now for the answer's headers; it settles in the metrics and health
  // when the stream ends.
  record(*c, Outcome::ok, "HTTP " + std::to_string(c->status), false);
  m_phase = Phase::streaming;
  m_last_stream_bytes = now;
  emit(action(Action::Kind::commit, id, c->step));
}

void AttemptEngine::failed(size_t id, Outcome outcome, std::string detail, Clock::time_point now) {
  Contender* c = running(id);
  if (c == nullptr) {
    return;
  }
  emit(action(Action::Kind::cancel, id, c->step));
  record(*c, outcome, std::move(detail));
  drop(id, now);
}

void AttemptEngine::answered(size_t id, Outcome outcome, std::string detail,
                             Clock::time_point now) {
  if (m_phase != Phase::serving || id != m_winner) {
    return;
  }
  Contender& c = m_contenders[id];
  record(c, outcome, std::move(detail));
  if (outcome == Outcome::ok || outcome == Outcome::http_4xx) {
    m_phase = Phase::delivered;
    emit(action(Action::Kind::deliver, id, c.step));
    return;
  }
  // The answer broke off or could not be read: the chain goes on.
  emit(action(Action::Kind::cancel, id, c.step));
  c.state = State::done;
  m_phase = Phase::trying;
  open_next(now);
}

void AttemptEngine::concluded(size_t id, bool served, Clock::time_point now) {
  if (running(id) == nullptr) {
    return;
  }
  if (served) {
    m_contenders[id].state = State::won;
    m_winner = id;
    m_phase = Phase::delivered;
    return;
  }
  drop(id, now);
}

void AttemptEngine::tick(Clock::time_point now) {
  if (m_phase != Phase::trying) {
    return;
  }
  std::vector<size_t> overdue;
  for (size_t id = 0; id < m_contenders.size(); ++id) {
    const Contender& c = m_contenders[id];
    if (c.state == State::running && now >= c.first_byte_deadline) {
      overdue.push_back(id);
    }
  }
  for (const size_t id : overdue) {
    if (running(id) != nullptr) {
      failed(id, Outcome::timeout, "no first byte in time", now);
    }
  }
  if (m_phase == Phase::trying && m_hedge_at && now >= *m_hedge_at) {
    m_hedge_at.reset();
    if (running_count() == 1 && m_next_step < m_steps.size()) {
      open(m_next_step++, 0, true, now);
    }
  }
}

void AttemptEngine::drain() {
  m_draining = true;
  m_hedge_at.reset();
}

std::optional<AttemptEngine::Action> AttemptEngine::next_action() {
  if (m_next_action == m_actions.size()) {
    m_actions.clear(); // keeps its capacity: a request allocates it once
    m_next_action = 0;
    return std::nullopt;
  }
  return std::move(m_actions[m_next_action++]);
}

std::optional<AttemptEngine::Clock::time_point> AttemptEngine::next_timer() const {
  if (m_phase != Phase::trying) {
    return std::nullopt;
  }
  std::optional<Clock::time_point> next = m_hedge_at;
  for (const auto& c : m_contenders) {
    if (c.state == State::running && (!next || c.first_byte_deadline < *next)) {
      next = c.first_byte_deadline;
    }
  }
  return next;
}

void AttemptEngine::stream_bytes(Clock::time_point now) {
  m_last_stream_bytes = now;
}

AttemptEngine::Clock::time_point AttemptEngine::stream_read_deadline() const {
  const auto idle = m_steps[m_contenders[m_winner].step].idle_timeout;
  return std::min(m_options.deadline, m_last_stream_bytes + idle);
}

std::optional<Outcome> AttemptEngine::stream_timed_out(Clock::time_point now) const {
  if (now >= m_options.deadline) {
    return Outcome::timeout;
  }
  if (now >= m_last_stream_bytes + m_steps[m_contenders[m_winner].step].idle_timeout) {
    return Outcome::idle;
  }
  return std::nullopt;
}

Outcome AttemptEngine::stream_outcome(bool complete, std::optional<Outcome> failure) {
  if (failure) {
    return *failure;
  }
  return complete ? Outcome::ok : Outcome::truncated;
}

} // namespace modelmux

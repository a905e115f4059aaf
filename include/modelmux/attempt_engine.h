// The attempt engine: which target a request tries next and with which key, when a second
// target races a slow first and who wins, when an attempt or the request has run out of time,
// and when a committed stream has gone silent or ended short. It is a state machine fed events
// (a contender's head, its first output, its failure, a timer at `now`) that emits actions (open,
// cancel, record, serve, commit, deliver, fail), with the time passed in: fallback, hedging, 429
// key rotation, deadlines, idle and truncation, budgets and drain are decided here without a
// socket, and the proxy's transport only carries the actions out. A leaf: it names no network
// library.
#pragma once

#include "modelmux/outcome.h"

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace modelmux {

// One target of a request's chain, as the engine sees it.
struct AttemptStep {
  // The target's one name: a view of the caller's, read only while the chain is tried (so a
  // request copies no label into its engine).
  std::string_view label;
  size_t keys = 1;       // API keys a 429 may rotate through
  bool hedgeable = true; // may race or be raced (a mock answers at once: never)
  std::chrono::milliseconds first_byte_timeout{60000};
  std::chrono::milliseconds idle_timeout{60000};
};

// What the budget and the route's protocol let a chain try: the indexes of the steps that may
// be tried, in order. Over budget only free (unpriced) steps serve; a step whose protocol the
// route cannot be translated to is never tried.
struct StepTraits {
  bool priced = false;
  bool compatible = true;
};
struct AdmittedSteps {
  std::vector<size_t> steps;
  bool priced_skipped = false;              // the budget held back at least one
  std::optional<size_t> first_incompatible; // the first step the route cannot speak to
};
AdmittedSteps admit_steps(const std::vector<StepTraits>& traits, bool budget_exhausted);

class AttemptEngine {
public:
  using Clock = std::chrono::steady_clock;

  struct Options {
    Clock::time_point deadline = Clock::time_point::max(); // the whole request's
    std::chrono::milliseconds hedge_after{0};              // 0: never hedge
    bool stream = false; // a stream is won by its first relayed output, not by its head
  };

  struct Action {
    enum class Kind {
      // Start contender `id` on `step` with the key after `key_try` rotations, its first byte
      // due by `first_byte_deadline`. `raced`: another contender may run beside it, so the
      // transport runs it concurrently. `hedge`: it races a slow one, so it takes a target slot
      // only if one is free now (a hedge never queues).
      open,
      // Close contender id's upstream: it lost a race, failed or ran out of time.
      cancel,
      // An attempt at `step` ended with `outcome` and `detail`. `counted`: in the metrics and
      // the target's health (a lost race and a stream, settled when it ends, are not).
      record,
      // Contender id has a whole answer (or a client error) coming: read it and report
      // answered().
      serve,
      // The answer id read is good: send it to the client. The request is over.
      deliver,
      // Contender id's stream has its first output: relay it. The engine now watches the stream.
      commit,
      // No target could serve: answer with the attempts' error. The request is over.
      fail,
    };
    Kind kind = Kind::fail;
    size_t id = 0;
    size_t step = 0;
    size_t key_try = 0;
    bool raced = false;
    bool hedge = false;
    Clock::time_point first_byte_deadline;
    Outcome outcome = Outcome::ok;
    std::string detail;
    bool counted = true;
  };

  // Why an opened contender never reached its upstream; none of these is a failed attempt of
  // the target but keys_cooling (every key is in a 429's cool-down), which counts as a 429.
  enum class NotSent { busy, untranslatable, keys_cooling };

  AttemptEngine(std::vector<AttemptStep> steps, Options options);

  void start(Clock::time_point now);

  // Events about contender id. One about a contender already decided is ignored, so a
  // transport may report what it saw even after the engine cancelled it.
  //
  // sent: its request went out (after its slot, maybe queued for); the time to its first byte
  // runs from now, as does the hedge's, and the deadline it returns is the one the transport
  // gives the head (and a stream's first output).
  Clock::time_point sent(size_t id, Clock::time_point now);
  void not_sent(size_t id, NotSent why, Clock::time_point now);
  void head(size_t id, int status, Clock::time_point now);
  void first_output(size_t id, Clock::time_point now);
  void failed(size_t id, Outcome outcome, std::string detail, Clock::time_point now);
  // After serve: how reading (and translating) the answer went; ok and http_4xx deliver it.
  void answered(size_t id, Outcome outcome, std::string detail, Clock::time_point now);
  // The transport carried contender id's whole attempt out itself and recorded it (a mock
  // target): served, or the chain goes on.
  void concluded(size_t id, bool served, Clock::time_point now);
  // Timers: a first byte overdue, the hedge due, the request's deadline passed.
  void tick(Clock::time_point now);
  // The daemon is draining: no new hedge starts (a stop does not double upstream work), but a
  // request still falls back, within its deadline, rather than be lost.
  void drain();

  std::optional<Action> next_action();
  Clock::time_point first_byte_deadline(size_t id) const {
    return m_contenders[id].first_byte_deadline;
  }
  // When tick() next has something to decide; nullopt: only events move the engine.
  std::optional<Clock::time_point> next_timer() const;
  bool over() const { return m_phase == Phase::delivered || m_phase == Phase::failed; }
  bool committed() const { return m_phase == Phase::streaming; }
  // Over with an answer: delivered, committed to a stream, or served by the transport itself.
  bool served() const { return m_phase == Phase::delivered || m_phase == Phase::streaming; }

  // A committed stream: bytes came at now (the idle window starts again); the deadline its
  // next read must come by; and what a read that timed out at now means: idle (silent for its
  // idle window), timeout (the request's deadline passed), or nullopt (neither: read again).
  void stream_bytes(Clock::time_point now);
  Clock::time_point stream_read_deadline() const;
  std::optional<Outcome> stream_timed_out(Clock::time_point now) const;
  // How a committed stream settles once it stopped: complete, it is ok; ended by the upstream
  // before its answer was complete, truncated; else the failure that stopped it.
  static Outcome stream_outcome(bool complete, std::optional<Outcome> failure);

private:
  enum class Phase { trying, serving, streaming, delivered, failed };
  enum class State { running, won, done };
  struct Contender {
    size_t step = 0;
    size_t key_try = 0;
    bool hedge = false;
    int status = 0;
    State state = State::running;
    Clock::time_point first_byte_deadline;
  };

  void open(size_t step, size_t key_try, bool hedge, Clock::time_point now);
  void open_next(Clock::time_point now);
  void emit(Action action) { m_actions.push_back(std::move(action)); }
  void record(const Contender& c, Outcome outcome, std::string detail, bool counted = true);
  // Contender id is out (failed, timed out, not sent): the race goes on without it, or the
  // chain moves on.
  void drop(size_t id, Clock::time_point now);
  // Contender id wins: every other running one is cancelled.
  void win(size_t id);
  Contender* running(size_t id);
  size_t running_count() const;
  bool may_hedge(size_t step) const;

  std::vector<AttemptStep> m_steps;
  Options m_options;
  std::vector<Contender> m_contenders; // by id
  std::vector<Action> m_actions;       // pending from m_next_action on
  size_t m_next_action = 0;
  Phase m_phase = Phase::trying;
  size_t m_next_step = 0; // the first step not tried yet
  std::optional<Clock::time_point> m_hedge_at;
  size_t m_hedge_step = 0; // the step the hedge would race with
  bool m_draining = false;
  size_t m_winner = 0;
  Clock::time_point m_last_stream_bytes;
};

} // namespace modelmux

// The link to Redis: a thread with its own event loop, a command connection and a subscriber.
#include "net/redis_link.h"

#include "modelmux/usage.h"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <deque>
#include <future>
#include <hiredis/hiredis.h>
#include <mutex>
#include <thread>

namespace modelmux::net {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
using namespace asio::experimental::awaitable_operators;
using tcp = asio::ip::tcp;
using error_code = boost::system::error_code;
using Clock = std::chrono::steady_clock;
template <class T> using Task = asio::awaitable<T>;
constexpr auto k_use = asio::as_tuple(asio::use_awaitable);

// How long a connection attempt (TCP, TLS and AUTH) may take, and the backoff between attempts.
constexpr auto k_connect_timeout = std::chrono::seconds(2);
constexpr auto k_first_backoff = std::chrono::milliseconds(100);
constexpr auto k_max_backoff = std::chrono::seconds(2);
// How often the spend is sent (and the fleet's totals read).
constexpr auto k_flush_interval = std::chrono::milliseconds(100);
// Commands queued at most; past it a write is dropped and a read answered "absent".
constexpr size_t k_max_queued = 10'000;
// Spend keys outlive their period by a little, so a late instance still adds to the right total.
constexpr int64_t k_month_key_seconds = 40 * 86400;
constexpr int64_t k_day_key_seconds = 3 * 86400;

int64_t utc_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct ReplyFree {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;
struct ReaderFree {
  void operator()(redisReader* r) const { redisReaderFree(r); }
};

// RESP for one command, written by hiredis.
std::string format_command(const std::vector<std::string>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  char* target = nullptr;
  const int length =
      redisFormatCommandArgv(&target, static_cast<int>(argv.size()), argv.data(), lengths.data());
  std::string out;
  if (length > 0 && target != nullptr) {
    out.assign(target, static_cast<size_t>(length));
  }
  redisFreeCommand(target);
  return out;
}

// One connection to Redis, TCP or TLS, with hiredis's reader over what arrives.
struct Connection {
  explicit Connection(asio::io_context& io) : tcp(io), reader(redisReaderCreate()) {}
  beast::tcp_stream tcp;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
  std::unique_ptr<redisReader, ReaderFree> reader;
  std::array<char, 16 * 1024> buffer{};

  beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : tcp; }

  Task<error_code> write(const std::string& bytes) {
    error_code ec;
    if (tls) {
      std::tie(ec, std::ignore) = co_await asio::async_write(*tls, asio::buffer(bytes), k_use);
    } else {
      std::tie(ec, std::ignore) = co_await asio::async_write(tcp, asio::buffer(bytes), k_use);
    }
    co_return ec;
  }

  // The next whole reply; null with why set when the connection failed or the bytes are not RESP.
  Task<Reply> read(std::string& why) {
    for (;;) {
      void* raw = nullptr;
      if (redisReaderGetReply(reader.get(), &raw) != REDIS_OK) {
        why = "Redis sent bytes that are not RESP";
        co_return nullptr;
      }
      if (raw != nullptr) {
        co_return Reply(static_cast<redisReply*>(raw));
      }
      error_code ec;
      size_t n = 0;
      if (tls) {
        std::tie(ec, n) = co_await tls->async_read_some(asio::buffer(buffer), k_use);
      } else {
        std::tie(ec, n) = co_await tcp.async_read_some(asio::buffer(buffer), k_use);
      }
      if (ec) {
        why = ec == beast::error::timeout ? "timed out" : "connection lost: " + ec.message();
        co_return nullptr;
      }
      redisReaderFeed(reader.get(), buffer.data(), n);
    }
  }
};

class RedisLink final : public SharedState {
public:
  RedisLink(const RedisConfig& config, Log& log)
      : m_config(config), m_log(log), m_tls(asio::ssl::context::tls_client), m_wake(m_io) {
    m_tls.set_default_verify_paths();
    m_status.url = config.url;
    m_status.since_ms = utc_now_ms();
    asio::co_spawn(m_io, run(), asio::detached);
    asio::co_spawn(m_io, subscribe(), asio::detached);
    asio::co_spawn(m_io, flush(), asio::detached);
    m_thread = std::thread([this] { m_io.run(); });
  }

  ~RedisLink() override {
    send_last_spend(std::chrono::seconds(1));
    {
      std::lock_guard lock(m_mutex);
      m_stopping = true;
    }
    m_io.stop();
    m_thread.join();
    // Callbacks still queued or awaiting an answer are dropped, never run: their waiters are
    // on event loops that are going away too.
    m_queue.clear();
  }

  // A clean stop: the spend not yet sent goes now, waited for at most `within`, so the fleet's
  // total keeps every request this instance served.
  void send_last_spend(std::chrono::milliseconds within) {
    if (status().state != SharedStatus::State::up) {
      return;
    }
    auto finished = std::make_shared<std::promise<void>>();
    auto left = std::make_shared<std::atomic<int>>(1);
    const auto one_done = [finished, left] {
      if (--*left == 0) {
        finished->set_value();
      }
    };
    for (const auto& inc : m_spend.take(utc_now_ms())) {
      if (inc.micros == 0) {
        continue;
      }
      ++*left;
      const auto on_reply = [this, inc, one_done](const redisReply* r) {
        if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
          m_spend.acknowledge(inc.period, inc.micros, r->integer);
        } else {
          m_spend.restore(inc.period, inc.micros);
        }
        one_done();
      };
      if (!submit(
              {"INCRBY", m_config.key_prefix + "spend:" + inc.period, std::to_string(inc.micros)},
              on_reply)) {
        m_spend.restore(inc.period, inc.micros);
        one_done();
      }
    }
    auto sent = finished->get_future();
    one_done();
    if (sent.wait_for(within) != std::future_status::ready) {
      m_log.warn("redis_spend_unsent", {{"usd", usd_from_micros(m_spend.unsent())}});
    }
  }

  SharedStatus status() const override {
    std::lock_guard lock(m_mutex);
    auto s = m_status;
    s.unsent_micros = m_spend.unsent();
    return s;
  }

  SharedSpend& spend() override { return m_spend; }

  void put(std::string key, std::string value, std::chrono::milliseconds ttl) override {
    submit({"SET", m_config.key_prefix + key, std::move(value), "PX",
            std::to_string(std::max<int64_t>(1, ttl.count()))},
           nullptr);
  }

  void get(std::string key, std::function<void(std::optional<std::string>)> done) override {
    auto on_reply = [done](const redisReply* r) {
      if (r != nullptr && r->type == REDIS_REPLY_STRING) {
        done(std::string(r->str, r->len));
      } else {
        done(std::nullopt);
      }
    };
    if (!submit({"GET", m_config.key_prefix + key}, on_reply)) {
      done(std::nullopt);
    }
  }

  void publish_cooldown(const SharedCooldown& cooldown) override {
    submit({"PUBLISH", channel(), encode_cooldown(cooldown)}, nullptr);
  }

  void on_cooldown(std::function<void(const SharedCooldown&)> listener) override {
    std::lock_guard lock(m_mutex);
    m_listener = std::move(listener);
  }

private:
  using Done = std::function<void(const redisReply*)>;
  struct Command {
    std::string bytes;
    Done done; // may be empty
  };

  std::string channel() const { return m_config.key_prefix + "cooldowns"; }

  // Queues a command; false (and nothing queued) when the link is down or the queue is full.
  bool submit(const std::vector<std::string>& args, Done done) {
    {
      std::lock_guard lock(m_mutex);
      if (m_stopping || m_status.state != SharedStatus::State::up) {
        return false;
      }
      if (m_queue.size() >= k_max_queued) {
        ++m_status.dropped;
        return false;
      }
      m_queue.push_back({format_command(args), std::move(done)});
    }
    asio::post(m_io, [this] { m_wake.cancel(); });
    return true;
  }

  void set_state(SharedStatus::State state, const std::string& why) {
    std::lock_guard lock(m_mutex);
    if (m_status.state == state) {
      return;
    }
    const bool was_up = m_status.state == SharedStatus::State::up;
    m_status.state = state;
    m_status.since_ms = utc_now_ms();
    m_status.why = why;
    if (state == SharedStatus::State::up) {
      m_log.info("redis_up", {{"url", m_config.url}});
    } else if (was_up || state == SharedStatus::State::down) {
      // Once per outage: the next line is redis_up.
      m_log.warn("redis_down", {{"url", m_config.url},
                                {"why", why},
                                {"effect", "each instance goes on with its own counts"}});
    }
  }

  // A connection made, authenticated and on its database; null with why set otherwise.
  Task<std::unique_ptr<Connection>> connect(std::string& why) {
    auto c = std::make_unique<Connection>(m_io);
    const auto& e = m_config.endpoint;
    c->tcp.expires_after(k_connect_timeout);
    tcp::resolver resolver(m_io);
    auto [resolve_error, endpoints] =
        co_await resolver.async_resolve(e.host, std::to_string(e.port), k_use);
    if (resolve_error) {
      why = "cannot resolve " + e.host;
      co_return nullptr;
    }
    auto [connect_error, endpoint] = co_await c->tcp.async_connect(endpoints, k_use);
    if (connect_error) {
      why = connect_error == beast::error::timeout ? "connect timed out"
                                                   : "connect: " + connect_error.message();
      co_return nullptr;
    }
    error_code ec;
    c->tcp.socket().set_option(tcp::no_delay(true), ec);
    if (e.tls) {
      c->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(std::move(c->tcp), m_tls);
      SSL_set_tlsext_host_name(c->tls->native_handle(), e.host.c_str());
      c->tls->set_verify_mode(asio::ssl::verify_peer);
      c->tls->set_verify_callback(asio::ssl::host_name_verification(e.host));
      auto [handshake_error] =
          co_await c->tls->async_handshake(asio::ssl::stream_base::client, k_use);
      if (handshake_error) {
        why = "TLS handshake: " + handshake_error.message();
        co_return nullptr;
      }
    }
    std::vector<std::vector<std::string>> hello;
    if (!m_config.password.value.empty()) {
      if (m_config.username.empty()) {
        hello.push_back({"AUTH", m_config.password.value});
      } else {
        hello.push_back({"AUTH", m_config.username, m_config.password.value});
      }
    }
    if (e.db != 0) {
      hello.push_back({"SELECT", std::to_string(e.db)});
    }
    hello.push_back({"PING"});
    std::string bytes;
    for (const auto& h : hello) {
      bytes += format_command(h);
    }
    if (auto write_error = co_await c->write(bytes)) {
      why = "connection lost: " + write_error.message();
      co_return nullptr;
    }
    for (const auto& h : hello) {
      auto reply = co_await c->read(why);
      if (!reply) {
        co_return nullptr;
      }
      if (reply->type == REDIS_REPLY_ERROR) {
        // Redis's own words (NOAUTH, WRONGPASS, ...) never repeat the password.
        why = h[0] + " refused: " + std::string(reply->str, reply->len);
        co_return nullptr;
      }
    }
    c->lowest().expires_never();
    co_return c;
  }

  Task<void> sleep(std::chrono::milliseconds d) {
    asio::steady_timer t(m_io, d);
    co_await t.async_wait(k_use);
  }

  // The command connection: connect, serve until it fails, say so, retry with a backoff.
  Task<void> run() {
    std::chrono::milliseconds backoff = k_first_backoff;
    for (;;) {
      std::string why;
      auto c = co_await connect(why);
      if (!c) {
        set_state(SharedStatus::State::down, why);
        co_await sleep(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, k_max_backoff);
        continue;
      }
      backoff = k_first_backoff;
      set_state(SharedStatus::State::up, "");
      std::deque<Done> waiting; // answers expected, in order
      co_await (write_loop(*c, waiting, why) || read_loop(*c, waiting, why));
      set_state(SharedStatus::State::down, why);
      error_code ec;
      c->lowest().socket().close(ec);
      // What was sent got no answer, and what is queued will not be sent: each is told.
      for (auto& done : waiting) {
        if (done) {
          done(nullptr);
        }
      }
      std::deque<Command> queued;
      {
        std::lock_guard lock(m_mutex);
        queued.swap(m_queue);
      }
      for (auto& q : queued) {
        if (q.done) {
          q.done(nullptr);
        }
      }
    }
  }

  Task<void> write_loop(Connection& c, std::deque<Done>& waiting, std::string& why) {
    std::string batch;
    for (;;) {
      batch.clear();
      {
        std::lock_guard lock(m_mutex);
        for (auto& q : m_queue) {
          batch += q.bytes;
          waiting.push_back(std::move(q.done));
        }
        m_queue.clear();
      }
      if (batch.empty()) {
        m_wake.expires_at(Clock::time_point::max());
        co_await m_wake.async_wait(k_use);
        continue;
      }
      if (auto ec = co_await c.write(batch)) {
        why = "connection lost: " + ec.message();
        co_return;
      }
    }
  }

  Task<void> read_loop(Connection& c, std::deque<Done>& waiting, std::string& why) {
    for (;;) {
      auto reply = co_await c.read(why);
      if (!reply) {
        co_return;
      }
      if (waiting.empty()) {
        why = "Redis answered a command never sent";
        co_return;
      }
      auto done = std::move(waiting.front());
      waiting.pop_front();
      if (done) {
        done(reply.get());
      }
    }
  }

  // The subscriber: cooldowns other instances saw.
  Task<void> subscribe() {
    std::chrono::milliseconds backoff = k_first_backoff;
    for (;;) {
      std::string why;
      auto c = co_await connect(why);
      if (!c) {
        co_await sleep(backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, k_max_backoff);
        continue;
      }
      backoff = k_first_backoff;
      const std::vector<std::string> subscribe_args = {"SUBSCRIBE", channel()};
      const std::string subscribe_command = format_command(subscribe_args);
      if (co_await c->write(subscribe_command)) {
        continue;
      }
      for (;;) {
        auto reply = co_await c->read(why);
        if (!reply) {
          break;
        }
        if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
            reply->element[0]->type != REDIS_REPLY_STRING ||
            reply->element[2]->type != REDIS_REPLY_STRING ||
            std::string_view(reply->element[0]->str, reply->element[0]->len) != "message") {
          continue; // the subscription's confirmation, or something else
        }
        const auto cooldown =
            decode_cooldown(std::string_view(reply->element[2]->str, reply->element[2]->len));
        std::function<void(const SharedCooldown&)> listener;
        {
          std::lock_guard lock(m_mutex);
          listener = m_listener;
        }
        if (cooldown && listener) {
          listener(*cooldown);
        }
      }
    }
  }

  // Every k_flush_interval: the spend added since, and a read of the fleet's totals.
  Task<void> flush() {
    for (;;) {
      co_await sleep(k_flush_interval);
      if (status().state != SharedStatus::State::up) {
        continue;
      }
      for (const auto& inc : m_spend.take(utc_now_ms())) {
        const std::string key = m_config.key_prefix + "spend:" + inc.period;
        const auto on_reply = [this, inc](const redisReply* r) {
          if (r != nullptr && r->type == REDIS_REPLY_INTEGER) {
            m_spend.acknowledge(inc.period, inc.micros, r->integer);
          } else {
            m_spend.restore(inc.period, inc.micros);
          }
        };
        if (!submit({"INCRBY", key, std::to_string(inc.micros)}, on_reply)) {
          m_spend.restore(inc.period, inc.micros);
          continue;
        }
        const bool month = inc.period.starts_with("month:");
        submit({"EXPIRE", key, std::to_string(month ? k_month_key_seconds : k_day_key_seconds)},
               nullptr);
      }
    }
  }

  RedisConfig m_config;
  Log& m_log;
  SharedSpend m_spend;
  mutable std::mutex m_mutex;
  SharedStatus m_status;
  bool m_stopping = false;
  std::deque<Command> m_queue;
  std::function<void(const SharedCooldown&)> m_listener;
  asio::ssl::context m_tls;
  // Declared last but for the thread: what the coroutines reach outlives the loop.
  asio::io_context m_io;
  asio::steady_timer m_wake;
  std::thread m_thread;
};

} // namespace

std::unique_ptr<SharedState> make_redis_link(const RedisConfig& config, Log& log) {
  return std::make_unique<RedisLink>(config, log);
}

} // namespace modelmux::net

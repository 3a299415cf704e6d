#include "orchestrator/reconcile/host.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace ganglion::orchestrator {

ReconcileContext::ReconcileContext(std::string name, uint64_t term, Caches& caches,
                                   ApiHandler& api, std::shared_ptr<std::atomic<bool>> active,
                                   WorkQueueOptions queue)
    : name_(std::move(name)),
      term_(term),
      caches_(caches),
      active_(active),
      client_(api, [active] { return active->load(); }, "ganglion-" + name_),
      queue_(queue) {}

ObjectCache& ReconcileContext::Cache(const std::string& group, const std::string& plural) {
  std::lock_guard<std::mutex> lock(caches_.mu);
  std::unique_ptr<ObjectCache>& cache = caches_.by_type[absl::StrCat(group, "/", plural)];
  if (!cache) cache = std::make_unique<ObjectCache>(*caches_.store, TypeOf(group, plural));
  return *cache;
}

struct ReconcilerHost::Term {
  uint64_t term = 0;
  std::shared_ptr<std::atomic<bool>> active;
  ReconcileContext::Caches caches;
  std::vector<std::unique_ptr<ReconcileContext>> contexts;
  std::vector<std::unique_ptr<Reconciler>> reconcilers;
  std::vector<std::thread> workers;
};

ReconcilerHost::ReconcilerHost(ObjectStore& store, ApiHandler& api) : store_(store), api_(api) {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "reconcile-host");
    Run();
  });
}

ReconcilerHost::~ReconcilerHost() { Stop(); }

void ReconcilerHost::Register(ReconcilerSpec spec) {
  std::lock_guard<std::mutex> lock(mu_);
  specs_.push_back(std::move(spec));
}

void ReconcilerHost::SetLeading(bool leading, uint64_t term) {
  std::lock_guard<std::mutex> lock(mu_);
  if (leading) {
    want_term_ = term;
  } else if (want_term_ == term || term == 0) {
    want_term_ = 0;
  }
  // Fence the running term at once: its writes fail from now on.
  if (active_ && (!leading || term != stats_.term)) active_->store(false);
  cv_.notify_all();
}

void ReconcilerHost::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_ && !thread_.joinable()) return;
    stop_ = true;
    if (active_) active_->store(false);
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

HostStats ReconcilerHost::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

std::unique_ptr<ReconcilerHost::Term> ReconcilerHost::StartTerm(uint64_t term_number) {
  auto term = std::make_unique<Term>();
  term->term = term_number;
  term->active = std::make_shared<std::atomic<bool>>(true);
  term->caches.store = &store_;
  std::vector<ReconcilerSpec> specs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A step-down that arrived while we were idle wins.
    if (want_term_ != term_number || stop_) return nullptr;
    active_ = term->active;
    specs = specs_;
    stats_.leading = true;
    stats_.term = term_number;
    stats_.terms_led_total++;
    stats_.leading_since = absl::Now();
    stats_.first_reconcile_at = absl::InfinitePast();
    stats_.reconcilers_running = 0;
  }
  const absl::Time started = absl::Now();
  for (const ReconcilerSpec& spec : specs) {
    term->contexts.push_back(std::unique_ptr<ReconcileContext>(new ReconcileContext(
        spec.name, term_number, term->caches, api_, term->active, spec.queue)));
    term->reconcilers.push_back(spec.make(*term->contexts.back()));
    term->reconcilers.back()->Setup(*term->contexts.back());
  }
  // Fill every cache before any worker runs, so no decision is taken on a
  // half-listed world. The store may still be catching up: retry.
  for (auto& [name, cache] : term->caches.by_type) {
    for (;;) {
      if (!term->active->load()) return term;
      absl::Status st = cache->Start();
      if (st.ok()) break;
      spdlog::warn("event=reconcile_cache_start_failed resource={} error=\"{}\"", name,
                   st.ToString());
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    ReconcileContext* ctx = term->contexts[i].get();
    Reconciler* reconciler = term->reconcilers[i].get();
    for (int w = 0; w < std::max(1, specs[i].workers); ++w) {
      term->workers.emplace_back([this, ctx, reconciler, active = term->active] {
        pthread_setname_np(pthread_self(), ctx->name().substr(0, 15).c_str());
        while (auto key = ctx->queue().Get()) {
          if (!active->load()) {
            ctx->queue().Done(*key);
            break;
          }
          absl::Status st;
          try {
            st = reconciler->Reconcile(*key);
          } catch (const std::exception& e) {
            st = absl::InternalError(absl::StrCat("reconcile threw: ", e.what()));
          }
          {
            std::lock_guard<std::mutex> lock(mu_);
            stats_.reconciles_total++;
            if (!st.ok()) stats_.reconcile_errors_total++;
            if (stats_.first_reconcile_at == absl::InfinitePast()) {
              stats_.first_reconcile_at = absl::Now();
              spdlog::info(
                  "event=first_reconcile term={} reconciler={} key={} ms_since_leading={}",
                  ctx->term(), ctx->name(), *key,
                  absl::ToInt64Milliseconds(stats_.first_reconcile_at - stats_.leading_since));
            }
          }
          if (st.ok()) {
            ctx->queue().Forget(*key);
          } else {
            if (!absl::IsAborted(st) && !absl::IsFailedPrecondition(st)) {
              spdlog::info("event=reconcile_failed reconciler={} key={} error=\"{}\"",
                           ctx->name(), *key, st.ToString());
            }
            ctx->queue().AddRateLimited(*key);
          }
          ctx->queue().Done(*key);
        }
      });
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.reconcilers_running = static_cast<int>(specs.size());
  }
  spdlog::info("event=reconcilers_started term={} reconcilers={} caches={} ms={}", term_number,
               specs.size(), term->caches.by_type.size(),
               absl::ToInt64Milliseconds(absl::Now() - started));
  return term;
}

void ReconcilerHost::StopTerm(std::unique_ptr<Term> term) {
  term->active->store(false);
  for (auto& ctx : term->contexts) ctx->queue().ShutDown();
  for (std::thread& t : term->workers) t.join();
  for (auto& [name, cache] : term->caches.by_type) cache->Stop();
  // Reconcilers may hold pointers into the caches and contexts: go first.
  term->reconcilers.clear();
  term->contexts.clear();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.leading = false;
    stats_.reconcilers_running = 0;
  }
  spdlog::info("event=reconcilers_stopped term={}", term->term);
}

void ReconcilerHost::Run() {
  std::unique_ptr<Term> running;
  for (;;) {
    uint64_t want = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        const uint64_t have = running ? running->term : 0;
        return stop_ || want_term_ != have;
      });
      want = stop_ ? 0 : want_term_;
    }
    if (running && running->term != want) {
      StopTerm(std::move(running));
      running.reset();
    }
    bool stop = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop = stop_;
    }
    if (stop) return;
    if (!running && want != 0) running = StartTerm(want);
  }
}

}  // namespace ganglion::orchestrator

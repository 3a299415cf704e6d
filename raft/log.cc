#include "raft/log.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace ganglion::raft {

void Fatal(const std::string& what) {
  std::fprintf(stderr, "raft: fatal: %s\n", what.c_str());
  std::abort();
}

RaftLog::RaftLog(Storage* storage, uint64_t max_committed_bytes_per_ready)
    : storage_(storage), max_committed_bytes_per_ready_(max_committed_bytes_per_ready) {
  Index first = storage_->FirstIndex();
  Index last = storage_->LastIndex();
  unstable_.set_offset(last + 1);
  // Everything up to the snapshot is committed and applied.
  committed_ = first - 1;
  applied_ = first - 1;
}

std::optional<Index> RaftLog::MaybeAppend(Index index, Term log_term, Index committed,
                                          const std::vector<Entry>& entries) {
  if (!MatchTerm(index, log_term)) return std::nullopt;
  Index last_new = index + entries.size();
  Index conflict = FindConflict(entries);
  if (conflict != 0) {
    if (conflict <= committed_) {
      Fatal(absl::StrCat("entry ", conflict, " conflicts with committed entry (committed ",
                         committed_, ")"));
    }
    std::vector<Entry> rest(entries.begin() + (conflict - index - 1), entries.end());
    Append(rest);
  }
  CommitTo(std::min(committed, last_new));
  return last_new;
}

Index RaftLog::Append(const std::vector<Entry>& entries) {
  if (entries.empty()) return LastIndex();
  if (entries.front().index - 1 < committed_) {
    Fatal(absl::StrCat("append after ", entries.front().index - 1, " is before committed ",
                       committed_));
  }
  unstable_.TruncateAndAppend(entries);
  return LastIndex();
}

Index RaftLog::FindConflict(const std::vector<Entry>& entries) const {
  for (const Entry& e : entries) {
    if (!MatchTerm(e.index, e.term)) return e.index;
  }
  return 0;
}

std::pair<Index, Term> RaftLog::FindConflictByTerm(Index index, Term term) const {
  for (; index > 0; index--) {
    auto t = TermAt(index);
    // A compacted or missing entry ends the search: (index, 0) is a safe
    // probe point, the leader will fall back to a snapshot if needed.
    if (!t.ok()) return {index, 0};
    if (*t <= term) return {index, *t};
  }
  return {0, 0};
}

std::vector<Entry> RaftLog::NextCommittedEntries() const {
  Index lo = std::max(applied_ + 1, FirstIndex());
  if (committed_ + 1 <= lo) return {};
  auto ents = Slice(lo, committed_ + 1, max_committed_bytes_per_ready_);
  if (!ents.ok())
    Fatal(absl::StrCat("unexpected error reading committed entries: ", ents.status().ToString()));
  return *std::move(ents);
}

bool RaftLog::HasNextCommittedEntries() const {
  return committed_ + 1 > std::max(applied_ + 1, FirstIndex());
}

absl::StatusOr<Snapshot> RaftLog::GetSnapshot() const {
  if (unstable_.snapshot()) return *unstable_.snapshot();
  return storage_->GetSnapshot();
}

Index RaftLog::FirstIndex() const {
  if (auto i = unstable_.MaybeFirstIndex()) return *i;
  return storage_->FirstIndex();
}

Index RaftLog::LastIndex() const {
  if (auto i = unstable_.MaybeLastIndex()) return *i;
  return storage_->LastIndex();
}

Term RaftLog::LastTerm() const {
  auto t = TermAt(LastIndex());
  if (!t.ok()) Fatal(absl::StrCat("unexpected error reading last term: ", t.status().ToString()));
  return *t;
}

Index RaftLog::PersistedLastIndex() const {
  if (unstable_.snapshot()) return unstable_.snapshot()->metadata.index;
  return std::min(storage_->LastIndex(), unstable_.offset() - 1);
}

absl::StatusOr<Term> RaftLog::TermAt(Index i) const {
  // The valid range includes the dummy entry before the first index.
  Index dummy = FirstIndex() - 1;
  if (i < dummy || i > LastIndex()) return Term{0};
  if (auto t = unstable_.MaybeTerm(i)) return *t;
  auto t = storage_->TermAt(i);
  if (t.ok()) return t;
  if (IsErrCompacted(t.status()) || IsErrUnavailable(t.status())) return t.status();
  Fatal(absl::StrCat("storage term(", i, "): ", t.status().ToString()));
}

Term RaftLog::TermOrZero(Index i) const {
  auto t = TermAt(i);
  return t.ok() ? *t : 0;
}

bool RaftLog::MatchTerm(Index i, Term t) const {
  auto term = TermAt(i);
  return term.ok() && *term == t;
}

bool RaftLog::IsUpToDate(Index last_index, Term term) const {
  return term > LastTerm() || (term == LastTerm() && last_index >= LastIndex());
}

absl::StatusOr<std::vector<Entry>> RaftLog::EntriesFrom(Index i, uint64_t max_bytes) const {
  if (i > LastIndex()) return std::vector<Entry>{};
  return Slice(i, LastIndex() + 1, max_bytes);
}

absl::StatusOr<std::vector<Entry>> RaftLog::Slice(Index lo, Index hi, uint64_t max_bytes) const {
  if (lo > hi) Fatal(absl::StrCat("invalid slice ", lo, " > ", hi));
  if (lo < FirstIndex()) return ErrCompacted();
  if (hi > LastIndex() + 1) Fatal(absl::StrCat("slice [", lo, ",", hi, ") out of bound"));
  std::vector<Entry> out;
  if (lo == hi) return out;
  Index offset = unstable_.offset();
  if (lo < offset) {
    auto stored = storage_->Entries(lo, std::min(hi, offset), max_bytes);
    if (!stored.ok()) {
      if (IsErrCompacted(stored.status())) return stored.status();
      Fatal(absl::StrCat("storage entries[", lo, ",", std::min(hi, offset),
                         "): ", stored.status().ToString()));
    }
    out = *std::move(stored);
    // Storage stopped early because of max_bytes: do not add unstable ones.
    if (out.size() < std::min(hi, offset) - lo) return out;
  }
  if (hi > offset) {
    uint64_t bytes = 0;
    for (const Entry& e : out) bytes += EntrySizeBytes(e);
    for (const Entry& e : unstable_.Slice(std::max(lo, offset), hi)) {
      bytes += EntrySizeBytes(e);
      if (!out.empty() && bytes > max_bytes) break;
      out.push_back(e);
    }
  }
  return out;
}

std::vector<Entry> RaftLog::AllEntries() const {
  auto ents = EntriesFrom(FirstIndex(), kNoLimit);
  if (!ents.ok()) Fatal("unexpected error reading all entries: " + ents.status().ToString());
  return *std::move(ents);
}

void RaftLog::CommitTo(Index i) {
  if (i <= committed_) return;  // never decrease
  if (i > LastIndex()) {
    Fatal(absl::StrCat("commit ", i, " is out of range [last index ", LastIndex(), "]"));
  }
  committed_ = i;
}

void RaftLog::AppliedTo(Index i) {
  if (i == 0) return;
  if (i > committed_ || i < applied_) {
    Fatal(absl::StrCat("applied ", i, " is out of range [prev applied ", applied_, ", committed ",
                       committed_, "]"));
  }
  applied_ = i;
}

bool RaftLog::MaybeCommit(Index max_index, Term term) {
  if (max_index > committed_ && TermOrZero(max_index) == term) {
    CommitTo(max_index);
    return true;
  }
  return false;
}

void RaftLog::Restore(const Snapshot& snap) {
  committed_ = snap.metadata.index;
  unstable_.Restore(snap);
}

}  // namespace ganglion::raft

// LogStage: one step of the log path between the readers (container log tailer, journal) and the
// batcher: multiline joining, filtering, rate limiting, redaction. A stage is a LogSink that
// passes what it keeps on to the next sink, changed or not; LogStageChain strings them together
// in front of the batcher (agent/log_pipeline.cpp, makeLogStages()).
//
// What a reader gets wrong: accept() returning false means "not taken, offer it again later", as
// at the batcher (the reader holds the line and the file is the buffer). A stage that holds
// entries itself (a multiline group waiting for its next line) must therefore never lose one when
// the next sink refuses: it keeps the held entries and refuses the new one, or takes the new one
// and tries the held ones again at flushDue().
//
// What a reader gets wrong about positions: the checkpoint passed on with an entry is the position
// the batcher may commit once that entry is durable. A stage that holds entries of a source passes
// on other entries of that source with a checkpoint no later than the first held entry's start, so
// a crash never skips a held line (it is read again instead).
#pragma once

#include <chrono>
#include <memory>
#include <vector>

#include "pipeline/log_record.h"

namespace nodewarden {

class LogStage : public LogSink {
 public:
  using Clock = std::chrono::steady_clock;
  LogStage() = default;
  LogStage(const LogStage&) = delete;
  LogStage& operator=(const LogStage&) = delete;

  // The sink this stage passes entries to; set once by LogStageChain before the first entry.
  void setNext(LogSink& next) { next_ = &next; }
  [[nodiscard]] bool hasRoom() const override { return next_->hasRoom(); }

  // Called every tick (force at shutdown and before a forced batch flush): passes on what has
  // waited long enough (a multiline group past its timeout, a rate limiter's count of dropped
  // lines). Returns false when the next sink refused; the rest is tried again at the next call.
  virtual bool flushDue(Clock::time_point /*now*/, bool /*force*/) { return true; }

  // The agent's own lines (Job outcome events): they skip the stages, so the sink they go to.
  LogSink& next() { return *next_; }

 protected:
  LogSink* next_ = nullptr;
};

// Stages in order, the last passing on to the batcher. head() is the sink readers write into:
// the first stage, or the batcher itself when there is no stage.
class LogStageChain {
 public:
  LogStageChain(std::vector<std::unique_ptr<LogStage>> stages, LogSink& last)
      : stages_(std::move(stages)), last_(&last) {
    for (std::size_t i = 0; i < stages_.size(); ++i) {
      stages_[i]->setNext(i + 1 < stages_.size() ? static_cast<LogSink&>(*stages_[i + 1]) : last);
    }
  }
  [[nodiscard]] LogSink& head() { return stages_.empty() ? *last_ : *stages_.front(); }
  // Every stage's flushDue, first to last, so what a stage passes on goes through the later ones
  // in the same call. Stops at the first refusal (the next sink is full).
  bool flushDue(LogStage::Clock::time_point now, bool force) {
    for (auto& stage : stages_) {
      if (!stage->flushDue(now, force)) return false;
    }
    return true;
  }
  [[nodiscard]] const std::vector<std::unique_ptr<LogStage>>& stages() const { return stages_; }

 private:
  std::vector<std::unique_ptr<LogStage>> stages_;
  LogSink* last_;
};

}  // namespace nodewarden
